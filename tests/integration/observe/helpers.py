"""Peers and readers for the observability tests: a threaded fake gRPC service,
proxy configs, and parsers for /metrics, /stats and the access log."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from testbed.grpc import FakeGrpcService

Labels = tuple[tuple[str, str], ...]


class GrpcServer:
    """FakeGrpcService on its own event loop in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.service: FakeGrpcService | None = None

    def __enter__(self) -> GrpcServer:
        self.thread.start()

        async def boot() -> FakeGrpcService:
            svc = FakeGrpcService("127.0.0.1", 0)
            await svc.start()
            return svc

        self.service = asyncio.run_coroutine_threadsafe(boot(), self.loop).result(30)
        return self

    @property
    def address(self) -> str:
        assert self.service is not None
        return self.service.address

    def __exit__(self, *exc: object) -> None:
        assert self.service is not None
        asyncio.run_coroutine_threadsafe(self.service.stop(0), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


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


def access_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
