"""Which codec a stream gets: `--protocol`, then port hints, then the codecs' own sniffing.

A stream seen from its first byte is sniffed as the proxy sniffs
(protoproxy_codecs.registry.sniff: HTTP/2 preface, HTTP/1 request line, Kafka
header plausibility). A stream joined mid-way cannot be sniffed at byte 0;
it gets its port hint, else Kafka if `kafka_boundary` proves a frame.
"""

from __future__ import annotations

import struct

from protoproxy_codecs import registry
from protoproxy_codecs.base import Sniff
from protoproxy_codecs.kafka import KafkaCodec

PORT_HINTS: dict[int, str] = {
    9092: "kafka",
    9093: "kafka",
    50051: "http2",
    80: "http",
    8080: "http",
}

_I32 = struct.Struct(">i")
#: Bytes of a capture searched for a provable Kafka frame before giving up.
RESYNC_WINDOW = 1 << 20


def by_port(sport: int, dport: int) -> str | None:
    return PORT_HINTS.get(dport) or PORT_HINTS.get(sport)


def sniff(head: bytes) -> tuple[str | None, Sniff]:
    return registry.sniff(head)


def kafka_boundary(buf: bytes | bytearray, requests: bool, corr_ids: set[int]) -> int | None:
    """The first offset where a Kafka frame boundary is proved, or None.

    Proved means: a request header the codec's sniff accepts (plausible size,
    known api_key and version, correlation id >= 0, client_id fitting), or for
    responses a size whose correlation id answers a request already seen; AND
    the frame it starts is followed, exactly at its end, by another such frame
    or by the end of the bytes seen so far (which a capture cut at a segment
    boundary gives). One plausible header alone is not proof: record bytes
    inside a Produce often look like headers.
    """
    n = min(len(buf), RESYNC_WINDOW)
    for p in range(n - 8):
        if _plausible(buf, p, requests, corr_ids):
            end = p + 4 + _I32.unpack_from(buf, p)[0]
            if end == len(buf) or (
                end + 8 <= len(buf) and _plausible(buf, end, requests, corr_ids)
            ):
                return p
    return None


def _plausible(buf: bytes | bytearray, p: int, requests: bool, corr_ids: set[int]) -> bool:
    if requests:
        return KafkaCodec.sniff(bytes(buf[p : p + 14])) is Sniff.YES
    size = _I32.unpack_from(buf, p)[0]
    return 4 <= size <= 100 * 1024 * 1024 and _I32.unpack_from(buf, p + 4)[0] in corr_ids
