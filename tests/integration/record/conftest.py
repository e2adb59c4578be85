"""A recording App in front of the demo gRPC and HTTP servers."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from protoproxy.app import App
from protoproxy.config import from_dict


@contextlib.asynccontextmanager
async def recording_app(
    record: dict[str, Any], grpc_port: int | None = None, http_port: int | None = None
) -> AsyncIterator[App]:
    """An App whose ``grpc`` and ``http`` listeners record into one folder.

    Leaving the block stops the App, which writes what is still queued.
    """
    listeners: list[dict[str, Any]] = []
    upstreams: list[dict[str, Any]] = []
    for name, protocol, port in (("grpc", "grpc", grpc_port), ("http", "http", http_port)):
        if port is None:
            continue
        upstreams.append({"name": name, "endpoints": [f"127.0.0.1:{port}"]})
        listeners.append(
            {
                "name": name,
                "listen": "127.0.0.1:0",
                "protocol": protocol,
                "upstream": name,
                "record": record,
            }
        )
    app = App(
        from_dict({"admin": {"enabled": False}, "listeners": listeners, "upstreams": upstreams})
    )
    await app.start()
    try:
        yield app
    finally:
        await app.stop(drain=0)


def address(app: App, listener: str) -> str:
    return f"127.0.0.1:{app.proxy.listeners[listener].port}"


def files(root: Path, pattern: str) -> list[Path]:
    return sorted(p for p in root.glob(pattern) if not p.name.startswith("."))
