"""Hostile fakes: the scenario option, what is drawn, and that real clients' answers are traced.

Each Kafka test starts one broker behind the real proxy and talks to it with a
real client (raw frames, kafka-python, confluent-kafka); the gRPC test runs
grpcio against the shop fake in its child process. Draws are seeded, so every
assertion here is about answers that are the same on every run.
"""

from __future__ import annotations

import socket
import struct
from pathlib import Path
from typing import Any

import pytest

from protoproxy.config_errors import ConfigError
from protoproxy_codecs.kafka import framing, schema
from protoproxy_codecs.kafka.api_keys import ApiKey
from protoproxy_codecs.strategies.kafka import all_versions
from testbed.hostile import draw_rng
from testbed.journal import HostileAnswer
from testbed.kafka.hostile import draw_answer
from testbed.scenario import load_scenario, resolve_scenario
from testbed.threaded import TestbedThread

ROOT = Path(__file__).resolve().parents[2]
OFF = {"enabled": False}


def kafka_scenario(**hostile: Any) -> dict[str, Any]:
    return {
        "kafka": {"brokers": 1, "hostile": {"seed": 7, **hostile}},
        "grpc": OFF,
        "http": OFF,
        "echo": OFF,
    }


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ({"kafka": {"hostile": {"rate": 1.5}}}, "kafka.hostile.rate"),
        ({"kafka": {"hostile": {"rate": -0.1}}}, "kafka.hostile.rate"),
        ({"kafka": {"hostile": {"apis": ["Metadta"]}}}, "kafka.hostile.apis[0]"),
        ({"kafka": {"hostile": {"sede": 1}}}, "kafka.hostile.sede"),
        ({"grpc": {"hostile": {"rate": 0.5}}}, "grpc"),
    ],
)
def test_bad_option_names_its_path(data: dict[str, Any], path: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_scenario(data)
    assert f"{path}:" in str(info.value)


def test_every_schema_draws_decodable_answers_and_the_same_seed_draws_the_same() -> None:
    """Over every API's first and last version: a drawn answer keeps its
    correlation id and decodes with the codec; the same (seed, index) gives the
    same bytes, another seed other bytes."""
    drawn = differ = 0
    pairs = sorted(
        {(k, v) for k, v in all_versions() if v == 0 or (k, v + 1) not in set(all_versions())}
    )
    for key, version in pairs:
        cls = schema.response_class(key, version)
        normal = framing.encode_response(key, version, 1234, cls())
        for index in range(3):
            a = draw_answer(draw_rng(7, index), key, version, 1234, normal)
            b = draw_answer(draw_rng(7, index), key, version, 1234, normal)
            c = draw_answer(draw_rng(8, index), key, version, 1234, normal)
            assert a == b
            if a is None:
                continue
            drawn += 1
            differ += c is None or c.frame != a.frame
            (size,) = struct.unpack(">i", a.frame[:4])
            assert size == len(a.frame) - 4
            corr, _ = framing.decode_response(key, version, memoryview(a.frame)[4:])
            assert corr == 1234
    assert drawn > 3 * len(pairs) // 2
    assert differ > drawn // 2


def _read_frame(sock: socket.socket) -> bytes:
    head = _recv_exactly(sock, 4)
    return head + _recv_exactly(sock, struct.unpack(">i", head)[0])


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, "the proxy closed the connection"
        data += chunk
    return data


def test_rate_one_answers_every_request_hostile_journaled_and_marked() -> None:
    """Raw ApiVersions and ListGroups through the proxy: each answer has the
    request's correlation id, is the journal entry's exact bytes, and the
    proxy's exchange carries ``hostile#INDEX`` where the access log writes faults."""
    requests = [(ApiKey.API_VERSIONS, 3), (ApiKey.LIST_GROUPS, 4)] * 4
    with TestbedThread(kafka_scenario(rate=1.0)) as tb:
        faults: list[Any] = []
        tb.call(
            lambda t: t.proxy.exchange_observers.append(
                lambda conn, exs: faults.extend((ex.key, ex.attrs.get("fault")) for ex in exs)
            )
        )
        host, port = tb.kafka_bootstrap.rsplit(":", 1)
        got: dict[int, bytes] = {}
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            for corr, (key, version) in enumerate(requests, start=100):
                body = schema.request_class(key, version)()
                sock.sendall(framing.encode_request(key, version, corr, "raw", body))
                frame = _read_frame(sock)
                got_corr, _ = framing.decode_response(key, version, memoryview(frame)[4:])
                assert got_corr == corr
                got[corr] = frame
        entries = tb.journal.hostile("kafka")
        assert len(entries) == len(requests)
    by_corr = {e.correlation_id: e for e in entries}
    assert set(by_corr) == set(got)
    for corr, frame in got.items():
        entry = by_corr[corr]
        assert isinstance(entry, HostileAnswer)
        assert entry.client_id == "raw" and entry.edits and entry.seed == 7
        assert bytes.fromhex(entry.answer_hex) == frame  # nothing rewrites these two APIs
    marks = dict(faults)
    assert {marks[c] for c in got} == {f"hostile#{by_corr[c].index}" for c in got}


def test_kafka_python_meets_a_hostile_answer_traced_by_client_id() -> None:
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    with TestbedThread(kafka_scenario(rate=1.0, apis=["ListGroups"])) as tb:
        admin = KafkaAdminClient(
            bootstrap_servers=tb.kafka_bootstrap, client_id="hostile-kp", request_timeout_ms=5000
        )
        try:
            try:
                outcome: Any = admin.list_groups()
            except KafkaError as exc:
                outcome = exc
        finally:
            admin.close()
        entries = tb.journal.hostile("kafka")
    assert outcome is not None
    assert [e.operation.split()[0] for e in entries] == ["ListGroups"] * len(entries)
    assert entries and all(e.client_id == "hostile-kp" for e in entries)


def test_confluent_kafka_meets_a_hostile_answer_traced_by_client_id() -> None:
    confluent = pytest.importorskip("confluent_kafka")
    from confluent_kafka.admin import AdminClient

    with TestbedThread(kafka_scenario(rate=1.0, apis=["ListGroups"])) as tb:
        admin = AdminClient({"bootstrap.servers": tb.kafka_bootstrap, "client.id": "hostile-rd"})
        future = admin.list_consumer_groups(request_timeout=5)
        try:
            outcome: Any = future.result(timeout=15)
        except confluent.KafkaException as exc:
            outcome = exc
        entries = tb.journal.hostile("kafka")
    assert outcome is not None
    assert entries and all(e.client_id == "hostile-rd" for e in entries)
    assert all(e.operation.startswith("ListGroups v") for e in entries)


def test_grpcio_meets_hostile_answers_traced_by_trailer_and_metadata() -> None:
    """Every call hostile: grpcio sees odd statuses and messages; each call's
    ``x-op`` metadata finds its journal entry, and the trailer (when grpcio
    shows it) names the same index."""
    grpc = pytest.importorskip("grpc")
    data = load_scenario(ROOT / "fixtures/grpc_fakes/shop/scenario.yaml").model_dump(mode="json")
    data["grpc"]["hostile"] = {"seed": 7, "rate": 1.0, "methods": ["Catalog/GetItem"]}
    seen: dict[str, str | None] = {}
    with TestbedThread(data) as tb:
        with grpc.insecure_channel(tb.address("shop")) as channel:
            call = channel.unary_unary("/shop.v1.Catalog/GetItem")
            for op in range(6):
                try:
                    _, info = call.with_call(
                        b"\x0a\x06book-1", timeout=10, metadata=[("x-op", f"{op}")]
                    )
                    trailers = info.trailing_metadata()
                except grpc.RpcError as exc:
                    trailers = exc.trailing_metadata()
                seen[str(op)] = dict(trailers or ()).get("x-testbed-hostile")
        entries = {e.metadata["x-op"]: e for e in tb.journal.hostile("shop")}
    assert set(entries) == set(seen)
    for op, index in seen.items():
        assert entries[op].target == "grpc" and entries[op].edits
        if index is not None:
            assert int(index) == entries[op].index
    assert any(index is not None for index in seen.values())


def http_scenario(tmp_path: Path, **hostile: Any) -> dict[str, Any]:
    """One WireMock fake answering GET /items with a JSON body, behind the proxy."""
    (tmp_path / "items.json").write_text(
        '{"request": {"method": "GET", "urlPathPattern": "/.*"},'
        ' "response": {"status": 200, "jsonBody": {"items": [1, 2, 3], "note": "fine"},'
        ' "headers": {"Content-Type": "application/json"}}}'
    )
    return {
        "kafka": OFF,
        "grpc": OFF,
        "echo": OFF,
        "http": {
            "services": [{"name": "api", "mappings": [str(tmp_path)]}],
            "hostile": {"seed": 7, **hostile},
        },
    }


def test_http_bad_option_names_its_path() -> None:
    with pytest.raises(ConfigError) as info:
        resolve_scenario({"http": {"hostile": {"rate": 0.5}}})
    assert "http:" in str(info.value) and "http.services" in str(info.value)


def test_http_draws_are_seeded_and_cover_every_kind() -> None:
    from testbed.wiremock.hostile import KINDS, HttpHostile

    def kinds(seed: int) -> list[str | None]:
        policy = HttpHostile("api", seed, 0.5, None)
        return [(p.kind if (p := policy.plan("/x")) else None) for _ in range(60)]

    assert kinds(7) == kinds(7) != kinds(8)
    assert set(kinds(7)) == {*KINDS, None}


def test_requests_meets_hostile_http_answers_traced_by_header_and_journal(tmp_path: Path) -> None:
    """Every answer hostile, through the proxy, to the requests library: each
    response is valid HTTP/1.1 that requests reads (status, headers, body as the
    plan says), carries ``X-Testbed-Hostile: INDEX``, and the request's own
    ``x-op`` header finds its journal entry, whose bytes are what the fake sent;
    the answers requests refuses are traced to their entries the same way."""
    import json

    import requests

    from testbed.wiremock.hostile import KINDS, ODD_STATUSES

    stub = {"items": [1, 2, 3], "note": "fine"}
    with TestbedThread(http_scenario(tmp_path, rate=1.0, paths=["/api/"])) as tb:
        base = f"http://{tb.address('api')}"
        with requests.Session() as session:
            normal = session.get(f"{base}/other", timeout=10)
            assert normal.status_code == 200 and "X-Testbed-Hostile" not in normal.headers
            answers = {}
            errors = {}
            for op in range(80):  # seed 7: every kind, and every kind of headers
                try:
                    resp = session.get(f"{base}/api/items", headers={"x-op": str(op)}, timeout=10)
                except requests.ConnectionError as exc:
                    errors[str(op)] = str(exc)
                else:
                    answers[str(op)] = resp
        entries = {e.metadata["x-op"]: e for e in tb.journal.hostile("api")}
    assert set(entries) == set(answers) | set(errors)
    # The finding (docs/fuzzing.md): http.client, under requests and urllib3, refuses
    # an answer of more than 100 header lines; each refusal traces to that answer.
    assert errors and all("got more than 100 headers" in e for e in errors.values())
    assert {entries[op].edits for op in errors} == {("100 extra headers",)}
    kinds: set[str] = {"100 extra headers"}
    for op, resp in answers.items():
        entry = entries[op]
        assert isinstance(entry, HostileAnswer) and entry.target == "http"
        assert entry.operation == "GET /api/items" and entry.seed == 7 and entry.edits
        assert resp.headers["X-Testbed-Hostile"] == str(entry.index)
        sent = bytes.fromhex(entry.answer_hex)
        assert sent.startswith(b"HTTP/1.1 %d " % resp.status_code)
        edits = " ".join(entry.edits)
        if edits.startswith("status="):
            kinds.add("status")
            assert resp.status_code in ODD_STATUSES and json.loads(resp.content) == stub
        elif edits == "no body":
            kinds.add("empty")
            assert resp.status_code == 200 and resp.content == b""
        elif edits.startswith("chunked"):
            kinds.add("chunked")
            assert resp.headers["Transfer-Encoding"] == "chunked"
            assert json.loads(resp.content) == stub
        elif edits.startswith("reason"):
            kinds.add("reason")
            assert resp.status_code == 200 and json.loads(resp.content) == stub
        else:
            kinds.add(edits)
            assert resp.status_code == 200 and json.loads(resp.content) == stub
            if edits == "an 8 KiB header value":
                assert resp.headers["X-Hostile-Long"] == "v" * 8192
            elif edits.startswith("a second Content-Type"):
                assert resp.headers["Content-Type"] == "application/json, text/plain"
            elif edits.startswith("latin-1"):
                assert resp.headers["X-Hostile-Latin1"] == "caf\xe9 \xbf\xff"
    header_kinds = {
        "100 extra headers",
        "an empty header value",
        "an 8 KiB header value",
        "a second Content-Type: text/plain",
        "latin-1 bytes in a header value",
    }
    assert kinds == {"status", "empty", "chunked", "reason"} | header_kinds
    assert set(KINDS) == {"status", "empty", "chunked", "reason", "headers"}


def _frames(raw: bytearray) -> list[tuple[int, int, int, bytes]]:
    """(type, flags, stream id, payload) of each whole frame at the front of `raw`, taken off it."""
    out = []
    while len(raw) >= 9:
        length = int.from_bytes(raw[:3], "big")
        if len(raw) < 9 + length:
            break
        sid = int.from_bytes(raw[5:9], "big") & 0x7FFFFFFF
        out.append((raw[3], raw[4], sid, bytes(raw[9 : 9 + length])))
        del raw[: 9 + length]
    return out


def test_frame_kinds_reach_an_h2_client_as_the_marker_says_on_one_connection() -> None:
    """40 hostile GetItem calls on one HTTP/2 connection, read frame by frame:
    each call's ``x-testbed-frames`` header (which the relay acts on) matches
    the frames seen (CONTINUATION count, padding; the SETTINGS before the call
    and the restore after it), h2 (the PyPI library) accepts every frame, and
    the journal entry found by the call's ``x-op`` says the same edit."""
    h2_connection = pytest.importorskip("h2.connection")
    import h2.config
    import h2.events

    from testbed.grpc_fakes.frames import FramePlan

    data = load_scenario(ROOT / "fixtures/grpc_fakes/shop/scenario.yaml").model_dump(mode="json")
    data["grpc"]["hostile"] = {"seed": 7, "rate": 1.0, "methods": ["Catalog/GetItem"]}
    kinds_seen: set[str] = set()
    with TestbedThread(data) as tb:
        host, port = tb.testbed.services["shop"].address.rsplit(":", 1)
        conn = h2_connection.H2Connection(h2.config.H2Configuration(header_encoding=None))
        conn.initiate_connection()
        conn.increment_flow_control_window(2**30)
        marks: dict[str, FramePlan | None] = {}
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(conn.data_to_send())
            raw = bytearray()
            for op in range(40):
                sid = conn.get_next_available_stream_id()
                head = [(":method", "POST"), (":scheme", "http"), (":authority", "shop")]
                head += [(":path", "/shop.v1.Catalog/GetItem"), ("te", "trailers")]
                head += [("content-type", "application/grpc"), ("x-op", str(op))]
                conn.send_headers(sid, head)
                conn.send_data(sid, b"\0\0\0\0\x08\x0a\x06book-1", end_stream=True)
                sock.sendall(conn.data_to_send())
                frames: list[tuple[int, int, int, bytes]] = []
                headers: dict[bytes, bytes] = {}
                ended = False
                while not ended:
                    chunk = sock.recv(1 << 20)
                    assert chunk, "the fake closed the connection"
                    raw += chunk
                    for frame in _frames(raw):
                        frames.append(frame)
                        ftype, flags, fsid, payload = frame
                        header = len(payload).to_bytes(3, "big") + bytes((ftype, flags))
                        for event in conn.receive_data(header + fsid.to_bytes(4, "big") + payload):
                            assert not isinstance(event, h2.events.ConnectionTerminated), event
                            if isinstance(event, h2.events.DataReceived):
                                conn.acknowledge_received_data(
                                    event.flow_controlled_length, event.stream_id
                                )
                            if isinstance(
                                event, h2.events.ResponseReceived | h2.events.TrailersReceived
                            ):
                                headers.update(event.headers)
                            if isinstance(event, h2.events.StreamEnded | h2.events.StreamReset):
                                ended = event.stream_id == sid
                    sock.sendall(conn.data_to_send())
                marker = headers.get(b"x-testbed-frames")
                plan = FramePlan.parse(marker.decode()) if marker else None
                marks[str(op)] = plan
                if plan is None:
                    continue
                kinds_seen.add(plan.kind)
                mine = [f for f in frames if f[2] == sid]
                if plan.kind == "continuation":
                    # each block: HEADERS (padded as planned) then `chain` CONTINUATION frames
                    blocks = [i for i, f in enumerate(mine) if f[0] == 0x1]
                    assert blocks, mine
                    for i in blocks:
                        assert bool(mine[i][1] & 0x8) == (plan.pad > 0)
                        if plan.pad:
                            assert mine[i][3][0] == plan.pad
                        chain = [f[0] for f in mine[i + 1 : i + 1 + plan.chain]]
                        assert chain == [0x9] * plan.chain
                        assert mine[i + plan.chain][1] & 0x4  # END_HEADERS on the last
                else:
                    settings = [f for f in frames if f[0] == 0x4 and not f[1] & 0x1]
                    entries = [
                        tuple(
                            (
                                int.from_bytes(p[i : i + 2], "big"),
                                int.from_bytes(p[i + 2 : i + 6], "big"),
                            )
                            for i in range(0, len(p), 6)
                        )
                        for *_, p in settings
                    ]
                    assert plan.settings in entries, (plan, entries)
                    first = frames.index(settings[entries.index(plan.settings)])
                    assert first < frames.index(mine[0])  # before the call's first block
                    known = {k for k, _ in plan.settings} & {0x1, 0x3, 0x5}
                    if known:  # and the server's own values after its last
                        later = entries[entries.index(plan.settings) + 1 :]
                        assert any({k for k, _ in e} == known for e in later), entries
        entries = {e.metadata["x-op"]: e for e in tb.journal.hostile("shop")}
    assert set(entries) == set(marks)
    for op, plan in marks.items():
        said = " ".join(entries[op].edits)
        if plan is None:
            assert "CONTINUATION" not in said and "SETTINGS" not in said
        elif plan.kind == "continuation":
            assert f"{plan.pad} bytes of padding) + {plan.chain} CONTINUATION" in said
        else:
            assert said.startswith("SETTINGS mid-connection")
    assert kinds_seen == {"continuation", "settings"}


def test_grpcio_fails_a_call_whose_response_headers_frame_is_padded() -> None:
    """Pins the finding in docs/fuzzing.md: grpcio (C-core) cannot read a
    padded HEADERS frame (RFC 9113 6.2 allows one; h2 and nghttp2 read the
    same bytes), so every call answered that way fails INTERNAL "Failed
    parsing HTTP/2". Unpadded CONTINUATION chains of up to 64 frames and every
    SETTINGS change read fine, through the proxy. If this fails, grpcio
    changed: update the finding."""
    grpc = pytest.importorskip("grpc")
    data = load_scenario(ROOT / "fixtures/grpc_fakes/shop/scenario.yaml").model_dump(mode="json")
    data["grpc"]["hostile"] = {"seed": 7, "rate": 1.0, "methods": ["Catalog/GetItem"]}
    results: dict[str, tuple[str, str]] = {}
    with TestbedThread(data) as tb:
        with grpc.insecure_channel(tb.address("shop")) as channel:
            call = channel.unary_unary("/shop.v1.Catalog/GetItem")
            for op in range(60):
                try:
                    call.with_call(b"\x0a\x06book-1", timeout=10, metadata=[("x-op", f"{op}")])
                    results[str(op)] = ("OK", "")
                except grpc.RpcError as exc:
                    results[str(op)] = (exc.code().name, exc.details() or "")
        entries = {e.metadata["x-op"]: e for e in tb.journal.hostile("shop")}
    padded = unpadded = settings = 0
    for op, entry in entries.items():
        said = " ".join(entry.edits)
        if "CONTINUATION" in said:
            if "(0 bytes of padding)" in said:
                unpadded += 1
                assert results[op] == ("OK", ""), (said, results[op])
            else:
                padded += 1
                code, details = results[op]
                assert code == "INTERNAL" and "Failed parsing HTTP/2" in details, (said, code)
        elif said.startswith("SETTINGS"):
            settings += 1
            assert results[op] == ("OK", ""), (said, results[op])
    assert padded and unpadded and settings
