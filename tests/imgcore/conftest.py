"""Fixtures for the imgcore tests (the shared ones live in tests/conftest.py)."""
