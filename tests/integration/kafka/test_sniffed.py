"""Kafka found by sniffing on an `auto` listener: counted like any Kafka traffic,
but forwarded untouched (there is no broker configuration to rewrite to)."""

from __future__ import annotations

import socket
import struct

from protoproxy_codecs.kafka import framing

from .rig import KafkaRig


def _roundtrip(port: int, frame: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(frame)
        head = s.recv(4, socket.MSG_WAITALL)
        return head + s.recv(struct.unpack(">i", head)[0], socket.MSG_WAITALL)


def test_sniffed_kafka_is_counted_not_rewritten() -> None:
    auto = {"name": "auto", "listen": "127.0.0.1:0", "protocol": "auto", "upstream": "kafka"}
    with KafkaRig(brokers=2, extra_listeners=[auto]) as rig:
        assert rig.app is not None and rig.cluster is not None
        port = rig.app.proxy.listeners["auto"].port
        frame = _roundtrip(port, framing.encode_request(3, 9, 5, "sniffed", {"topics": []}))
        _, body = framing.decode_response(3, 9, frame[4:])
        real = {s.address for s in rig.cluster.servers.values()}
        assert {f"{b.host}:{b.port}" for b in body.brokers} == real  # untouched
        requests = rig.family("protoproxy_kafka_requests_total")
        assert requests == {("auto", "Metadata", "9", "sniffed"): 1}
        assert rig.histogram_counts("protoproxy_kafka_request_duration_seconds") == {
            ("auto", "Metadata"): 1
        }
        assert not rig.family("protoproxy_kafka_rewritten_responses_total")
