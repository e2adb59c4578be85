"""fixtures/captures: each pcap re-decodes to its committed JSON lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from protoproxy.decode.decoder import decode, rows

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "captures"


@pytest.mark.parametrize("name", ["kafka-python-producer", "grpcio-unary-stream"])
def test_golden(name: str) -> None:
    golden = [json.loads(line) for line in (FIXTURES / f"{name}.jsonl").read_text().splitlines()]
    assert golden
    got = [
        json.loads(json.dumps(r, sort_keys=True)) for r in rows(decode(FIXTURES / f"{name}.pcap"))
    ]
    assert got == golden
