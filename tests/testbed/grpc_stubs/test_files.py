"""Stub files: GripMock's own shapes load unchanged, bad files name file and path,
and (hypothesis) round trips hold and garbage only ever gives a StubError."""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from testbed.grpc_stubs import STATUS_NAMES, StubError, StubStore
from testbed.grpc_stubs import files as stub_files_module

FIXTURES = Path(__file__).parent / "fixtures" / "gripmock"


def test_gripmock_fixture_folder_loads_recursively() -> None:
    store = StubStore()
    assert store.load_paths([FIXTURES]) == 8
    services = sorted({s["service"] for s in store.all()})
    assert services == [
        "ChatService",
        "Greeter",
        "TrackService",
        "UploadService",
        "helloworld.Greeter",
        "inventory.InventoryService",
    ]
    assert store.get("0b9b6f3c-3b1f-4a51-9d43-8f2a5e0c1d01")["output"]["code"] == 8


def test_gripmock_greeter_file_priority_decides_before_specificity() -> None:
    store = StubStore()
    store.load_paths([FIXTURES / "greeter.yaml"])
    method = "helloworld.Greeter/SayHello"
    # the catch-all has priority 1: it beats the exact stub (GripMock would not)
    ben = store.unary(method, {"name": "Ben"}, {})
    assert (ben.matched, ben.status, ben.details) == (True, "NOT_FOUND", "User not found")
    [fallback] = [s["id"] for s in store.all() if s.get("priority") == 1]
    store.remove(fallback)
    assert store.unary(method, {"name": "Ben"}, {}).messages == [(0.0, {"message": "Hello Ben"})]
    # times: 1 spent; the header-matching stub is next, but wants x-env: prod
    again = store.unary(method, {"name": "Ben"}, {"x-user": "alice"})
    assert not again.matched
    assert again.near_misses[0].endswith("times: answered 1 of 1 calls")
    assert again.near_misses[1].endswith("headers.equals.x-env: want 'prod', got (absent)")
    alice = store.unary(method, {"name": "Alice"}, {"x-env": "prod", "x-user": "alice"})
    assert (alice.headers, alice.messages) == (
        {"x-served-by": "gripmock"},
        [(0.0, {"message": "Hello Alice"})],
    )


def test_gripmock_files_answer_streams_and_uploads() -> None:
    store = StubStore()
    store.load_paths([FIXTURES / "track.json", FIXTURES / "nested", FIXTURES / "errors.json"])
    track = store.server_stream("track.TrackService/StreamTrack", {"stn": "MS#00001"}, {})
    assert [d for d, _ in track.messages] == [0.1, 0.05, 0.1]
    assert "_gripmock" not in track.messages[1][1]
    chunks = [{"chunk_id": "file_001", "sequence": n, "total_chunks": "3"} for n in (1, 2, 3)]
    upload = store.client_stream("up.UploadService/UploadFile", chunks, {})
    assert upload.messages == [(0.0, {"upload_id": "upload_001", "success": True, "count": 3})]
    reserve = store.unary(
        "inventory.InventoryService/Reserve", {"ips": ["10.0.3.2", "10.0.3.1"]}, {}
    )
    assert reserve.status == "RESOURCE_EXHAUSTED"
    assert reserve.error_details[0]["metadata"] == {"ip": "10.0.3.2"}
    assert reserve.trailers == {"x-retry-after": "5"}
    watch = store.server_stream("inventory.InventoryService/Watch", {"path": "/reports/2024/q"}, {})
    assert (len(watch.messages), watch.status) == (2, "RESOURCE_EXHAUSTED")


def test_generated_ids_repeat_across_runs_and_given_ids_are_kept() -> None:
    a, b = StubStore(seed=1), StubStore(seed=1)
    assert a.load_paths([FIXTURES]) == b.load_paths([FIXTURES])
    assert [s["id"] for s in a.all()] == [s["id"] for s in b.all()]
    assert "0b9b6f3c-3b1f-4a51-9d43-8f2a5e0c1d01" in {s["id"] for s in a.all()}


