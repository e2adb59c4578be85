"""Hostile HTTP answers: a share of a WireMock fake's answers carry odd but valid HTTP/1.1.

Per request, `HttpHostile.plan` draws from ``draw_rng(seed, index, service)``
whether the answer is hostile and, if so, one kind of change to the stub's
own answer. Each stays valid HTTP/1.1 framing (h11 writes every byte), so a
client that breaks on one breaks on a value, not on a framing error:

- ``status``: the stub's body under another status: a rare 2xx (203, 206,
  299), a 4xx a client may special-case (408, 418, 429, 451, 499) or a 5xx
  (502, 503, 504, 599), a 429 or 503 with an odd ``Retry-After``;
- ``headers``: the stub's answer with edge headers: 100 extra ones, an empty
  value, an 8 KiB value, a repeated ``Content-Type``, or latin-1 bytes;
- ``chunked``: the stub's body as chunked transfer coding in chunks of one to
  seven bytes, ending in trailers;
- ``empty``: no body at all under the stub's status and headers;
- ``reason``: an edge reason phrase: empty, 1 KiB long, or latin-1.

Every hostile answer carries the header ``X-Testbed-Hostile: INDEX`` and is a
journal entry (`HostileAnswer`, ``target: http``) with the request's headers,
so a client's own request id traces it too.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from testbed.hostile import Policy, pick

KINDS = ("status", "headers", "chunked", "empty", "reason")
HEADER = "X-Testbed-Hostile"
ODD_STATUSES = (203, 206, 299, 408, 418, 429, 451, 499, 502, 503, 504, 599)
RETRY_AFTER = ("0", "-1", "86400000", "soon", "Wed, 21 Oct 2015 07:28:00 GMT", "")
REASONS = ("", "r" * 1024, "\xe9t\xe9 \xfc")
#: the most chunks one answer is cut into (a long body ends in one last chunk)
MAX_CHUNKS = 4096


@dataclass(slots=True)
class HttpPlan:
    """What a hostile answer changes; `edits` says it for the journal."""

    index: int
    kind: str
    edits: list[str] = field(default_factory=list)
    status: int | None = None
    #: headers added to the stub's
    headers: list[tuple[str, str]] = field(default_factory=list)
    reason: str | None = None
    #: chunk sizes of a ``chunked`` answer (cycled), and its trailers
    chunk_sizes: tuple[int, ...] = ()
    trailers: list[tuple[str, str]] = field(default_factory=list)
    empty: bool = False

    @property
    def tag(self) -> tuple[str, str]:
        return (HEADER, str(self.index))

    def chunks(self, body: bytes) -> list[bytes]:
        """`body` cut as the plan says (never more than MAX_CHUNKS pieces)."""
        out: list[bytes] = []
        at = 0
        sizes = self.chunk_sizes or (len(body) or 1,)
        while at < len(body):
            if len(out) == MAX_CHUNKS - 1:
                out.append(body[at:])
                break
            n = sizes[len(out) % len(sizes)]
            out.append(body[at : at + n])
            at += n
        return out


def _odd_headers(rng: random.Random, content_type: str | None) -> tuple[list[tuple[str, str]], str]:
    kind = pick(rng, ("many", "empty", "long", "repeated", "latin1"))
    if kind == "many":
        return [(f"X-Hostile-{i}", str(i)) for i in range(100)], "100 extra headers"
    if kind == "empty":
        return [("X-Hostile-Empty", "")], "an empty header value"
    if kind == "long":
        return [("X-Hostile-Long", "v" * 8192)], "an 8 KiB header value"
    if kind == "repeated":
        other = "text/plain" if content_type != "text/plain" else "application/json"
        return [("Content-Type", other)], f"a second Content-Type: {other}"
    return [("X-Hostile-Latin1", "caf\xe9 \xbf\xff")], "latin-1 bytes in a header value"


class HttpHostile(Policy):
    """One fake HTTP service's hostile policy."""

    def __init__(self, service: str, seed: int, rate: float, paths: list[str] | None) -> None:
        super().__init__(service, seed, rate)
        self.paths = paths

    def plan(self, path: str, content_type: str | None = None) -> HttpPlan | None:
        """The plan of the next answer (to `path`), None when it is answered
        normally. Admin calls and answers that are a stub's fault take no index
        (the service never asks for them)."""
        wanted = self.paths is None or any(path.startswith(p) for p in self.paths)
        drawn = self.draw(wanted)
        if drawn is None:
            return None
        index, rng = drawn
        kind = pick(rng, KINDS)
        plan = HttpPlan(index, kind)
        if kind == "status":
            plan.status = pick(rng, ODD_STATUSES)
            plan.edits.append(f"status={plan.status}")
            if plan.status in (429, 503) and rng.random() < 0.5:
                value = pick(rng, RETRY_AFTER)
                plan.headers.append(("Retry-After", value))
                plan.edits.append(f"Retry-After: {value!r}")
        elif kind == "headers":
            plan.headers, what = _odd_headers(rng, content_type)
            plan.edits.append(what)
        elif kind == "chunked":
            plan.chunk_sizes = tuple(rng.randint(1, 7) for _ in range(rng.randint(1, 4)))
            plan.trailers = [("X-Hostile-Trailer", pick(rng, ("", "t", "t" * 512)))]
            plan.edits.append(f"chunked in chunks of {list(plan.chunk_sizes)} bytes, trailers")
        elif kind == "empty":
            plan.empty = True
            plan.edits.append("no body")
        else:
            plan.reason = pick(rng, REASONS)
            shown = plan.reason if len(plan.reason) <= 12 else f"({len(plan.reason)} chars)"
            plan.edits.append(f"reason phrase {shown!r}")
        return plan
