"""The built-in local executor."""