def test_add_get_remove_and_upsert() -> None:
    store = StubStore()
    [sid] = store.add({"id": "x", "service": "S", "method": "M", "output": {"data": {"v": 1}}})
    store.add({"id": "x", "service": "S", "method": "M", "output": {"data": {"v": 2}}})
    assert sid == "x" and len(store.all()) == 1
    assert store.get("x")["output"] == {"data": {"v": 2}}
    assert store.remove("x") and not store.remove("x") and store.get("x") is None


@pytest.mark.parametrize(
    ("text", "name", "want"),
    [
        (
            "- service: S\n  method: M\n  output: {code: NOPE}\n",
            "a.yaml",
            "a.yaml: [0].output.code: unknown status 'NOPE'",
        ),
        (
            "service: S\nmethod: M\noutput: {delay: soon}\n",
            "a.yaml",
            "a.yaml: output.delay: want a duration",
        ),
        (
            "service: S\nmethod: M\ninput: {matches: {a: '('}}\noutput: {}\n",
            "a.yml",
            "a.yml: input.matches.a: bad regular expression",
        ),
        ("service: S\nmethod: M\nouptut: {}\n", "a.yaml", "a.yaml: ouptut: unknown field"),
        ("service: S\nmethod: M\n", "a.yaml", "a.yaml: output: missing"),
        ("[1, 2]", "a.json", "a.json: [0]: want an object, got int"),
        ('{"service": ', "a.json", "a.json: line 1 column 13: bad JSON"),
        ("a: b: c", "a.yaml", "a.yaml: line 1 column 5: bad YAML: mapping values are not allowed"),
        ("42", "a.yaml", "a.yaml: top level: want a stub object or a list"),
        (
            "- {service: S, method: M, output: {}}\n- {service: S, method: M, output: {details: [{reason: x}]}}\n",
            "a.yaml",
            "a.yaml: [1].output.details[0]: needs 'type'",
        ),
        (
            "service: S\nmethod: M\ninput: {anyOf: [{anyOf: [{}]}]}\noutput: {}\n",
            "a.yaml",
            "a.yaml: input.anyOf[0].anyOf: anyOf cannot nest",
        ),
        (
            "service: S\nmethod: M\noptions: {times: -1}\noutput: {}\n",
            "a.yaml",
            "a.yaml: options.times: want a count",
        ),
        (
            "service: S\nmethod: M\noutput: {stream: [{a: 1}], failAfter: 1}\n",
            "a.yaml",
            "a.yaml: output.failAfter: needs code",
        ),
    ],
)
def test_bad_files_name_file_and_path(tmp_path: Path, text: str, name: str, want: str) -> None:
    (tmp_path / name).write_text(text)
    store = StubStore()
    with pytest.raises(StubError) as err:
        store.load_paths([tmp_path / name])
    assert str(err.value).startswith(f"{tmp_path / name}: {want.partition(': ')[2]}"), str(
        err.value
    )
    assert store.all() == []


def test_a_bad_file_loads_nothing_of_the_call(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("service: S\nmethod: M\noutput: {}\n")
    (tmp_path / "b.yaml").write_text("service: S\nmethod: M\noutput: {code: 99}\n")
    store = StubStore()
    with pytest.raises(StubError, match=r"b\.yaml: output\.code"):
        store.load_paths([tmp_path])
    assert store.all() == []


def test_missing_path_and_oversized_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(StubError, match="no such stub file or folder"):
        StubStore().load_paths([tmp_path / "nope"])
    monkeypatch.setattr(stub_files_module, "MAX_FILE_BYTES", 100)
    (tmp_path / "big.yaml").write_text("# " + "x" * 200)
    with pytest.raises(StubError, match=r"big\.yaml: 202 bytes, more than the 100"):
        StubStore().load_paths([tmp_path / "big.yaml"])


def test_yaml_alias_bomb_is_refused(tmp_path: Path) -> None:
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]")
    (tmp_path / "bomb.yaml").write_text("\n".join(lines) + "\n")
    with pytest.raises(StubError, match="YAML aliases expand too far"):
        StubStore().load_paths([tmp_path / "bomb.yaml"])


def test_store_holds_at_most_max_stubs(monkeypatch: pytest.MonkeyPatch) -> None:
    from testbed.grpc_stubs import store as store_module

    monkeypatch.setattr(store_module, "MAX_STUBS", 3)
    store = StubStore()
    store.add([{"service": "S", "method": "M", "output": {}}] * 3)
    with pytest.raises(StubError, match="more than 3 stubs"):
        store.add({"service": "S", "method": "M", "output": {}})


