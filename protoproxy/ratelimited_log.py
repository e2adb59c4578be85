"""Rate-limited log lines: a burst per (logger, key), then one per interval, and a summary.

Why: a flood turns every per-connection WARNING into a flood of its own
(20,000 "max_connections reached" lines, 3 MB in 12 s), which fills disks and
hides the one line that matters. So the first lines of a kind are logged as
usual; once the kind's small burst is spent, the repeats are only counted
until the next token is back (one per `interval`), and the count is logged as
``... suppressed N similar (key) in the last Xs`` before the next line of that
kind, or when the token is back (if a scheduler is given) so a burst's size
is never lost.

Sans-IO apart from the logger: the clock and the scheduler are injected, so
tests drive time by hand.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

Clock = Callable[[], float]
#: ``schedule(delay, callback)``: run `callback` after `delay` seconds (loop.call_later)
Schedule = Callable[[float, Callable[[], None]], Any]


@dataclass
class _Window:
    """One key's token bucket, and what it held back since it last ran dry."""

    logger: logging.Logger
    level: int
    tokens: float
    refilled: float
    suppressed: int = 0
    suppressed_since: float = 0.0
    flush_scheduled: bool = False


class RateLimitedLog:
    """At most `burst` lines at once per (logger, key), then one per `interval`, plus summaries.

    A token bucket per key: a few lines of a kind (a test's handful of
    decode errors, a short incident) are all written; a flood is thinned to
    one line per `interval`. Keys are whatever names a kind of line:
    ``(listener, reason)`` for connection ends, ``("accept", listener, errno)``
    for accept errors. At most `max_keys` buckets are remembered (the oldest
    is summarised and dropped), so keys built from peer-chosen values cannot
    grow memory without bound.
    """

    def __init__(
        self,
        interval: float = 1.0,
        clock: Clock = time.monotonic,
        schedule: Schedule | None = None,
        burst: int = 1,
        max_keys: int = 1024,
    ) -> None:
        self.interval = interval
        self.clock = clock
        self.schedule = schedule
        self.burst = burst
        self.max_keys = max_keys
        self._windows: dict[tuple[str, Hashable], _Window] = {}

    def log(
        self, logger: logging.Logger, level: int, key: Hashable, msg: str, *args: object
    ) -> bool:
        """Log `msg % args` unless this kind's bucket is empty; returns whether it was written."""
        if not logger.isEnabledFor(level):
            return False
        now = self.clock()
        wkey = (logger.name, key)
        window = self._windows.get(wkey)
        if window is None:
            if len(self._windows) >= self.max_keys:
                oldest = next(iter(self._windows))
                self._summarise(oldest, self._windows.pop(oldest), now)
            window = self._windows[wkey] = _Window(logger, level, float(self.burst), now)
        else:
            window.tokens = min(
                float(self.burst), window.tokens + (now - window.refilled) / self.interval
            )
            window.refilled = now
        if window.tokens < 1:
            if not window.suppressed:
                window.suppressed_since = now
            window.suppressed += 1
            if self.schedule is not None and not window.flush_scheduled:
                window.flush_scheduled = True
                self.schedule(
                    (1 - window.tokens) * self.interval, lambda: self._flush(wkey, window)
                )
            return False
        window.tokens -= 1
        self._summarise(wkey, window, now)
        logger.log(level, msg, *args)
        return True

    def warning(self, logger: logging.Logger, key: Hashable, msg: str, *args: object) -> bool:
        return self.log(logger, logging.WARNING, key, msg, *args)

    def flush(self) -> None:
        """Summarise every bucket that held lines back (at shutdown, say)."""
        now = self.clock()
        for wkey, window in self._windows.items():
            self._summarise(wkey, window, now)

    def _flush(self, wkey: tuple[str, Hashable], window: _Window) -> None:
        """The scheduled moment a token is back: report what the bucket held back.

        A bucket that a line (or eviction) already summarised has nothing to say.
        """
        window.flush_scheduled = False
        if self._windows.get(wkey) is window:
            self._summarise(wkey, window, self.clock())

    @staticmethod
    def _summarise(wkey: tuple[str, Hashable], window: _Window, now: float) -> None:
        if window.suppressed:
            window.logger.log(
                window.level,
                "... suppressed %d similar (%s) in the last %.1fs",
                window.suppressed,
                _describe(wkey[1]),
                now - window.suppressed_since,
            )
            window.suppressed = 0


def _describe(key: Hashable) -> str:
    if isinstance(key, tuple):
        return " ".join(str(part) for part in key)
    return str(key)
