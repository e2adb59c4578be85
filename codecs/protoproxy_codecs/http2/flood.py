"""Flood rules for one HTTP/2 connection: valid frames, abusive pattern.

Each rule is checked by the codec *before* the frames of the read are handed
out for relaying, so a flood that breaks a rule never reaches the upstream
past the read that broke it. A broken rule raises FloodError, whose reason
names the rule; the codec maps every such reason to GOAWAY ENHANCE_YOUR_CALM.

The rules (docs/security.md#http2-floods-what-the-proxy-refuses has the attacks they answer):

* ``flood_rapid_reset``: the client resets more than `max_reset_ratio` of
  the streams it opened before any response byte, once it opened
  `reset_check_after` (CVE-2023-44487). The counts halve every
  8 x `reset_check_after` streams, so an old good history cannot cover a
  later flood for long.
* ``flood_control_frames``: more PING, SETTINGS, WINDOW_UPDATE, PRIORITY,
  empty DATA or empty CONTINUATION frames per second than
  `control_frames_per_s` (a token bucket holding one second's worth;
  CVE-2019-9512/9515/9518).
* ``flood_continuations``: more than `max_continuations` CONTINUATION frames
  in one header block (the 2024 CONTINUATION flood).
* ``flood_header_bytes``: more decoded header bytes per second than
  `header_bytes_per_s` (HPACK amplification: a 100-byte block that names a
  4 KiB table entry 60 times decodes to 242 KB; CVE-2016-6581-like).
* ``flood_requests_per_read``: more than `max_requests_per_read` new streams
  in one read.

Time is the codec's read time (`read_at`, from its injected clock): sans-IO,
and no clock read of its own.
"""

from __future__ import annotations

from ..base import FloodError, Http2FloodLimits

_NS = 1_000_000_000


class TokenBucket:
    """`rate` tokens per second, holding at most one second's worth."""

    __slots__ = ("at", "rate", "tokens")

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.tokens = float(rate)
        self.at = 0  # when `tokens` was last refilled (0: not yet)

    def take(self, cost: float, now: int) -> bool:
        """Spend `cost`; False when the bucket ran dry (the rule is broken)."""
        tokens = self.tokens
        if now != self.at:
            if self.at:
                tokens = min(self.rate, tokens + (now - self.at) * self.rate / _NS)
            self.at = now
        tokens -= cost
        self.tokens = tokens
        return tokens >= 0


class FloodGuard:
    """The counters the rules read, for one connection (both senders)."""

    __slots__ = (
        "_control",
        "_header_bytes",
        "_read",
        "_read_streams",
        "limits",
        "resets",
        "streams",
    )

    def __init__(self, limits: Http2FloodLimits) -> None:
        self.limits = limits
        #: client-opened streams and premature resets among them (halved as they grow)
        self.streams = 0
        self.resets = 0
        self._read = -1  # the feed `_read_streams` counts for
        self._read_streams = 0
        #: per sender: control frames and decoded header bytes
        self._control = (
            TokenBucket(limits.control_frames_per_s),
            TokenBucket(limits.control_frames_per_s),
        )
        self._header_bytes = (
            TokenBucket(limits.header_bytes_per_s),
            TokenBucket(limits.header_bytes_per_s),
        )

    def opened(self, feed: int) -> None:
        """The client opened a stream in feed number `feed`."""
        limits = self.limits
        if feed != self._read:
            self._read = feed
            self._read_streams = 0
        self._read_streams += 1
        if limits.max_requests_per_read and self._read_streams > limits.max_requests_per_read:
            raise FloodError(
                f"more than {limits.max_requests_per_read} new streams in one read",
                "flood_requests_per_read",
            )
        self.streams += 1
        if self.streams >= 8 * limits.reset_check_after:
            self.streams //= 2
            self.resets //= 2

    def reset(self) -> None:
        """The client reset one of its streams before any response byte."""
        self.resets += 1
        limits = self.limits
        if (
            limits.reset_check_after
            and self.streams >= limits.reset_check_after
            and self.resets > limits.max_reset_ratio * self.streams
        ):
            raise FloodError(
                f"{self.resets} of the last {self.streams} streams reset before any response",
                "flood_rapid_reset",
            )

    def control(self, sender: int, now: int) -> None:
        """`sender` sent a control frame (or an empty one) at `now`."""
        bucket = self._control[sender]
        if bucket.rate and not bucket.take(1, now):
            raise FloodError(
                f"more than {bucket.rate} control frames per second", "flood_control_frames"
            )

    def continuations(self, count: int) -> None:
        """A header block has had `count` CONTINUATION frames so far."""
        most = self.limits.max_continuations
        if most and count > most:
            raise FloodError(
                f"more than {most} CONTINUATION frames in one header block",
                "flood_continuations",
            )

    def header_bytes(self, sender: int, size: int, now: int) -> None:
        """`sender`'s last header block decoded to `size` bytes (RFC 7541 sizes)."""
        bucket = self._header_bytes[sender]
        if bucket.rate and not bucket.take(size, now):
            raise FloodError(
                f"more than {bucket.rate} decoded header bytes per second",
                "flood_header_bytes",
            )
