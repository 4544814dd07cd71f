"""Example tariff files (TOML, package data); load them with ``prepaid.tariff.load_book``.

The prices are illustrative, in the shape of Chinese residential and commercial
tariffs; they are not any utility's published schedule.
"""
