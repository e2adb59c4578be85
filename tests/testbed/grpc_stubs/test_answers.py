"""Which stub answers, and what it answers: priority, times, sequence, errors,
streams, delays, templates, near misses, client streams and bidi scripts."""

from __future__ import annotations

import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from testbed.grpc_stubs import StubError, StubStore

METHOD = "helloworld.Greeter/SayHello"
FIXTURES = Path(__file__).parent / "fixtures" / "gripmock"


def stub(input_: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"service": "helloworld.Greeter", "method": "SayHello"}
    if input_ is not None:
        out["input"] = input_
    out.setdefault("output", {"data": {"message": "hi"}})
    out.update(kw)
    return out


def message(
    store: StubStore, request: dict[str, Any], metadata: dict[str, str] | None = None
) -> Any:
    reply = store.unary(METHOD, request, metadata or {})
    assert reply.matched, reply.details
    assert reply.status == "OK", reply.details
    return reply.messages[0][1]


# -- choosing -------------------------------------------------------------------------


def test_priority_wins_over_specificity() -> None:
    store = StubStore()
    store.add(stub({"equals": {"name": "Bob"}}, output={"data": {"message": "exact"}}))
    store.add(stub({"contains": {}}, priority=5, output={"data": {"message": "fallback"}}))
    assert message(store, {"name": "Bob"}) == {"message": "fallback"}


def test_equal_priority_the_more_specific_wins_then_file_order() -> None:
    store = StubStore()
    store.add(stub({"contains": {}}, output={"data": {"message": "any"}}))
    store.add(stub({"matches": {"name": "^B"}}, output={"data": {"message": "pattern"}}))
    store.add(stub({"equals": {"name": "Bob"}}, output={"data": {"message": "exact"}}))
    store.add(stub({"equals": {"name": "Bob"}}, output={"data": {"message": "later"}}))
    assert message(store, {"name": "Bob"}) == {"message": "exact"}
    assert message(store, {"name": "Bea"}) == {"message": "pattern"}
    assert message(store, {"name": "Al"}) == {"message": "any"}


def test_short_and_full_service_names() -> None:
    store = StubStore()
    store.add({"service": "Greeter", "method": "SayHello", "output": {"data": {"m": 1}}})
    assert message(store, {}) == {"m": 1}
    assert store.unary("other.Greeter/SayHello", {}, {}).matched
    store.clear()
    store.add({"service": "other.Greeter", "method": "SayHello", "output": {"data": {}}})
    assert not store.unary(METHOD, {}, {}).matched


def test_times_then_the_next_stub() -> None:
    store = StubStore()
    store.add(stub(priority=10, options={"times": 2}, output={"data": {"message": "first"}}))
    store.add(stub(output={"error": "Service unavailable", "code": 14}))
    assert message(store, {}) == {"message": "first"}
    assert message(store, {}) == {"message": "first"}
    reply = store.unary(METHOD, {}, {})
    assert (reply.status, reply.details) == ("UNAVAILABLE", "Service unavailable")
    store.reset_counts()
    assert message(store, {}) == {"message": "first"}


def test_times_exhausted_alone_is_not_found_and_says_why() -> None:
    store = StubStore()
    [sid] = store.add(stub(times=1, id="once"))
    message(store, {})
    reply = store.unary(METHOD, {}, {})
    assert (reply.matched, reply.status) == (False, "NOT_FOUND")
    assert reply.near_misses == [f"{sid}/helloworld.Greeter.SayHello: times: answered 1 of 1 calls"]
    assert store.used("once") == 1


@pytest.mark.parametrize(
    ("repeat", "want"),
    [
        ("last", ["UNAVAILABLE", "UNAVAILABLE", "OK", "OK"]),
        ("cycle", ["UNAVAILABLE", "UNAVAILABLE", "OK", "UNAVAILABLE"]),
        ("exhaust", ["UNAVAILABLE", "UNAVAILABLE", "OK", "NOT_FOUND"]),
    ],
)
def test_sequence_for_retry_tests(repeat: str, want: list[str]) -> None:
    store = StubStore()
    store.add(
        {
            "service": "Greeter",
            "method": "SayHello",
            "sequence": [
                {"code": 14, "error": "try again"},
                {"code": "UNAVAILABLE"},
                {"data": {"ok": True}},
            ],
            "sequence_repeat": repeat,
        }
    )
    got = [store.unary(METHOD, {}, {}).status for _ in want]
    assert got == want


