"""Per-process (and per-thread) caches: the one mechanism behind every lazily created client.

Triton clients, onnxruntime sessions, Scorers and request pools are expensive to create and must not
cross a process boundary: a forked Dask worker must not reuse its parent's gRPC channel, and a
pickled object must arrive without them.  :class:`ProcessCache` holds such values:

* a value is created on first use by ``cache.get(key, factory)`` and reused afterwards;
* values belong to the process that created them: after a fork the child sees an empty cache
  (the parent's values are never handed out, nor closed, by the child);
* ``per_thread=True`` keeps one value per thread as well (tritonclient clients are not thread-safe);
* pickling a cache gives an empty one, so an object holding a cache pickles without its clients.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class ProcessCache(Generic[V]):
    """Values created on first use, one per key in each process (and thread, with ``per_thread``)."""

    def __init__(self, per_thread: bool = False):
        self.per_thread = per_thread
        self._lock = threading.Lock()
        self._values: dict[tuple, V] = {}

    def _key(self, key: Hashable) -> tuple:
        return (os.getpid(), threading.get_ident() if self.per_thread else None, key)

    def get(self, key: Hashable, factory: Callable[[], V]) -> V:
        """The value of ``key`` in this process (and thread), made by ``factory()`` the first time.
        ``factory`` runs under the cache's lock: two threads never create the same value twice."""
        full = self._key(key)
        value = self._values.get(full)
        if value is None:
            with self._lock:
                value = self._values.get(full)
                if value is None:
                    value = self._values[full] = factory()
        return value

    def pop(self, key: Hashable) -> V | None:
        """Remove this process' (and thread's) value of ``key`` and return it (None when absent)."""
        with self._lock:
            return self._values.pop(self._key(key), None)

    def clear(self) -> list[V]:
        """Remove and return every value this process created (all threads); values inherited
        through a fork are dropped without being returned: their owner closes them."""
        pid = os.getpid()
        with self._lock:
            values, self._values = self._values, {}
        return [v for k, v in values.items() if k[0] == pid]

    def values(self) -> list[V]:
        """This process' values (all threads)."""
        return [v for _, v in self.items()]

    def items(self) -> list[tuple[Hashable, V]]:
        """This process' ``(key, value)`` pairs (all threads)."""
        pid = os.getpid()
        with self._lock:
            return [(k[2], v) for k, v in self._values.items() if k[0] == pid]

    def __reduce__(self):
        return (type(self), (self.per_thread,))

    def __len__(self) -> int:
        return len(self.values())

    def __repr__(self) -> str:
        return f"ProcessCache({len(self)} value(s){', per thread' if self.per_thread else ''})"
