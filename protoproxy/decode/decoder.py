"""A capture in, rows out: flows keyed by address pairs, one StreamDecoder each."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from protoproxy_codecs.base import DOWNSTREAM, NS, UPSTREAM, Exchange
from protoproxy_codecs.protobuf_display import DescriptorCatalog, display_grpc_message

from . import sniff as sniffing
from .pcap import ACK, SYN, Segment, segments
from .stream import StreamDecoder
from .tcp import Flow

Key = tuple[tuple[str, int], tuple[str, int]]


def _client_server(seg: Segment, protocol: str | None) -> tuple[tuple[str, int], tuple[str, int]]:
    a, b = (seg.src, seg.sport), (seg.dst, seg.dport)
    if seg.flags & SYN:
        return (a, b) if not seg.flags & ACK else (b, a)
    if seg.dport in sniffing.PORT_HINTS:
        return a, b
    if seg.sport in sniffing.PORT_HINTS:
        return b, a
    return (a, b) if seg.dport < seg.sport else (b, a)


def decode(
    path: str | Path,
    protocol: str | None = None,
    progress: Callable[[int], None] | None = None,
    frames: bool = False,
) -> list[StreamDecoder]:
    """Every TCP stream of the capture, decoded; in order of first packet."""
    flows: dict[Key, tuple[Flow, StreamDecoder]] = {}
    order: list[tuple[Flow, StreamDecoder]] = []
    for n, (seg, offset) in enumerate(segments(path), 1):
        if progress is not None and n % 4096 == 0:
            progress(offset)
        a, b = (seg.src, seg.sport), (seg.dst, seg.dport)
        pair = flows.get((a, b)) or flows.get((b, a))
        if pair is None:
            client, server = _client_server(seg, protocol)
            mid = not seg.flags & SYN
            name = protocol or (sniffing.by_port(seg.sport, seg.dport) if mid else None)
            sd = StreamDecoder(
                len(order) + 1,
                f"{client[0]}:{client[1]}",
                f"{server[0]}:{server[1]}",
                name,
                mid,
                frames,
            )
            flow = Flow(client, server, sd.on)
            pair = (flow, sd)
            flows[(client, server)] = pair
            order.append(pair)
        pair[0].add(seg)
    for flow, sd in order:
        flow.finish()
        sd.finish()
        if flow.syn_at and flow.synack_at:
            sd.upstream_connect = flow.synack_at - flow.syn_at
    return [sd for _f, sd in order]


def _s(ns: int | None) -> float | None:
    return None if ns is None else round(ns / NS, 9)


def row(
    sd: StreamDecoder, ex: Exchange, first: bool, catalog: DescriptorCatalog | None = None
) -> dict[str, Any]:
    """One exchange as a plain dict: the access-log fields plus protocol details."""
    r: dict[str, Any] = {
        "start": round(ex.started / NS, 6),
        "duration": _s(ex.duration),
        "upstream_connect": _s(sd.upstream_connect) if first else None,
        "request_duration": _s(ex.request_duration),
        "upstream_service_time": _s(ex.upstream_service_time),
        "response_duration": _s(ex.response_duration),
        # One leg of the traffic: nothing is known of a proxy's own hold.
        "proxy_time": None,
        "fault_delay": None,
        "conn": sd.conn,
        "downstream": sd.client,
        "upstream": sd.server,
        "protocol": ex.protocol,
        "operation": ex.operation,
        "status": ex.status,
        "request_bytes": ex.request_bytes,
        "response_bytes": ex.response_bytes,
    }
    for k, v in ex.attrs.items():
        if isinstance(v, (str, int, float, bool, list, dict)) or v is None:
            r[k] = v
    if ex.protocol == "kafka":
        info = sd.requests.get(ex.key)
        if info is not None:
            r["api_key"] = info.get("api_key")
            r["api_version"] = info.get("api_version")
            r["correlation_id"] = info.get("correlation_id")
            r["client_id"] = info.get("client_id")
        records = ex.attrs.get("records")
        if isinstance(records, dict):
            # Produce: the request's partitions; Fetch: the response's
            r["partitions"] = {t: sorted(parts) for t, parts in records.items()}
    elif ex.key is not None and isinstance(ex.key, int):
        r["stream_id"] = ex.key
        if ex.protocol == "grpc":
            r["messages"] = _messages(sd, ex, catalog)
    return r


def _messages(
    sd: StreamDecoder, ex: Exchange, catalog: DescriptorCatalog | None
) -> list[dict[str, Any]]:
    """The call's messages (the first MAX_CALL_MESSAGES each way), typed when the
    catalog knows the method, else protobuf's wire view."""
    out: list[dict[str, Any]] = []
    kept = sd.grpc.get(ex.key, {})
    encoding = ex.attrs.get("grpc_encoding")
    for side, direction in (("request", UPSTREAM), ("response", DOWNSTREAM)):
        for ev in kept.get(side, ()):
            item: dict[str, Any] = {
                "direction": side,
                "index": ev.index,
                "length": ev.length,
                "compressed": bool(ev.compressed),
            }
            if ev.truncated:
                item["truncated"] = True
            else:
                item["display"] = display_grpc_message(
                    ev.payload,
                    compressed=bool(ev.compressed),
                    encoding=encoding if isinstance(encoding, str) else None,
                    catalog=catalog,
                    path=ex.operation,
                    direction=direction,
                )
            out.append(item)
    return out


def rows(
    streams: list[StreamDecoder], catalog: DescriptorCatalog | None = None
) -> Iterator[dict[str, Any]]:
    for sd in streams:
        for i, ex in enumerate(sd.exchanges):
            yield row(sd, ex, i == 0, catalog)


def frame_rows(streams: list[StreamDecoder]) -> Iterator[dict[str, Any]]:
    """Every HTTP/2 frame of every stream decoded with `frames=True`, in capture order
    per connection."""
    for sd in streams:
        yield from sd.frames or ()