# -- what is answered -----------------------------------------------------------------------


def test_error_without_code_is_aborted_and_code_names_are_accepted() -> None:
    store = StubStore()
    store.add(stub({"equals": {"n": 1}}, output={"error": "boom"}))
    store.add(stub({"equals": {"n": 2}}, output={"code": "NotFound", "error": "gone"}))
    store.add(stub({"equals": {"n": 3}}, output={"code": 0, "data": {"m": "ok"}}))
    assert store.unary(METHOD, {"n": 1}, {}).status == "ABORTED"
    reply = store.unary(METHOD, {"n": 2}, {})
    assert (reply.status, reply.details, reply.messages) == ("NOT_FOUND", "gone", [])
    assert message(store, {"n": 3}) == {"m": "ok"}


def test_rich_error_details_trailers_and_headers() -> None:
    store = StubStore()
    store.add(
        stub(
            output={
                "error": "quota",
                "code": 8,
                "headers": {"X-Served-By": "stub"},
                "trailers": {"x-retry-after": "{{.Request.wait}}"},
                "details": [
                    {
                        "type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "{{.Request.why}}",
                    }
                ],
            }
        )
    )
    reply = store.unary(METHOD, {"wait": "5", "why": "QUOTA"}, {})
    assert reply.status == "RESOURCE_EXHAUSTED"
    assert reply.headers == {"x-served-by": "stub"}
    assert reply.trailers == {"x-retry-after": "5"}
    assert reply.error_details == [
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "QUOTA"}
    ]


def test_server_stream_delays_global_and_per_message() -> None:
    store = StubStore()
    store.add(
        stub(
            output={
                "delay": "200ms",
                "stream": [
                    {"n": 1},
                    {"_gripmock": {"delay": "50ms"}, "n": 2},
                    {"data": {"n": 3}, "delay": "1.5s"},
                ],
            }
        )
    )
    reply = store.server_stream(METHOD, {}, {})
    assert reply.messages == [(0.2, {"n": 1}), (0.05, {"n": 2}), (1.5, {"n": 3})]
    assert reply.delay == 0.0


def test_unary_delay_and_first_stream_message() -> None:
    store = StubStore()
    store.add(stub(output={"delay": "1m", "data": {"a": 1}}))
    reply = store.unary(METHOD, {}, {})
    assert (reply.delay, reply.messages) == (60.0, [(0.0, {"a": 1})])


@pytest.mark.parametrize(
    "output",
    [
        {"stream": [{"n": 1}, {"n": 2}, {"n": 3}], "failAfter": 2, "code": 14, "error": "gone"},
        {"stream": [{"n": 1}, {"n": 2}, {"_gripmock": {"code": 14, "error": "gone"}}, {"n": 3}]},
    ],
)
def test_mid_stream_failure(output: dict[str, Any]) -> None:
    store = StubStore()
    store.add(stub(output=output))
    reply = store.server_stream(METHOD, {}, {})
    assert [m for _, m in reply.messages] == [{"n": 1}, {"n": 2}]
    assert (reply.fail_after, reply.status, reply.details) == (2, "UNAVAILABLE", "gone")


def test_stream_then_error_sends_everything_then_the_status() -> None:
    store = StubStore()
    store.add(stub(output={"stream": [{"n": 1}, {"n": 2}], "error": "no room", "code": 8}))
    reply = store.server_stream(METHOD, {}, {})
    assert [m for _, m in reply.messages] == [{"n": 1}, {"n": 2}]
    assert (reply.status, reply.fail_after) == ("RESOURCE_EXHAUSTED", None)


# -- templates --------------------------------------------------------------------------------


