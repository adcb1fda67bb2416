"""Metadata: SQLAlchemy tables and sessions (SQLite by default, PostgreSQL for scale)."""
