"""Every matcher against protobuf-JSON requests, through the store's unary answer."""

from __future__ import annotations

from typing import Any

import pytest

from testbed.grpc_stubs import Reply, StubStore

METHOD = "helloworld.Greeter/SayHello"


def answer(input_: dict[str, Any], request: dict[str, Any]) -> Reply:
    store = StubStore()
    store.add(
        {
            "service": "helloworld.Greeter",
            "method": "SayHello",
            "input": input_,
            "output": {"data": {"message": "hit"}},
        }
    )
    return store.unary(METHOD, request, {})


def hit(input_: dict[str, Any], request: dict[str, Any]) -> bool:
    return answer(input_, request).matched


# -- equals ---------------------------------------------------------------------------


def test_equals_ignores_fields_the_stub_does_not_name() -> None:
    assert hit({"equals": {"name": "Bob"}}, {"name": "Bob", "age": 3})
    assert not hit({"equals": {"name": "Bob"}}, {"name": "bob"})


def test_equals_number_matches_int64_string_and_camel_case_key() -> None:
    # MessageToDict gives int64 as a string and proto field names
    assert hit({"equals": {"userId": 42}}, {"user_id": "42"})
    assert hit({"equals": {"user_id": "42"}}, {"user_id": "42"})
    assert not hit({"equals": {"userId": 43}}, {"user_id": "42"})


def test_equals_absent_field_is_its_zero_value() -> None:
    # protobuf JSON leaves default values out of the request
    assert hit({"equals": {"active": False, "count": 0, "name": ""}}, {})
    assert not hit({"equals": {"active": True}}, {})


def test_equals_bool_is_not_a_number() -> None:
    assert not hit({"equals": {"flag": 1}}, {"flag": True})


def test_equals_nested_object_is_exact() -> None:
    stub = {"equals": {"user": {"id": "u1"}}}
    assert hit(stub, {"user": {"id": "u1"}})
    assert not hit(stub, {"user": {"id": "u1", "role": "admin"}})


def test_equals_arrays_keep_order_unless_told() -> None:
    stub = {"equals": {"ips": ["a", "b"]}}
    assert hit(stub, {"ips": ["a", "b"]})
    assert not hit(stub, {"ips": ["b", "a"]})
    assert hit({**stub, "ignoreArrayOrder": True}, {"ips": ["b", "a"]})
    # still a multiset: counts matter
    assert not hit({"equals": {"ips": ["a", "a"]}, "ignoreArrayOrder": True}, {"ips": ["a", "b"]})


# -- contains -------------------------------------------------------------------------


def test_contains_is_structural_not_substring() -> None:
    assert hit({"contains": {"name": "gripmock"}}, {"name": "gripmock", "x": 1})
    assert not hit({"contains": {"name": "grip"}}, {"name": "gripmock"})


def test_contains_nested_subset_and_array_elements_any_order() -> None:
    stub = {"contains": {"details": {"category": "test"}, "tags": ["grpc"]}}
    assert hit(stub, {"details": {"category": "test", "more": 1}, "tags": ["mock", "grpc"]})
    assert not hit(stub, {"details": {"category": "prod"}, "tags": ["grpc"]})
    assert not hit(stub, {"details": {"category": "test"}, "tags": ["mock"]})


def test_empty_matchers_are_a_catch_all() -> None:
    assert hit({"contains": None}, {"anything": 1})
    assert hit({}, {})


# -- matches / glob ---------------------------------------------------------------------


def test_matches_is_an_unanchored_regex_on_the_values_text() -> None:
    assert hit({"matches": {"email": "@company\\.com$"}}, {"email": "a@company.com"})
    assert not hit({"matches": {"email": "@company\\.com$"}}, {"email": "a@other.com"})
    assert hit({"matches": {"id": "^\\d+$"}}, {"id": "12345"})
    assert hit({"matches": {"n": "^4\\d$"}}, {"n": 42})


