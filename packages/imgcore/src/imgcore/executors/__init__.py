"""Executors: the protocol and the built-in local executor."""

from __future__ import annotations

from imgcore.executors.base import Executor

__all__ = ["Executor"]
