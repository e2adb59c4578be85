"""A tap of grpcio calls through the real proxy, read back with tshark.

Recording relays sit on both sides of the proxy (client -> relay -> proxy ->
relay -> server), so what each endpoint really sent is known byte for byte.
1,000 unary calls and a server stream, on one connection (HPACK state and
TCP sequence numbers over a long tap). Two taps record the same connection: one with `redact: false` (its streams
must equal the relays' records exactly) and one redacting (no token bytes
anywhere in it, and tshark still reads every header and gRPC status).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.http.tap import Tap as Relay
from tests.peers import LoopThread, ProxyThread

from .tshark import headers, problems, streams

TOKEN = "Bearer tok-9f8e7d6c5b4a-SECRET"
#: unary calls on the one connection (issue 15: tshark reads a tap of 1,000 calls cleanly)
CALLS = 1000
COOKIE = "session=cafebabe-deadbeef-SECRET"


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from testbed.grpc.client import SyncClient
    from testbed.threaded import TestbedThread

    folder = tmp_path_factory.mktemp("taps")
    relays = LoopThread()
    relays.start_loop()
    with TestbedThread() as tb:
        host, port = tb.grpc_target.rsplit(":", 1)

        async def open_relay(h: str, p: int) -> Relay:
            return await Relay(h, p).__aenter__()

        up = relays.call(lambda: open_relay(host, int(port)))
        config = {
            "admin": {"enabled": False},
            "captures": {"dir": str(folder)},
            "listeners": [
                {"name": "grpc", "listen": "127.0.0.1:0", "protocol": "grpc", "upstream": "g"}
            ],
            "upstreams": [{"name": "g", "endpoints": [up.address]}],
        }
        with ProxyThread(config) as proxy:
            app = proxy.app

            async def start() -> tuple[str, str]:
                raw = app.captures.start(name="raw", redact=False)
                red = app.captures.start(name="red", listener="grpc", protocol="grpc")
                return raw.id, red.id

            ids = proxy.call(start)
            down = relays.call(lambda: open_relay("127.0.0.1", proxy.port("grpc")))
            md = [("authorization", TOKEN), ("cookie", COOKIE)]
            with SyncClient.connect(down.address) as client:
                results = [client.unary(metadata=md) for _ in range(CALLS)]
                results.append(client.server_stream(metadata=md))
            relays.call(lambda: down.wait_closed())
            relays.call(lambda: up.wait_closed())

            async def stop() -> None:
                for i in ids:
                    app.captures.stop(i)
                    await app.captures.get(i).wait_stopped()

            proxy.call(stop)
            taps = {i: app.captures.get(i).describe() for i in ids}
            yield {
                "results": results,
                "down": down.connections,
                "up": up.connections,
                "listen": proxy.port("grpc"),
                "upstream": up.port,
                "taps": taps,
                "files": {i: Path(taps[i]["files"][0]) for i in ids},
            }
            relays.call(lambda: down.__aexit__(None, None, None))
            relays.call(lambda: up.__aexit__(None, None, None))
    relays.stop_loop()


def _decode_as(rec: dict[str, Any]) -> tuple[str, ...]:
    return (f"tcp.port=={rec['listen']},http2", f"tcp.port=={rec['upstream']},http2")


def test_calls_went_through(recorded: dict[str, Any]) -> None:
    assert all(r.ok for r in recorded["results"])
    assert len(recorded["down"]) == 1 and len(recorded["up"]) == 1
    for tap in recorded["taps"].values():
        assert tap["connections"] == 1 and tap["dropped"] == 0 and tap["packets"] > 0


def test_tshark_reads_the_tap_cleanly(recorded: dict[str, Any]) -> None:
    for path in recorded["files"].values():
        assert problems(path, _decode_as(recorded)) == []


def test_each_stream_is_what_its_endpoint_sent(recorded: dict[str, Any]) -> None:
    got = streams(recorded["files"]["raw"], _decode_as(recorded))
    listen, upstream = recorded["listen"], recorded["upstream"]
    down, up = recorded["down"][0], recorded["up"][0]
    client_leg = {k: v for k, v in got.items() if listen in k}
    upstream_leg = {k: v for k, v in got.items() if upstream in k}
    (to_proxy,) = [v for (s, d), v in client_leg.items() if d == listen]
    (to_client,) = [v for (s, d), v in client_leg.items() if s == listen]
    (to_server,) = [v for (s, d), v in upstream_leg.items() if d == upstream]
    (from_server,) = [v for (s, d), v in upstream_leg.items() if s == upstream]
    assert to_proxy == bytes(down.up)  # what the client sent
    assert to_client == bytes(down.down)  # what the proxy sent it
    assert to_server == bytes(up.up)  # what the proxy sent the server
    assert from_server == bytes(up.down)  # what the server sent


def test_redacted_tap_holds_no_credentials(recorded: dict[str, Any]) -> None:
    raw = recorded["files"]["raw"].read_bytes()
    red = recorded["files"]["red"].read_bytes()
    assert len(red) == len(raw)  # same-length filler: every frame keeps its size
    # The testbed's server echoes the metadata it got in its response *messages*:
    # payloads are not redacted, so the request streams are searched byte-wise.
    listen, upstream = recorded["listen"], recorded["upstream"]
    requests = [
        v
        for (s, d), v in streams(recorded["files"]["red"], _decode_as(recorded)).items()
        if d in (listen, upstream)
    ]
    raw_requests = [
        v
        for (s, d), v in streams(recorded["files"]["raw"], _decode_as(recorded)).items()
        if d in (listen, upstream)
    ]
    assert len(requests) == 2
    assert any(b"SECRET" in r for r in raw_requests)  # the raw tap has them (literal values)
    for secret in (TOKEN, COOKIE, "tok-9f8e7d6c5b4a", "cafebabe-deadbeef", "SECRET"):
        assert all(secret.encode() not in r for r in requests)
    # tshark still decodes every header block, and shows filler where the values were
    red_headers = headers(recorded["files"]["red"], _decode_as(recorded))
    raw_headers = headers(recorded["files"]["raw"], _decode_as(recorded))
    assert red_headers and len(red_headers) == len(raw_headers)
    assert "SECRET" in repr(raw_headers) and "SECRET" not in repr(red_headers)
    for (sid, red), (raw_sid, raw) in zip(red_headers, raw_headers, strict=True):
        assert sid == raw_sid and [n for n, _ in red] == [n for n, _ in raw]
        for (name, value), (_, raw_value) in zip(red, raw, strict=True):
            assert len(value) == len(raw_value)  # decoded lengths kept: HPACK tables agree
            if name not in ("authorization", "cookie"):
                assert value == raw_value


def test_grpc_status_and_paths_survive_redaction(recorded: dict[str, Any]) -> None:
    def calls(path: Path) -> list[tuple[str, str]]:
        out = []
        for stream, pairs in headers(path, _decode_as(recorded)):
            for key, value in pairs:
                if key in (":path", ":status", "grpc-status"):
                    out.append((stream, f"{key}={value}"))
        return out

    red = calls(recorded["files"]["red"])
    assert red == calls(recorded["files"]["raw"])
    assert any(c.startswith(":path=/") and c.endswith("/Unary") for _, c in red)
    assert sum(c == "grpc-status=0" for _, c in red) == 2 * len(recorded["results"])  # both legs
