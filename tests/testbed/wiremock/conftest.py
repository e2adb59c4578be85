"""Helpers for the WireMock engine tests: an engine with a fixed clock, and a one-call request."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from testbed.wiremock import HttpIn, HttpOut, WireMockEngine

FIXED_NOW = dt.datetime(2026, 12, 2, 4, 30, 0, tzinfo=dt.UTC)


@pytest.fixture
def engine() -> WireMockEngine:
    return WireMockEngine(seed=7, clock=lambda: FIXED_NOW)


def call(
    engine: WireMockEngine,
    method: str = "GET",
    url: str = "/",
    headers: dict[str, str] | list[tuple[str, str]] | None = None,
    body: bytes | str = b"",
) -> HttpOut:
    pairs = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    raw = body.encode() if isinstance(body, str) else body
    return engine.handle(
        HttpIn(method, url, pairs, raw, client="127.0.0.1", absolute_url="http://h" + url)
    )


def stub(
    engine: WireMockEngine,
    request: dict[str, Any],
    response: dict[str, Any] | None = None,
    **extra: Any,
) -> str:
    return str(
        engine.add_mapping({"request": request, "response": response or {"status": 200}, **extra})[
            "id"
        ]
    )
