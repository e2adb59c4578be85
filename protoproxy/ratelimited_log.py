"""Rate-limited log lines: one line per (logger, key) per interval, then a summary.

Why: a flood turns every per-connection WARNING into a flood of its own
(20,000 "max_connections reached" lines, 3 MB in 12 s), which fills disks and
hides the one line that matters. So the first line of a kind is logged as
usual; the repeats within `interval` are only counted, and the count is
logged as ``... suppressed N similar (key) in the last Xs`` when the next line
of that kind passes, or when the window ends (if a scheduler is given) so a
burst's size is never lost.

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
    """One key's current window: when its last line was logged, and what was held back."""

    logger: logging.Logger
    level: int
    opened: float
    suppressed: int = 0
    flush_scheduled: bool = False


class RateLimitedLog:
    """At most one line per (logger, key) per `interval` seconds, plus summaries.

    Keys are whatever names a kind of line: ``(listener, reason)`` for
    connection ends, ``(listener, errno)`` for accept errors. At most
    `max_keys` windows are remembered (the oldest is summarised and dropped),
    so a key built from attacker-chosen values cannot grow memory without bound.
    """

    def __init__(
        self,
        interval: float = 1.0,
        clock: Clock = time.monotonic,
        schedule: Schedule | None = None,
        max_keys: int = 1024,
    ) -> None:
        self.interval = interval
        self.clock = clock
        self.schedule = schedule
        self.max_keys = max_keys
        self._windows: dict[tuple[str, Hashable], _Window] = {}

    def log(
        self, logger: logging.Logger, level: int, key: Hashable, msg: str, *args: object
    ) -> bool:
        """Log `msg % args` unless a line of this kind passed less than `interval` ago.

        Returns whether the line was written (callers need not care).
        """
        if not logger.isEnabledFor(level):
            return False
        now = self.clock()
        wkey = (logger.name, key)
        window = self._windows.get(wkey)
        if window is not None and now - window.opened < self.interval:
            window.suppressed += 1
            if self.schedule is not None and not window.flush_scheduled:
                window.flush_scheduled = True
                self.schedule(
                    window.opened + self.interval - now, lambda: self._flush(wkey, window)
                )
            return False
        if window is not None:
            self._summarise(wkey, window, now)
            del self._windows[wkey]
        elif len(self._windows) >= self.max_keys:
            oldest = next(iter(self._windows))
            self._summarise(oldest, self._windows.pop(oldest), now)
        logger.log(level, msg, *args)
        self._windows[wkey] = _Window(logger, level, now)
        return True

    def warning(self, logger: logging.Logger, key: Hashable, msg: str, *args: object) -> bool:
        return self.log(logger, logging.WARNING, key, msg, *args)

    def flush(self) -> None:
        """Summarise every window that held lines back (at shutdown, say)."""
        now = self.clock()
        for wkey, window in list(self._windows.items()):
            self._summarise(wkey, window, now)
            window.suppressed = 0

    def _flush(self, wkey: tuple[str, Hashable], window: _Window) -> None:
        """The scheduled end of a window: report what it held back, start afresh.

        The key is forgotten, so the next line of its kind is logged at once;
        a window that a later line already replaced is left alone.
        """
        if self._windows.get(wkey) is window:
            del self._windows[wkey]
            self._summarise(wkey, window, self.clock())

    @staticmethod
    def _summarise(wkey: tuple[str, Hashable], window: _Window, now: float) -> None:
        if window.suppressed:
            window.logger.log(
                window.level,
                "... suppressed %d similar (%s) in the last %.1fs",
                window.suppressed,
                _describe(wkey[1]),
                now - window.opened,
            )


def _describe(key: Hashable) -> str:
    if isinstance(key, tuple):
        return " ".join(str(part) for part in key)
    return str(key)
