"""Persistence: SQLAlchemy 2 models, keyword-only repository functions, Alembic migrations."""
