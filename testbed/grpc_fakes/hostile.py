"""Hostile gRPC answers: a share of calls answered with odd but valid things.

Per call, `GrpcHostile.plan` draws from ``draw_rng(seed, index, service)``
whether the call is hostile and, if so, one kind of answer:

- ``status``: the call ends at once with a non-OK status whose details are an
  edge string (empty, NUL, non-ASCII, 8 KiB), sometimes with a
  ``grpc-status-details-bin`` that is not a google.rpc.Status, or is one whose
  code differs from the call's;
- ``trailers_only``: the same, as a Trailers-Only response carrying odd
  trailers (many keys, empty values, binary ``-bin`` values);
- ``empty``: the output type's empty message (zero bytes) instead of the stub's;
- ``unknown_fields``: the stub's message followed by fields its schema does not
  have (varint, fixed, length-delimited, numbers up to 2^29-1);
- ``huge``: the stub's message with one unknown length-delimited field of
  64 KiB, 1 MiB or 4 MiB + 1 (just past grpcio's default receive limit);
- ``metadata``: the stub's answer after initial metadata with edge values:
  100 keys, an empty value, a 4 KiB value, binary bytes in a ``-bin`` key;
- ``continuation``: the stub's answer, its header blocks framed as HEADERS
  (padded by 0, 1 or 255 bytes) and then 1, 8 or 64 CONTINUATION frames;
- ``settings``: the stub's answer, with a SETTINGS change mid-connection
  before it and the server's values restored after it: unknown setting ids,
  a header table of 0, no new streams, the minimum frame size, push off, an
  empty SETTINGS, or one id given twice.

The two frame kinds are carried out by the fake's frame relay
(testbed/grpc_fakes/frames.py), which reads them off the call's
``x-testbed-frames`` header.

Every hostile answer carries the trailer ``x-testbed-hostile: INDEX`` (a
client's RpcError shows it) and goes to the journal as a `HostileAnswer`
with the call's metadata, so the client's own request id traces it too.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import grpc

from testbed.hostile import STRING_EDGES, Policy, pick

from .frames import MARKER, FramePlan

FRAME_KINDS = ("continuation", "settings")
KINDS = ("status", "trailers_only", "empty", "unknown_fields", "huge", "metadata", *FRAME_KINDS)
#: CONTINUATION frames per header block: 64 is the most a defended peer takes by default
CHAINS = (1, 8, 64)
PADS = (0, 1, 255)
#: (what the journal says, the SETTINGS entries): only changes a client must follow
#: and that cannot hurt the server (never a bigger window, table or frame than it has)
SETTINGS_EDITS: tuple[tuple[str, tuple[tuple[int, int], ...]], ...] = (
    ("unknown ids 0xa, 0x4242, 0xffff", ((0xA, 1), (0x4242, 0), (0xFFFF, 2**32 - 1))),
    ("HEADER_TABLE_SIZE=0", ((0x1, 0),)),
    ("MAX_CONCURRENT_STREAMS=0", ((0x3, 0),)),
    ("MAX_FRAME_SIZE=16384", ((0x5, 16384),)),
    ("ENABLE_PUSH=0", ((0x2, 0),)),
    ("empty", ()),
    ("HEADER_TABLE_SIZE twice (256, then 0)", ((0x1, 256), (0x1, 0))),
)
TRAILER = "x-testbed-hostile"
ODD_STATUSES = tuple(c for c in grpc.StatusCode if c is not grpc.StatusCode.OK)
HUGE_SIZES = (64 * 1024, 1024 * 1024, 4 * 1024 * 1024 + 1)
DETAILS = (*STRING_EDGES, "line\nbreak", "d" * 8192)


@dataclass(slots=True)
class Plan:
    """What a hostile call does; `edits` says it for the journal."""

    index: int
    kind: str
    edits: list[str] = field(default_factory=list)
    status: grpc.StatusCode | None = None
    details: str = ""
    #: extra trailers (status kinds) or initial metadata (``metadata``)
    metadata: list[tuple[str, str | bytes]] = field(default_factory=list)
    #: bytes appended to each response message (unknown fields)
    suffix: bytes = b""
    #: every response message replaced by the empty one
    empty: bool = False
    #: a frame kind's edit, for the frame relay
    frames: FramePlan | None = None

    @property
    def tag(self) -> tuple[str, str]:
        return (TRAILER, str(self.index))

    @property
    def marker(self) -> tuple[tuple[str, str], ...]:
        """The header that asks the frame relay for this plan's frames (none: no frame kind)."""
        return () if self.frames is None else ((MARKER, self.frames.value()),)


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def unknown_fields(rng: random.Random, count: int) -> bytes:
    """`count` protobuf fields numbered past any schema's (1000 .. 2^29-1)."""
    out = b""
    for _ in range(count):
        number = pick(rng, (1000, 4095, 65535, 2**29 - 1, rng.randrange(1000, 2**29)))
        wire = pick(rng, (0, 1, 2, 5))
        out += _varint(number << 3 | wire)
        if wire == 0:
            out += _varint(pick(rng, (0, 1, 2**63, 2**64 - 1)))
        elif wire == 1:
            out += rng.randbytes(8)
        elif wire == 5:
            out += rng.randbytes(4)
        else:
            payload = rng.randbytes(rng.randrange(0, 32))
            out += _varint(len(payload)) + payload
    return out


