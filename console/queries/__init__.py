"""The console's read-only queries: small, indexed, one page at a time."""
