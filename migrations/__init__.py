"""Alembic migrations of vidgen's schema (applied at start and by `vidgen db upgrade`)."""
