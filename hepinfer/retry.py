"""Retries: capped exponential backoff with jitter, in a loop, bounded in attempts and in time.

Delay before retry k (k = 0, 1, ...): ``cap = min(retry_max_ms, retry_initial_ms * 2**k)``, then a
random delay in ``[cap / 2, cap]`` ("equal jitter": workers that lost the same server do not come
back in lock-step, and no retry follows the failure at once).  Delays are milliseconds everywhere
and converted to seconds only at the ``sleep`` call.  No attempt starts once ``retry_total_s`` has
passed since the first, so one call takes at most ``retry_total_s`` plus one request's
``timeout_s``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    retries: int = 4  # retries after the first attempt
    initial_ms: float = 100.0
    max_ms: float = 2000.0
    total_s: float = 20.0

    def delay_ms(self, retry: int, rng: random.Random | None = None) -> float:
        """The delay before retry number ``retry`` (0-based), in milliseconds."""
        cap = min(self.max_ms, self.initial_ms * (2.0 ** min(retry, 60)))
        return cap / 2 + (rng or random).uniform(0.0, cap / 2)


@dataclass
class Attempts:
    """What happened to one call: how many attempts, and the time spent, in seconds."""

    count: int = 0
    elapsed_s: float = 0.0

    @property
    def retries(self) -> int:
        return max(0, self.count - 1)


def call_with_retries(
    fn: Callable[[], T],
    backoff: Backoff,
    retry_on: tuple[type[BaseException], ...],
    *,
    retry_if: Callable[[BaseException], bool] | None = None,
    before_retry: Callable[[BaseException], None] | None = None,
    attempts: Attempts | None = None,
    sleep=time.sleep,
    clock=time.monotonic,
    rng: random.Random | None = None,
) -> T:
    """``fn()``; on an error of ``retry_on`` (for which ``retry_if``, when given, is true), wait and try
    again until the bounds are reached, then raise the last error.  ``before_retry(error)`` runs before
    each retry (e.g. to drop a broken connection); ``attempts`` is filled in as the call goes, also
    when it finally fails."""
    attempts = attempts if attempts is not None else Attempts()
    t0 = clock()
    while True:
        attempts.count += 1
        try:
            result = fn()
            attempts.elapsed_s = clock() - t0
            return result
        except retry_on as err:
            attempts.elapsed_s = clock() - t0
            retry = attempts.count - 1
            if retry >= backoff.retries or (retry_if is not None and not retry_if(err)):
                raise
            wait_ms = backoff.delay_ms(retry, rng)
            if attempts.elapsed_s + wait_ms / 1000.0 > backoff.total_s:
                raise
            if before_retry is not None:
                before_retry(err)
            sleep(wait_ms / 1000.0)
