"""The prepaid platform: tariffs, rating, balances and the fee-control workflows."""
