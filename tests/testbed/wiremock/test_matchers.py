"""Each WireMock value matcher, on values that match and values that do not, with WireMock's distances."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from testbed.wiremock.errors import MappingError
from testbed.wiremock.json_match import json_distance
from testbed.wiremock.matchers import (
    levenshtein,
    levenshtein_rows,
    normalised_levenshtein,
    parse_value_matcher,
)


def m(spec: dict[str, Any]) -> Any:
    return parse_value_matcher(spec, "request.headers.X")


def test_equal_to_is_exact_and_case_sensitive() -> None:
    assert m({"equalTo": "abc"}).match("abc") == 0
    assert m({"equalTo": "abc"}).match("ABC") > 0
    assert m({"equalTo": "abc"}).match(None) == 1.0


def test_equal_to_case_insensitive() -> None:
    assert m({"equalTo": "Hello", "caseInsensitive": True}).match("hELLO") == 0
    assert m({"equalTo": "Hello", "caseInsensitive": True}).match("hELL") > 0


def test_equal_to_distance_is_normalised_levenshtein() -> None:
    # one edit in four characters, as WireMock's EqualToPattern scores it
    assert m({"equalTo": "abcd"}).match("abce") == pytest.approx(0.25)
    assert normalised_levenshtein("kitten", "sitting") == pytest.approx(3 / 7)


def test_contains_and_does_not_contain() -> None:
    assert m({"contains": "ee"}).match("needle") == 0
    assert m({"contains": "xx"}).match("needle") == 1
    assert m({"doesNotContain": "xx"}).match("needle") == 0
    assert m({"doesNotContain": "ee"}).match("needle") == 1
    # WireMock 3.13: a missing value passes the negative matchers
    assert m({"doesNotContain": "ee"}).match(None) == 0
    assert m({"doesNotMatch": "x"}).match(None) == 0
    assert m({"contains": ""}).match(None) == 1


def test_matches_is_a_whole_value_match_like_java() -> None:
    assert m({"matches": "[0-9]+"}).match("123") == 0
    assert m({"matches": "[0-9]+"}).match("123a") == 1  # Java String.matches, not search
    assert m({"doesNotMatch": "test-.*"}).match("prod-1") == 0
    assert m({"doesNotMatch": "test-.*"}).match("test-1") == 1


def test_absent_matches_only_a_missing_value() -> None:
    assert m({"absent": True}).match(None) == 0
    assert m({"absent": True}).match("") == 1


def test_binary_equal_to_compares_decoded_bytes() -> None:
    assert m({"binaryEqualTo": "aGk="}).match("hi") == 0
    assert m({"binaryEqualTo": "aGk="}).match("ho") == 1


def test_and_or() -> None:
    both = m({"and": [{"matches": "[0-9]+"}, {"doesNotContain": "0"}]})
    assert both.match("123") == 0
    assert both.match("103") > 0
    either = m({"or": [{"equalTo": "gold"}, {"equalTo": "silver"}]})
    assert either.match("silver") == 0
    assert either.match("bronze") > 0


def jm(expected: Any, **options: bool) -> Any:
    return m({"equalToJson": expected, **options})


def test_equal_to_json_compares_values_not_text() -> None:
    assert jm({"a": 1, "b": [1, 2]}).match('{ "b" : [1,2], "a" : 1.0 }') == 0
    assert jm('{"a": 1}').match('{"a": 2}') > 0
    assert jm({"a": 1}).match("not json") == 1
    assert jm({"a": True}).match('{"a": 1}') > 0  # a boolean is no number


def test_equal_to_json_array_order() -> None:
    assert jm([1, 2, 3]).match("[3, 2, 1]") > 0
    assert jm([1, 2, 3], ignoreArrayOrder=True).match("[3, 2, 1]") == 0
    assert jm([1, 1, 2], ignoreArrayOrder=True).match("[1, 2, 2]") > 0  # a multiset, not a set


def test_equal_to_json_extra_elements_covers_fields_and_array_items() -> None:
    assert jm({"a": 1}).match('{"a": 1, "b": 2}') > 0
    assert jm({"a": 1}, ignoreExtraElements=True).match('{"a": 1, "b": 2}') == 0
    assert jm([1, 2], ignoreExtraElements=True).match("[1, 2, 3]") == 0
    assert jm({"a": 1, "c": 3}, ignoreExtraElements=True).match('{"a": 1}') > 0


def test_equal_to_json_placeholders() -> None:
    spec = {
        "s": "${json-unit.any-string}",
        "n": "${json-unit.any-number}",
        "b": "${json-unit.any-boolean}",
        "i": "${json-unit.ignore}",
        "r": "${json-unit.regex}[a-z]+",
    }
    good = {"s": "x", "n": 1.5, "b": False, "i": [1, {}], "r": "abc"}
    assert jm(spec).match(json.dumps(good)) == 0
    # ${json-unit.ignore} still needs the field; ignore-element does not
    assert jm({"a": "${json-unit.ignore}"}).match("{}") > 0
    assert jm({"a": "${json-unit.ignore-element}"}).match("{}") == 0
    for key, bad in (("s", 1), ("n", "1"), ("b", 0), ("r", "ABC")):
        assert jm(spec).match(json.dumps({**good, key: bad})) > 0, key


def test_equal_to_json_distance_counts_differing_nodes() -> None:
    # {"a":1,"b":2,"c":3} has 4 nodes; one differs
    assert json_distance(
        {"a": 1, "b": 2, "c": 3}, {"a": 1, "b": 2, "c": 4}, False, False
    ) == pytest.approx(0.25)


def test_matches_json_path_presence() -> None:
    body = json.dumps({"items": [{"qty": 1}, {"qty": 9}], "name": "ann", "empty": []})
    assert m({"matchesJsonPath": "$.name"}).match(body) == 0
    assert m({"matchesJsonPath": "$.missing"}).match(body) == 1
    assert m({"matchesJsonPath": "$.items[?(@.qty > 5)]"}).match(body) == 0
    assert m({"matchesJsonPath": "$.items[?(@.qty > 50)]"}).match(body) == 1
    # WireMock 3.13: null, [] and {} are not found; 0, "" and false are
    assert m({"matchesJsonPath": "$.empty"}).match(body) == 1
    assert m({"matchesJsonPath": "$.a"}).match('{"a": {}}') == 1
    assert m({"matchesJsonPath": "$.a"}).match('{"a": null}') == 1
    for found in ("0", '""', "false"):
        assert m({"matchesJsonPath": "$.a"}).match('{"a": ' + found + "}") == 0
    assert m({"matchesJsonPath": "$.name"}).match("not json") == 1


def test_matches_json_path_with_sub_matcher() -> None:
    body = json.dumps({"customer": {"name": "ann", "age": 30, "vip": True}, "ids": [1, 2]})
    assert (
        m({"matchesJsonPath": {"expression": "$.customer.name", "equalTo": "ann"}}).match(body) == 0
    )
    assert (
        m({"matchesJsonPath": {"expression": "$.customer.name", "equalTo": "bob"}}).match(body) > 0
    )
    assert (
        m({"matchesJsonPath": {"expression": "$.customer.age", "equalTo": "30"}}).match(body) == 0
    )
    assert (
        m({"matchesJsonPath": {"expression": "$.customer.vip", "equalTo": "true"}}).match(body) == 0
    )
    assert (
        m({"matchesJsonPath": {"expression": "$.ids", "equalTo": "2"}}).match(body) == 0
    )  # any element
    assert m({"matchesJsonPath": {"expression": "$.nope", "absent": True}}).match(body) == 0
    # an object found is matched as WireMock's pretty JSON text
    assert (
        m({"matchesJsonPath": {"expression": "$.customer", "contains": '"age" : 30'}}).match(body)
        == 0
    )
    assert m({"matchesJsonPath": {"expression": "$.ids", "equalTo": "[1, 2]"}}).match(body) > 0
    sub_json = {
        "expression": "$.customer",
        "equalToJson": {"name": "ann"},
        "ignoreExtraElements": True,
    }
    assert m({"matchesJsonPath": sub_json}).match(body) == 0


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"equalTox": "a"}, "request.headers.X: unknown matcher 'equalTox'"),
        ({}, "request.headers.X: no matcher"),
        ({"equalTo": "a", "contains": "b"}, "more than one matcher: equalTo, contains"),
        ({"equalTo": 3}, "equalTo takes a string"),
        (
            {"contains": "a", "caseInsensitive": True},
            "unknown option 'caseInsensitive' for contains",
        ),
        ({"matches": "(unclosed"}, "request.headers.X.matches: bad regex"),
        ({"matches": "a" * 5000}, "regex of 5000 characters"),
        ({"equalToJson": "{bad"}, "equalToJson is not JSON"),
        ({"equalToJson": {}, "ignoreArrayOrder": "yes"}, "ignoreArrayOrder: must be true or false"),
        ({"matchesJsonPath": "$.[[["}, "bad JSONPath"),
        ({"matchesJsonPath": {"expression": "$.a"}}, "needs a matcher beside 'expression'"),
        ({"and": []}, "takes a non-empty list of matchers"),
        ({"or": [{"nope": 1}]}, "request.headers.X.or[0]: unknown matcher 'nope'"),
        ("equalTo", "a matcher must be an object"),
    ],
)
def test_bad_matchers_name_the_path(spec: Any, message: str) -> None:
    with pytest.raises(MappingError) as caught:
        parse_value_matcher(spec, "request.headers.X")
    assert message in str(caught.value)


@settings(max_examples=500, deadline=None)
@given(st.text("abcd/?=é", max_size=40), st.text("abcd/?=é", max_size=40))
def test_bit_vector_levenshtein_equals_the_textbook_one(a: str, b: str) -> None:
    assert levenshtein(a, b) == levenshtein_rows(a, b) == levenshtein(b, a)
