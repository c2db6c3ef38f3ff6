"""Shared fixtures. Database-parametrized fixtures live in tests/dbfixtures.py."""
