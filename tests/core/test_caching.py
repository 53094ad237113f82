"""The per-process cache behind every lazily created client (hepinfer.caching)."""

import os
import pickle
import threading

import pytest

from hepinfer.caching import ProcessCache


def test_created_once_and_reused():
    cache, made = ProcessCache(), []
    first = cache.get("k", lambda: made.append(1) or object())
    assert cache.get("k", lambda: made.append(1) or object()) is first
    assert made == [1] and len(cache) == 1 and cache.items() == [("k", first)]


def test_concurrent_first_use_creates_one_value():
    cache, made, start = ProcessCache(), [], threading.Barrier(8)

    def factory():
        made.append(1)
        return object()

    def use():
        start.wait()
        cache.get("k", factory)

    threads = [threading.Thread(target=use) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert made == [1]


def test_per_thread_values_and_clear_returns_them_all():
    cache = ProcessCache(per_thread=True)
    here = cache.get("c", object)
    other = []
    t = threading.Thread(target=lambda: other.append(cache.get("c", object)))
    t.start()
    t.join()
    assert other[0] is not here and len(cache) == 2
    assert cache.pop("c") is here and cache.pop("c") is None  # this thread's only
    assert cache.clear() == other and len(cache) == 0


def test_pickles_empty():
    cache = ProcessCache(per_thread=True)
    cache.get("k", lambda: threading.Lock())  # a lock cannot be pickled: the value must not travel
    clone = pickle.loads(pickle.dumps(cache))
    assert len(clone) == 0 and clone.per_thread


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_does_not_inherit_values():
    cache = ProcessCache()
    parent = cache.get("k", object)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: the parent's value is neither handed out nor returned by clear()
        ok = cache.get("k", object) is not parent and cache.values() != [parent]
        os.write(write, b"1" if ok else b"0")
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1"
    assert cache.get("k", object) is parent
