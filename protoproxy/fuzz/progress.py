"""The live count on stderr while a run goes: a bar on a terminal, a periodic line elsewhere."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """`mode` is "bar" (redrawn in place), "line" (one line every `every` s) or "quiet"."""

    def __init__(self, mode: str, stream: TextIO | None = None, every: float = 5.0) -> None:
        self.mode = mode
        self.stream = stream if stream is not None else sys.stderr
        self.every = every if mode == "line" else 0.1
        self._last = 0.0
        self._drawn = False

    @classmethod
    def choose(cls, progress: bool, quiet: bool, stream: TextIO | None = None) -> Progress:
        """--quiet wins; --progress or a tty draws the bar; a pipe gets periodic lines."""
        stream = stream if stream is not None else sys.stderr
        if quiet:
            return cls("quiet", stream)
        if progress or stream.isatty():
            return cls("bar", stream)
        return cls("line", stream)

    def update(
        self, cases: int, failures: int, labels: int, elapsed: float, fraction: float | None
    ) -> None:
        if self.mode == "quiet":
            return
        now = time.monotonic()
        if now - self._last < self.every:
            return
        self._last = now
        rate = cases / elapsed if elapsed > 0 else 0.0
        counts = f"{cases} cases  {rate:.0f}/s  {labels} labels  {failures} failures"
        if self.mode == "bar":
            frac = min(max(fraction or 0.0, 0.0), 1.0)
            filled = int(frac * 30)
            bar = "#" * filled + "-" * (30 - filled)
            self.stream.write(f"\r[{bar}] {frac * 100:3.0f}%  {counts}\x1b[K")
            self._drawn = True
        else:
            self.stream.write(f"fuzz: {counts}  ({elapsed:.0f}s)\n")
        self.stream.flush()

    def note(self, text: str) -> None:
        """A line that stays (a failure found), without breaking the bar."""
        if self.mode == "quiet":
            return
        if self._drawn:
            self.stream.write("\r\x1b[K")
        self.stream.write(text + "\n")
        self.stream.flush()
        self._last = 0.0

    def finish(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
