"""A small per-process cache whose entries expire: what every request would otherwise read
or check again (the caller, the lists that fill forms, a group's members, a token's
signature)."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Expiring(Generic[K, V]):
    """Values kept ``ttl`` seconds after they were read (0 keeps nothing), at most ``size``
    of them (the oldest go first). Safe to share between threads: the worst a race does is
    read the same value twice."""

    def __init__(self, ttl: float, size: int = 4096,
                 now: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.size = size
        self._now = now
        self._items: dict[K, tuple[float, V]] = {}

    def get(self, key: K) -> V | None:
        item = self._items.get(key)
        if item is None:
            return None
        if self._now() >= item[0]:
            self._items.pop(key, None)
            return None
        return item[1]

    def put(self, key: K, value: V) -> None:
        if self.ttl <= 0:
            return
        self._items.pop(key, None)
        while len(self._items) >= self.size:
            try:
                self._items.pop(next(iter(self._items)))
            except (StopIteration, KeyError, RuntimeError):  # emptied by another thread
                break
        self._items[key] = (self._now() + self.ttl, value)

    def clear(self) -> None:
        self._items.clear()