# -- hypothesis ---------------------------------------------------------------------------

names = st.text(string.ascii_letters + "_", min_size=1, max_size=8).filter(
    lambda s: s != "_gripmock"
)
scalars = st.one_of(
    st.booleans(),
    st.integers(-(2**53), 2**53),
    st.text(max_size=12).filter(lambda s: "{{" not in s),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(names, inner, max_size=4),
    max_leaves=12,
)
#: what YAML can hold beyond JSON: keys that are numbers, nulls, lists
yaml_values = st.recursive(
    st.one_of(scalars, st.none(), st.floats(allow_nan=False)),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.one_of(names, st.integers(), st.none(), st.booleans()), inner, max_size=4
        )
    ),
    max_leaves=12,
)
messages = st.dictionaries(names, json_values, max_size=5)


@st.composite
def stubs(draw: st.DrawFn) -> dict[str, Any]:
    out: dict[str, Any] = {
        "service": draw(st.sampled_from(["Greeter", "helloworld.Greeter"])),
        "method": "SayHello",
        "input": {"equals": draw(messages), "ignoreArrayOrder": draw(st.booleans())},
        "output": {"data": draw(messages)},
    }
    if draw(st.booleans()):
        out["priority"] = draw(st.integers(-5, 5))
    if draw(st.booleans()):
        out["headers"] = {"equals": {"x-a": draw(st.text(string.ascii_letters, max_size=5))}}
    if draw(st.booleans()):
        out["output"]["delay"] = draw(st.sampled_from(["10ms", "1.5s", "1m", "0"]))
    return out


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(stub=stubs(), as_json=st.booleans())
def test_stub_round_trips_through_a_file(
    tmp_path: Path, stub: dict[str, Any], as_json: bool
) -> None:
    path = tmp_path / ("s.json" if as_json else "s.yaml")
    path.write_text(json.dumps([stub]) if as_json else yaml.safe_dump([stub]))
    store = StubStore()
    assert store.load_paths([path]) == 1
    [loaded] = store.all()
    assert {k: v for k, v in loaded.items() if k != "id"} == stub
    again = StubStore()
    again.add(loaded)
    assert again.all() == [loaded]


@settings(max_examples=100, deadline=None)
@given(message=messages, unordered=st.booleans())
def test_equals_built_from_the_message_itself_always_matches(
    message: dict[str, Any], unordered: bool
) -> None:
    store = StubStore()
    store.add(
        {
            "service": "Greeter",
            "method": "SayHello",
            "input": {"equals": message, "ignoreArrayOrder": unordered},
            "output": {"data": {}},
        }
    )
    reply = store.unary("helloworld.Greeter/SayHello", message, {})
    assert reply.matched, reply.details


templates = st.sampled_from(
    [
        "{{.Request.a}}",
        "x{{len .Requests}}",
        '{{index .Headers "x"}}',
        "{{uuid}}",
        "{{add .Request.a 1}}",
        "{{now}}",
        '{{split .Request.a "x"}}',
    ]
)
#: plausible values for each stub field; `wild` replaces one of them with anything
FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "priority": st.integers(-3, 3),
    "times": st.integers(0, 3),
    "id": st.sampled_from(["a", "b"]),
    "sequenceRepeat": st.sampled_from(["last", "cycle", "exhaust"]),
}
MATCHER = st.fixed_dictionaries(
    {},
    optional={
        "equals": messages,
        "contains": messages,
        "matches": st.dictionaries(names, st.sampled_from(["^a", "b$", ".*", "\\d+"]), max_size=2),
        "glob": st.dictionaries(names, st.sampled_from(["a*", "?b", "[!c]*"]), max_size=2),
        "ignoreArrayOrder": st.booleans(),
    },
)
OUTPUT = st.fixed_dictionaries(
    {},
    optional={
        "data": st.one_of(messages, st.dictionaries(names, templates, max_size=2)),
        "stream": st.lists(
            st.one_of(
                messages,
                st.builds(
                    lambda m, d: {**m, "_gripmock": {"delay": d}},
                    messages,
                    st.sampled_from(["1ms", "0"]),
                ),
                st.just({"_gripmock": {"code": 14, "error": "x"}}),
            ),
            max_size=3,
        ),
        "error": st.one_of(st.text(max_size=5), templates),
        "code": st.one_of(st.integers(0, 16), st.sampled_from(["NOT_FOUND", "ok"])),
        "details": st.lists(
            st.builds(lambda m: {**m, "type": "t.example/x"}, messages), max_size=2
        ),
        "headers": st.dictionaries(names, st.one_of(names, templates), max_size=2),
        "trailers": st.dictionaries(names, names, max_size=2),
        "delay": st.sampled_from(["1ms", "0", 0.001]),
        "failAfter": st.integers(0, 2),
    },
)


