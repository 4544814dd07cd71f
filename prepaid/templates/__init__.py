"""The message templates shipped with feikong (TOML data; see :mod:`prepaid.messages`)."""
