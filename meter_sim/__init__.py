"""Simulated DL/T 645 smart meters: remote fee-control and local (card) prepay meters."""
