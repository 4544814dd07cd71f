"""Prepaid migration revisions: independent branches (``accounts``, …), oldest first."""
