"""Peers and readers for the observability tests: a threaded fake Kafka cluster,
a raw Kafka client, proxy configs, and parsers for /metrics, /stats and the access log."""

from __future__ import annotations

import json
import logging
import socket
import struct
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from protoproxy_codecs.kafka import framing
from testbed.kafka import FakeKafkaCluster
from tests.peers import ServiceThread

Labels = tuple[tuple[str, str], ...]


class KafkaServer(ServiceThread):
    """A one-broker fake cluster: its bootstrap is also every partition's leader,
    so a raw client through one proxy listener never needs address rewriting."""

    def __init__(self) -> None:
        super().__init__(lambda: FakeKafkaCluster(brokers=1, seed=1))

    @property
    def address(self) -> str:
        return str(self.service.bootstrap)


class KafkaRaw:
    """A blocking Kafka client on raw frames, pipelining when asked."""

    def __init__(self, port: int, client_id: str = "observe-test") -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.client_id = client_id
        self.corr = 0
        self.buf = bytearray()

    def send(self, api: int, version: int, body: Any, client_id: str | None = None) -> int:
        self.corr += 1
        cid = self.client_id if client_id is None else client_id
        self.sock.sendall(framing.encode_request(api, version, self.corr, cid, body))
        return self.corr

    def send_many(self, frames: list[bytes]) -> None:
        self.sock.sendall(b"".join(frames))

    def frame(self, api: int, version: int, body: Any, client_id: str) -> bytes:
        self.corr += 1
        return framing.encode_request(api, version, self.corr, client_id, body)

    def recv_frame(self) -> bytes:
        while True:
            if len(self.buf) >= 4:
                (size,) = struct.unpack_from(">i", self.buf)
                if len(self.buf) >= 4 + size:
                    frame = bytes(self.buf[4 : 4 + size])
                    del self.buf[: 4 + size]
                    return frame
            data = self.sock.recv(1 << 20)
            if not data:
                raise ConnectionError("closed by the proxy")
            self.buf += data

    def request(self, api: int, version: int, body: Any, client_id: str | None = None) -> Any:
        corr = self.send(api, version, body, client_id)
        got, resp = framing.decode_response(api, version, self.recv_frame())
        assert got == corr
        return resp

    def close(self) -> None:
        self.sock.close()


def proxy_config(
    upstream: str,
    protocol: str = "grpc",
    access_log: Path | None = None,
    tail: bool = True,
    **extra: Any,
) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "admin": {"listen": "127.0.0.1:0"},
        "listeners": [
            {"name": "front", "listen": "127.0.0.1:0", "protocol": protocol, "upstream": "svc"}
        ],
        "upstreams": [{"name": "svc", "endpoints": [upstream]}],
        "tail": {"enabled": tail},
    }
    if access_log is not None:
        cfg["access_log"] = {"enabled": True, "path": str(access_log)}
    cfg.update(extra)
    return cfg


def get(url: str, token: str | None = None) -> bytes:
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.read()


def get_json(url: str) -> Any:
    return json.loads(get(url))


def scrape(admin_url: str) -> dict[str, dict[Labels, float]]:
    """/metrics parsed: sample name -> {sorted label pairs: value}."""
    text = get(admin_url + "/metrics").decode()
    out: dict[str, dict[Labels, float]] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def select(samples: dict[Labels, float], **want: str) -> Iterator[tuple[dict[str, str], float]]:
    for labels, value in samples.items():
        d = dict(labels)
        if all(d.get(k) == v for k, v in want.items()):
            yield d, value


def total(samples: dict[Labels, float] | None, **want: str) -> float:
    return sum(v for _, v in select(samples or {}, **want))


def outputs(
    messages: str, config: str, access_log: Path, records: list[logging.LogRecord]
) -> dict[str, str]:
    """Everywhere a secret could show in clear, by name: /messages, /config, the
    access log and the process log."""
    return {
        "messages": messages,
        "config": config,
        "access_log": access_log.read_text(),
        "logs": "\n".join(r.getMessage() for r in records),
    }


def assert_not_in_clear(texts: dict[str, str], secrets: tuple[str, ...]) -> None:
    for where, text in texts.items():
        for secret in secrets:
            assert secret not in text, f"{secret} in clear in {where}"


def access_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