@st.composite
def near_stubs(draw: st.DrawFn) -> list[dict[Any, Any]]:
    """Stubs that are plausible, with (sometimes) one field made anything at all:
    both the answering paths and every validation path get exercised."""
    out: dict[Any, Any] = {"service": draw(names), "method": draw(names)}
    if draw(st.booleans()):
        out["input"] = draw(MATCHER)
    elif draw(st.booleans()):
        out["inputs"] = draw(st.lists(MATCHER, min_size=1, max_size=3))
    if draw(st.booleans()):
        out["headers"] = draw(MATCHER)
    if draw(st.booleans()):
        out["sequence"] = draw(st.lists(OUTPUT, min_size=1, max_size=3))
    else:
        out["output"] = draw(OUTPUT)
    for key, values in FIELDS.items():
        if draw(st.booleans()):
            out[key] = draw(values)
    if draw(st.integers(0, 3)) == 0:
        key = draw(st.sampled_from(sorted(out, key=str)))
        out[key] = draw(yaml_values)
    return [out]


@settings(max_examples=150, deadline=None)
@given(
    stub=near_stubs(),
    request=st.one_of(messages, scalars),
    metadata=st.dictionaries(names, names, max_size=2),
)
def test_a_stub_that_loads_answers_every_kind_of_call(
    stub: list[dict[Any, Any]], request: Any, metadata: dict[str, str]
) -> None:
    store = StubStore()
    try:
        store.add(stub)
    except StubError:
        return
    method = f"pkg.{stub[0]['service']}/{stub[0]['method']}"
    for reply in (
        store.unary(method, request, metadata),
        store.server_stream(method, request, metadata),
        store.client_stream(method, [request, request], metadata),
        store.bidi(method, metadata).reply_to(request),
    ):
        assert reply.status in STATUS_NAMES
        json.dumps([reply.messages, reply.headers, reply.trailers, reply.error_details])


def test_a_recording_without_a_schema_is_refused_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "rec.yaml"
    path.write_text("service: S\nmethod: M\ninput: {equals_b64: AAE=}\noutput: {data_b64: AAE=}\n")
    with pytest.raises(
        StubError, match=r"rec\.yaml: input\.equals_b64: a message recorded without"
    ):
        StubStore().load_paths([path])


STUB_KEYS = [
    "service",
    "method",
    "input",
    "output",
    "inputs",
    "headers",
    "options",
    "sequence",
    "id",
    "x",
]


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=st.one_of(
        st.binary(max_size=300),
        st.text(max_size=300).map(str.encode),
        json_values.map(lambda v: json.dumps(v).encode()),
        st.lists(
            st.dictionaries(st.sampled_from(STUB_KEYS), yaml_values, max_size=5), max_size=3
        ).map(lambda v: yaml.safe_dump(v).encode()),
        near_stubs().map(lambda v: yaml.safe_dump(v).encode()),
        near_stubs().map(lambda v: json.dumps(v, default=str).encode()),
    ),
    suffix=st.sampled_from([".json", ".yaml"]),
)
def test_garbage_files_give_stub_error_and_nothing_else(
    tmp_path: Path, data: bytes, suffix: str
) -> None:
    path = tmp_path / f"g{suffix}"
    path.write_bytes(data)
    store = StubStore()
    try:
        loaded = store.load_paths([path])
    except StubError as e:
        assert str(e).startswith(f"{path}: "), str(e)
        assert store.all() == []
    else:
        assert len(store.all()) == loaded
