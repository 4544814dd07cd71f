"""Alembic migrations of the head-end schema (run by :func:`headend.db.migrate`)."""