def test_templates_read_request_headers_and_call_count() -> None:
    store = StubStore(seed=7)
    store.add(
        stub(
            output={
                "data": {
                    "greeting": 'Hello {{.Request.name | upper}} from {{index .Headers "x-user"}}',
                    "first_tag": "{{index .Request.tags 1}}",
                    "attempt": "{{.AttemptNumber}}",
                    "nested": {
                        "id": "{{.Request.user.id}}",
                        "parts": '{{.Request.code | split "_" | join "-"}}',
                    },
                    "id": "{{uuid}}",
                    "sum": "{{add .Request.n 1}}",
                    "missing": "[{{.Request.nope}}]",
                }
            }
        )
    )
    request = {"name": "ann", "tags": ["a", "b"], "user": {"id": "u7"}, "code": "A_B_C", "n": "41"}
    first = message(store, request, {"X-User": "bob", "x-user": "bob"})
    assert first["greeting"] == "Hello ANN from bob"
    assert first["first_tag"] == "b"
    assert first["attempt"] == 1
    assert first["nested"] == {"id": "u7", "parts": "A-B-C"}
    assert first["sum"] == 42
    assert first["missing"] == "[<no value>]"
    assert uuid.UUID(first["id"]).version == 4
    second = message(store, request, {"x-user": "bob"})
    assert second["attempt"] == 2
    assert second["id"] != first["id"]


def test_template_ids_repeat_with_the_seed() -> None:
    def run() -> list[str]:
        store = StubStore(seed=3)
        store.add(stub(output={"data": {"id": "{{uuid}}"}}))
        return [message(store, {})["id"] for _ in range(3)]

    assert run() == run()


def test_template_output_is_bounded() -> None:
    store = StubStore()
    store.add(stub(output={"data": {"big": "{{.Request.s}}{{.Request.s}}"}}))
    reply = store.unary(METHOD, {"s": "x" * 600_000}, {})
    assert reply.status == "INTERNAL"
    assert "template output over" in reply.details


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("{{.Request.name", "unclosed"),
        ('{{exec "ls"}}', "unknown function 'exec'"),
        ("{{.Request.__class__ | upper}}{{(((((((((((((((((((1)))))))))))))))))))}}", "too deeply"),
        ("{{.Request.a .Request.b}}", "follows a value"),
    ],
)
def test_broken_templates_are_refused_at_load(text: str, why: str) -> None:
    with pytest.raises(StubError, match=why) as err:
        StubStore().add(stub(output={"data": {"m": text}}), "s.yaml")
    assert str(err.value).startswith("s.yaml: output.data.m: template:")


def test_templates_cannot_reach_python_attributes() -> None:
    store = StubStore()
    store.add(stub(output={"data": {"m": "{{.Request.__class__}}|{{.Request.name.__len__}}"}}))
    assert message(store, {"name": "x"}) == {"m": "<no value>|<no value>"}


# -- near misses ----------------------------------------------------------------------


def test_near_misses_closest_first_then_other_methods() -> None:
    store = StubStore()
    store.add(
        stub({"equals": {"name": "Bob", "age": 3}}, id="two-fields", description="Bob aged 3")
    )
    store.add(stub({"equals": {"name": "Zed", "age": 9}}, id="far"))
    store.add(
        {"id": "other", "service": "helloworld.Greeter", "method": "SayBye", "output": {"data": {}}}
    )
    reply = store.unary(METHOD, {"name": "Bob", "age": 4}, {})
    assert not reply.matched and reply.status == "NOT_FOUND"
    assert reply.near_misses == [
        "two-fields/Bob aged 3: input.equals.age: want 3, got 4",
        "far/helloworld.Greeter.SayHello: input.equals.name: want 'Zed', got 'Bob'",
        "other/helloworld.Greeter.SayBye: method 'SayBye', not 'SayHello'",
    ]
    assert reply.details.startswith(
        "No matching stub found (service: helloworld.Greeter, method: SayHello): closest: two-fields"
    )


