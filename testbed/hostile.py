"""Hostile fakes: what every protocol's hostile answers share.

A scenario's ``hostile: {seed, rate}`` makes a fake answer a `rate` share of
requests with edge values instead of its normal answer. Both the choice and
the answer are drawn from ``random.Random(f"{seed}:{index}")``, where `index`
counts the requests the fake received (0-based): the same seed and the same
requests give the same answers, and one (seed, index) pair redraws one answer
without replaying the requests before it.

Hypothesis' strategies (protoproxy_codecs.strategies) draw inside ``@given``
only; its data cannot be drawn from a seed per request in a supported way, so
the fakes use this small generator, driven by the same schemas, and lean on
the same edges those strategies do (type bounds, -1, 0, empty and long
values, unknown tags). What each protocol draws is in its module:
testbed/kafka/hostile.py, testbed/grpc_fakes/hostile.py.
"""

from __future__ import annotations

import random
from typing import TypeVar

T = TypeVar("T")

#: integers at the edges of each wire type, and the small ones every parser special-cases
INT_EDGES: dict[str, tuple[int, ...]] = {
    "int8": (-(2**7), -1, 0, 1, 2**7 - 1),
    "int16": (-(2**15), -1, 0, 1, 2**15 - 1),
    "uint16": (0, 1, 2**16 - 1),
    "int32": (-(2**31), -1, 0, 1, 2**31 - 1),
    "int64": (-(2**63), -1, 0, 1, 2**63 - 1),
}

#: strings that break naive code: empty, a NUL, non-ASCII, right-to-left, long
STRING_EDGES: tuple[str, ...] = ("", "\x00", "é\u202e☃", "x" * 300, "\U0001f600" * 64)


def draw_rng(seed: int, index: int, scope: str = "") -> random.Random:
    """The generator of request `index` under `seed` (string seeding is stable
    across runs and Python versions); `scope` tells apart fakes that count
    their own requests (one gRPC service from another)."""
    return random.Random(f"hostile:{seed}:{scope}:{index}")


def chosen(rng: random.Random, rate: float) -> bool:
    """Whether this request is answered hostile: the generator's first draw."""
    return rng.random() < rate


def pick(rng: random.Random, options: tuple[T, ...] | list[T]) -> T:
    return options[rng.randrange(len(options))]


class Counter:
    """Request indexes of one fake: plain int, the fakes run on one event loop."""

    __slots__ = ("next",)

    def __init__(self) -> None:
        self.next = 0

    def take(self) -> int:
        index = self.next
        self.next += 1
        return index


class Policy:
    """One fake's hostile policy: its seed, rate and request counter. The
    protocol's subclass decides which requests may be hostile and what each
    hostile answer carries."""

    def __init__(self, scope: str, seed: int, rate: float) -> None:
        self.scope = scope
        self.seed = seed
        self.rate = rate
        self.counter = Counter()

    def draw(self, wanted: bool) -> tuple[int, random.Random] | None:
        """The next request's (index, generator) when it is answered hostile.
        Every request takes an index, wanted or not, so one request's draw does
        not depend on which others were wanted."""
        index = self.counter.take()
        if not wanted:
            return None
        rng = draw_rng(self.seed, index, self.scope)
        if not chosen(rng, self.rate):
            return None
        return index, rng