def _huge(size: int) -> bytes:
    """One unknown length-delimited field of `size` bytes (field 2^29-1)."""
    return _varint((2**29 - 1) << 3 | 2) + _varint(size) + b"\xab" * size


def _odd_metadata(rng: random.Random) -> list[tuple[str, str | bytes]]:
    out: list[tuple[str, str | bytes]] = []
    kind = pick(rng, ("many", "empty", "long", "binary"))
    if kind == "many":
        out.extend((f"x-hostile-{i}", str(i)) for i in range(100))
    elif kind == "empty":
        out.append(("x-hostile-empty", ""))
    elif kind == "long":
        out.append(("x-hostile-long", "v" * 4096))
    else:
        out.append(("x-hostile-bin", bytes(range(256))))
    return out


class GrpcHostile(Policy):
    """One fake service's hostile policy."""

    def __init__(self, service: str, seed: int, rate: float, methods: list[str] | None) -> None:
        super().__init__(service, seed, rate)
        self.service = service
        self.methods = methods

    def _wanted(self, path: str) -> bool:
        if self.methods is None:
            return True
        return any(
            path == m or path.endswith("." + m) or path.endswith("/" + m) for m in self.methods
        )

    def plan(self, path: str) -> Plan | None:
        """The plan of the next call (to `path`), None when it is answered normally."""
        drawn = self.draw(self._wanted(path))
        if drawn is None:
            return None
        index, rng = drawn
        kind = pick(rng, KINDS)
        plan = Plan(index, kind)
        if kind in ("status", "trailers_only"):
            plan.status = pick(rng, ODD_STATUSES)
            plan.details = pick(rng, DETAILS)
            plan.edits.append(f"status={plan.status.name} details={_short(plan.details)}")
            if kind == "trailers_only":
                plan.metadata = _odd_metadata(rng)
                plan.edits.append(f"trailers: {_described(plan.metadata)}")
            elif rng.random() < 0.5:
                bad = pick(rng, ("garbage", "mismatch"))
                plan.metadata.append(
                    ("grpc-status-details-bin", _details_bin(rng, bad, plan.status))
                )
                plan.edits.append(f"grpc-status-details-bin: {bad}")
        elif kind == "empty":
            plan.empty = True
            plan.edits.append("empty message")
        elif kind == "unknown_fields":
            n = rng.randint(1, 4)
            plan.suffix = unknown_fields(rng, n)
            plan.edits.append(f"{n} unknown fields ({len(plan.suffix)} bytes)")
        elif kind == "huge":
            size = pick(rng, HUGE_SIZES)
            plan.suffix = _huge(size)
            plan.edits.append(f"unknown field of {size} bytes")
        elif kind == "continuation":
            chain, pad = pick(rng, CHAINS), pick(rng, PADS)
            plan.frames = FramePlan(kind, chain=chain, pad=pad)
            plan.edits.append(
                f"header blocks as HEADERS ({pad} bytes of padding) + {chain} CONTINUATION"
            )
        elif kind == "settings":
            said, pairs = pick(rng, SETTINGS_EDITS)
            plan.frames = FramePlan(kind, settings=pairs)
            plan.edits.append(f"SETTINGS mid-connection: {said}; the server's values after")
        else:
            plan.metadata = _odd_metadata(rng)
            plan.edits.append(f"initial metadata: {_described(plan.metadata)}")
        return plan


def _details_bin(rng: random.Random, bad: str, status: grpc.StatusCode) -> bytes:
    if bad == "garbage":
        return rng.randbytes(rng.randrange(1, 24)) + b"\xff"
    from google.rpc import status_pb2

    other = status.value[0] % 16 + 1  # a code that is not the call's
    return status_pb2.Status(code=other, message="mismatch").SerializeToString()


def _short(text: str) -> str:
    return repr(text if len(text) <= 12 else f"{text[:8]}...({len(text)} chars)")


def _described(metadata: list[tuple[str, str | bytes]]) -> str:
    if len(metadata) > 3:
        return f"{len(metadata)} keys"
    return ", ".join(f"{k} ({len(v)} bytes)" for k, v in metadata)
