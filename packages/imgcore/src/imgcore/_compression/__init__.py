"""Compression on every core: the worker pool, the spool that feeds it, process tuning."""