def test_no_stub_for_the_service_at_all() -> None:
    reply = StubStore().unary("a.B/C", {}, {})
    assert (reply.matched, reply.status, reply.near_misses) == (False, "NOT_FOUND", [])
    assert (
        reply.details
        == "No matching stub found (service: a.B, method: C): no stub for this service"
    )


def test_header_mismatch_is_named() -> None:
    store = StubStore()
    store.add(stub(id="h", headers={"equals": {"x-env": "prod"}}))
    reply = store.unary(METHOD, {}, {"x-env": "dev"})
    assert reply.near_misses == [
        "h/helloworld.Greeter.SayHello: headers.equals.x-env: want 'prod', got 'dev'"
    ]


# -- client streams -------------------------------------------------------------------------


def test_client_stream_inputs_one_per_message() -> None:
    store = StubStore()
    store.add(
        {
            "service": "UploadService",
            "method": "Upload",
            "inputs": [{"equals": {"seq": 1}}, {"equals": {"seq": 2}}],
            "output": {"data": {"count": "{{len .Requests}}", "last": "{{.Request.seq}}"}},
        }
    )
    reply = store.client_stream("up.UploadService/Upload", [{"seq": 1}, {"seq": 2}], {})
    assert reply.messages == [(0.0, {"count": 2, "last": 2})]
    reply = store.client_stream("up.UploadService/Upload", [{"seq": 1}], {})
    assert not reply.matched
    assert "inputs: want 2 messages, got 1" in reply.near_misses[0]


def test_client_stream_one_input_is_for_every_message() -> None:
    store = StubStore()
    store.add(
        {
            "service": "U",
            "method": "Up",
            "inputs": [{"matches": {"v": "^\\d+$"}}],
            "output": {"data": {"avg": "{{avg (extract .Requests `v`)}}"}},
        }
    )
    assert store.client_stream("x.U/Up", [{"v": "2"}, {"v": "4"}], {}).messages == [
        (0.0, {"avg": 3.0})
    ]
    assert not store.client_stream("x.U/Up", [{"v": "2"}, {"v": "x"}], {}).matched


def test_client_stream_inputs_any_some_message_matches() -> None:
    store = StubStore()
    store.add(
        {
            "service": "U",
            "method": "Up",
            "inputsAny": [{"contains": {"kind": "final"}}],
            "output": {"data": {"done": True}},
        }
    )
    assert store.client_stream("x.U/Up", [{"kind": "part"}, {"kind": "final"}], {}).matched
    assert not store.client_stream("x.U/Up", [{"kind": "part"}], {}).matched
    assert not store.client_stream("x.U/Up", [], {}).matched


# -- bidi --------------------------------------------------------------------------------------


def test_bidi_each_message_answered_by_the_stub_matching_it() -> None:
    store = StubStore()
    store.add(
        {
            "service": "Chat",
            "method": "Talk",
            "input": {"equals": {"text": "ping"}},
            "output": {"stream": [{"text": "pong {{.MessageIndex}}"}], "headers": {"x-a": "1"}},
        }
    )
    store.add(
        {
            "service": "Chat",
            "method": "Talk",
            "input": {"equals": {"text": "bye"}},
            "output": {"code": "CANCELLED", "error": "bye", "trailers": {"x-end": "yes"}},
        }
    )
    script = store.bidi("chat.Chat/Talk", {})
    first = script.reply_to({"text": "ping"})
    assert (first.status, first.messages, first.headers) == (
        "OK",
        [(0.0, {"text": "pong 0"})],
        {"x-a": "1"},
    )
    assert script.reply_to({"text": "ping"}).messages == [(0.0, {"text": "pong 1"})]
    last = script.reply_to({"text": "bye"})
    assert (last.status, last.details, last.trailers) == ("CANCELLED", "bye", {"x-end": "yes"})
    assert not script.reply_to({"text": "what"}).matched