def test_matches_arrays_item_by_item() -> None:
    stub = {"matches": {"ips": ["^10\\.0\\.2\\.\\d+$", "^10\\.0\\.2\\.\\d+$"]}}
    assert hit(stub, {"ips": ["10.0.2.77", "10.0.2.88"]})
    assert not hit(stub, {"ips": ["10.0.2.77", "10.0.3.88"]})


def test_glob_follows_go_path_match() -> None:
    assert hit({"glob": {"filename": "report_*.pdf"}}, {"filename": "report_q1.pdf"})
    assert not hit({"glob": {"path": "/reports/*"}}, {"path": "/reports/2024/q1"})
    assert hit({"glob": {"f": "file?.txt"}}, {"f": "file1.txt"})
    assert hit({"glob": {"f": "data[12].json"}}, {"f": "data2.json"})
    assert not hit({"glob": {"f": "data[!12].json"}}, {"f": "data2.json"})


def test_anyof_is_or_on_top_of_the_and() -> None:
    stub = {
        "equals": {"role": "admin"},
        "anyOf": [{"equals": {"dept": "eng"}}, {"matches": {"team": "^platform-"}}],
    }
    assert hit(stub, {"role": "admin", "dept": "eng"})
    assert hit(stub, {"role": "admin", "team": "platform-x"})
    assert not hit(stub, {"role": "admin", "team": "web"})
    assert not hit(stub, {"role": "user", "dept": "eng"})


def test_ignore_array_order_is_not_inherited_by_anyof() -> None:
    stub = {"ignoreArrayOrder": True, "anyOf": [{"equals": {"ids": ["a", "b"]}}]}
    assert not hit(stub, {"ids": ["b", "a"]})
    stub = {"anyOf": [{"ignoreArrayOrder": True, "equals": {"ids": ["a", "b"]}}]}
    assert hit(stub, {"ids": ["b", "a"]})


# -- headers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("metadata", "matched"),
    [
        ({"x-env": "prod", "x-user": "alice"}, True),
        ({"X-Env": "prod", "authorization": "Bearer admin_x"}, True),
        ({"x-env": "staging", "x-user": "alice"}, False),
        ({"x-env": "prod"}, False),
    ],
)
def test_headers_gripmock_anyof_table(metadata: dict[str, str], matched: bool) -> None:
    store = StubStore()
    store.add(
        {
            "service": "Greeter",
            "method": "SayHello",
            "headers": {
                "equals": {"X-Env": "prod"},
                "anyOf": [
                    {"equals": {"x-user": "alice"}},
                    {"matches": {"authorization": "^Bearer admin_"}},
                ],
            },
            "output": {"data": {}},
        }
    )
    assert store.unary(METHOD, {}, metadata).matched is matched


def test_header_contains_is_the_whole_value() -> None:
    store = StubStore()
    store.add(
        {
            "service": "Greeter",
            "method": "SayHello",
            "headers": {"contains": {"authorization": "Bearer"}},
            "output": {"data": {}},
        }
    )
    assert not store.unary(METHOD, {}, {"authorization": "Bearer abc"}).matched
    assert store.unary(METHOD, {}, {"authorization": "Bearer"}).matched


def test_a_pattern_sees_an_absent_field_as_empty_text() -> None:
    # protobuf leaves an empty string out of the request
    assert hit({"matches": {"name": "^$"}}, {})
    assert not hit({"matches": {"name": "."}}, {})
    assert hit({"glob": {"name": "*"}}, {})


def test_matches_lists_any_order_with_ignore_array_order() -> None:
    stub = {"matches": {"ips": ["^10\\.", "^192\\."]}}
    assert not hit(stub, {"ips": ["192.168.0.1", "10.0.0.1"]})
    assert hit({**stub, "ignoreArrayOrder": True}, {"ips": ["192.168.0.1", "10.0.0.1"]})
