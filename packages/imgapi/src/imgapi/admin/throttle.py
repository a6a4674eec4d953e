"""Limits on admin logins: attempts per client address and per account, hashes at once.

Each attempt costs an argon2 hash (64 MiB, tens of milliseconds of CPU), known user or not.
:class:`LoginLimits` admits an attempt only while its address and its username are under
their limits (a sliding window, kept in this process), and runs the hashes on threads of
their own, at most ``IMGAPI_ADMIN_HASH_CONCURRENCY`` at once, so a flood of logins neither
grows memory nor takes the threads the API's own work runs on.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.to_thread

from imgapi.settings import Settings

__all__ = ["LoginLimits", "SlidingWindow"]

T = TypeVar("T")

#: Keys (addresses, usernames) remembered at most per window; beyond, the oldest are forgotten.
MAX_KEYS = 100_000


class SlidingWindow:
    """At most ``limit`` hits per key in any ``window`` seconds, counted in this process."""

    def __init__(
        self,
        limit: int,
        window: float,
        *,
        max_keys: int = MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._clock = clock
        # Insertion order is recency order: a key hit again is moved to the end.
        self._hits: dict[str, deque[float]] = {}

    def wait(self, key: str) -> float:
        """Seconds until ``key`` may be hit again; 0 when it may now."""
        hits = self._recent(key, self._clock())
        if hits is None or len(hits) < self.limit:
            return 0.0
        return max(hits[0] + self.window - self._clock(), 0.0)

    def hit(self, key: str) -> None:
        """Count one hit of ``key`` now."""
        now = self._clock()
        hits = self._recent(key, now)
        if hits is None:
            hits = deque()
        else:
            del self._hits[key]
        hits.append(now)
        self._hits[key] = hits
        if len(self._hits) > self.max_keys:
            self._forget(now)

    def _recent(self, key: str, now: float) -> deque[float] | None:
        hits = self._hits.get(key)
        if hits is not None:
            while hits and hits[0] <= now - self.window:
                hits.popleft()
        return hits

    def _forget(self, now: float) -> None:
        since = now - self.window
        for key in [k for k, hits in self._hits.items() if not hits or hits[-1] <= since]:
            del self._hits[key]
        while len(self._hits) > self.max_keys:
            del self._hits[next(iter(self._hits))]


class LoginLimits:
    """The admin login limits of one app (see the module's docstring)."""

    def __init__(self, settings: Settings) -> None:
        window = settings.admin_login_window
        self.per_address = SlidingWindow(settings.admin_login_per_address, window)
        self.per_account = SlidingWindow(settings.admin_login_per_account, window)
        self.hash_concurrency = settings.admin_hash_concurrency
        self._limiter: anyio.CapacityLimiter | None = None
        self._count = threading.Lock()
        #: Hashes running now, and the most that ever ran at once (observed in their threads).
        self.hashing = 0
        self.peak_hashing = 0

    def admit(self, address: str, username: str) -> int:
        """Count an attempt and return 0, or the whole seconds to wait (nothing counted)."""
        wait = max(self.per_address.wait(address), self.per_account.wait(username))
        if wait > 0:
            return max(1, math.ceil(wait))
        self.per_address.hit(address)
        self.per_account.hit(username)
        return 0

    async def run_hash(self, fn: Callable[..., T], *args: object) -> T:
        """``fn(*args)`` (a password hash or check) on a thread, within the bound."""
        if self._limiter is None:
            # Made on first use, inside the event loop it serves.
            self._limiter = anyio.CapacityLimiter(self.hash_concurrency)
        return await anyio.to_thread.run_sync(self._counted, fn, *args, limiter=self._limiter)

    def _counted(self, fn: Callable[..., T], *args: object) -> T:
        with self._count:
            self.hashing += 1
            self.peak_hashing = max(self.peak_hashing, self.hashing)
        try:
            return fn(*args)
        finally:
            with self._count:
                self.hashing -= 1