def test_bidi_gripmock_inputs_script_and_finish() -> None:
    store = StubStore()
    store.load_paths([FIXTURES / "nested" / "chat.yaml"])
    script = store.bidi("chat.ChatService/Chat", {})
    a = script.reply_to({"user_id": "alice", "content": "Hello"})
    b = script.reply_to({"user_id": "alice", "content": "How are you?"})
    assert [m for _, m in a.messages] == [{"user_id": "bob", "content": "Hello Alice!"}]
    assert [m for _, m in b.messages] == [{"user_id": "bob", "content": "I'm doing great!"}]
    end = script.finish()
    assert (end.status, end.messages, end.matched) == ("OK", [], True)
    wrong = store.bidi("chat.ChatService/Chat", {})
    assert not wrong.reply_to({"user_id": "alice", "content": "How are you?"}).matched


def test_sprintf_is_go_verbs_only() -> None:
    store = StubStore()
    store.add(
        stub(
            output={
                "data": {"m": '{{sprintf .Request.fmt .Request.a}}|{{sprintf "%s-%d%%" "a" 5}}'}
            }
        )
    )
    # a request-supplied format cannot reach Python attributes
    assert message(store, {"fmt": "{0.__class__}%v", "a": "x"}) == {"m": "{0.__class__}x|a-5%"}


def test_gripmock_v1_server_stream_as_a_data_list() -> None:
    store = StubStore()
    store.add(stub(output={"data": [{"n": 1}, {"n": 2}], "delay": "10ms"}))
    reply = store.server_stream(METHOD, {}, {})
    assert reply.messages == [(0.01, {"n": 1}), (0.01, {"n": 2})]


def test_top_level_times_is_options_times() -> None:
    store = StubStore()
    store.add(stub(times=1))
    assert store.unary(METHOD, {}, {}).matched
    assert not store.unary(METHOD, {}, {}).matched
    with pytest.raises(StubError, match=r"api: times: given twice"):
        StubStore().add(stub(times=1, options={"times": 2}))


def test_times_holds_under_concurrent_calls() -> None:
    store = StubStore()
    store.add(stub(times=25))
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda _: store.unary(METHOD, {}, {}).matched, range(100)))
    assert replies.count(True) == 25


def test_time_values_render_as_text() -> None:
    store = StubStore()
    store.add(stub(output={"data": {"at": "{{now}}", "year": '{{now | format "2006-01-02"}}'}}))
    got = message(store, {})
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", got["at"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", got["year"])


def test_a_gripmock_element_with_code_0_ends_the_stream_ok() -> None:
    store = StubStore()
    store.add(stub(output={"stream": [{"n": 1}, {"_gripmock": {"code": 0}}, {"n": 2}]}))
    reply = store.server_stream(METHOD, {}, {})
    assert (reply.messages, reply.status, reply.fail_after) == ([(0.0, {"n": 1})], "OK", None)


def test_bidi_script_last_message_gets_the_rest_and_the_status() -> None:
    store = StubStore()
    store.add(
        {
            "service": "Chat",
            "method": "Talk",
            "inputs": [{"equals": {"n": 1}}, {"equals": {"n": 2}}],
            "output": {"stream": [{"r": 1}, {"r": 2}, {"r": 3}], "code": 14, "error": "bye"},
        }
    )
    script = store.bidi("chat.Chat/Talk", {})
    first = script.reply_to({"n": 1})
    assert ([m for _, m in first.messages], first.status) == ([{"r": 1}], "OK")
    second = script.reply_to({"n": 2})
    assert [m for _, m in second.messages] == [{"r": 2}, {"r": 3}]
    assert (second.status, second.details) == ("UNAVAILABLE", "bye")


def test_gripmock_documented_template_spellings() -> None:
    store = StubStore()
    store.add(
        {
            "service": "U",
            "method": "Up",
            "output": {
                "data": {
                    "first": "{{(index .Requests 0).value}}",
                    "discount": '{{.Request.user_id | split "_" | index 1 | title}}',
                    "count": "{{len .Requests}}",
                    "sum": "{{sum (extract .Requests `value`)}}",
                }
            },
        }
    )
    reply = store.client_stream("x.U/Up", [{"value": "2"}, {"value": 3, "user_id": "USER_abc"}], {})
    assert reply.messages == [(0.0, {"first": "2", "discount": "Abc", "count": 2, "sum": 5})]
