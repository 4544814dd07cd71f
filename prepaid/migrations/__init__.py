"""Alembic migrations of the prepaid schema (run by :func:`prepaid.db.migrate`)."""
