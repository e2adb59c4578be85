"""Kafka API keys are spelled in one place: ``protoproxy_codecs.kafka.api_keys.ApiKey``.

Before the enum, five modules each had their own ``PRODUCE = 0``, and the
fake broker dispatched on bare ``18``; a number typed twice can be typed wrong
once. This test reads the sources (ast, nothing imported) of codecs/,
protoproxy/ and testbed/ for the ways a key number sneaks back in:

- an assignment of an int literal to an API's name (``PRODUCE = 0``,
  ``_FETCH = 1``, ``API_VERSIONS_KEY = 18``), anywhere;
- in the Kafka modules: ``api_key == 18`` (or ``key in (0, 1)``), a dict
  literal keyed by API-key ints (``{0: produce, 1: fetch}``), and an int
  literal as the api key of a framing/schema call (``encode_response(18, ...)``).

Its own planted examples below show that each rule fires.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from protoproxy_codecs.kafka import schema
from protoproxy_codecs.kafka.api_keys import ApiKey

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("codecs", "protoproxy", "testbed")
ENUM_MODULE = Path("codecs/protoproxy_codecs/kafka/api_keys.py")

_NAMES = frozenset(ApiKey.__members__)
_VALUES = frozenset(int(k) for k in ApiKey)
# Names that hold an api key in the Kafka modules.
_KEY_VARIABLES = frozenset(("api_key", "key"))
# framing/schema functions whose first argument is an api key.
_KEYED_CALLS = frozenset(
    (
        "encode_request",
        "encode_response",
        "encode_body",
        "decode_body",
        "request_class",
        "response_class",
        "is_known",
        "api_name",
        "is_flexible",
        "request_header_version",
        "response_header_version",
        "parse_response_header",
    )
)
# `api_key < 0` is a range check; only equality names an API.
_EQUALITY = (ast.Eq, ast.NotEq, ast.In, ast.NotIn)
# Int-keyed dict literals in Kafka modules that are not keyed by api key.
_NOT_API_TABLES = frozenset(("_ERROR_NAME_OVERRIDES", "_LEGACY_MIN"))  # error codes; magic bytes


def _is_int(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) is int


def _is_ints(node: ast.AST) -> bool:
    """An int literal, or a tuple/list/set of them (``key in (0, 1)``)."""
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return bool(node.elts) and all(_is_int(e) for e in node.elts)
    return _is_int(node)


def _api_name(name: str) -> bool:
    return name.lstrip("_").upper().removesuffix("_KEY") in _NAMES


def _name_of(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _assigned(node: ast.Assign | ast.AnnAssign) -> list[tuple[ast.AST, ast.AST]]:
    """(target, value) pairs, unpacking ``A, B = 0, 1``."""
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    value = node.value
    pairs: list[tuple[ast.AST, ast.AST]] = []
    for target in targets:
        if (
            isinstance(target, ast.Tuple)
            and isinstance(value, ast.Tuple)
            and len(target.elts) == len(value.elts)
        ):
            pairs.extend(zip(target.elts, value.elts, strict=True))
        elif value is not None:
            pairs.append((target, value))
    return pairs


def violations(source: str, where: str, kafka_module: bool) -> list[str]:
    """Every place in `source` that spells an API key's number itself."""
    tree = ast.parse(source)
    table_of: dict[int, str] = {}  # id(dict literal) -> the name it is assigned to
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign | ast.AnnAssign):
            for target, value in _assigned(node):
                name = _name_of(target)
                if name is None:
                    continue
                table_of[id(value)] = name
                if _api_name(name) and _is_int(value):
                    found.append(f"{where}:{node.lineno}: {name} = {value.value}")  # type: ignore[attr-defined]
        if not kafka_module:
            continue
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            if (
                all(isinstance(op, _EQUALITY) for op in node.ops)
                and any(_name_of(o) in _KEY_VARIABLES for o in operands)
                and any(_is_ints(o) for o in operands)
            ):
                found.append(f"{where}:{node.lineno}: api key compared with a number")
        elif isinstance(node, ast.Dict):
            keys = node.keys
            if (
                len(keys) >= 2
                and all(k is not None and _is_int(k) and k.value in _VALUES for k in keys)  # type: ignore[attr-defined]
                and table_of.get(id(node)) not in _NOT_API_TABLES
            ):
                found.append(f"{where}:{node.lineno}: dict keyed by bare api-key numbers")
        elif (
            isinstance(node, ast.Call)
            and _name_of(node.func) in _KEYED_CALLS
            and node.args
            and _is_int(node.args[0])
        ):
            found.append(f"{where}:{node.lineno}: api key passed as a number")
    return found


def _sources() -> list[Path]:
    out: list[Path] = []
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT)
            if rel != ENUM_MODULE and "_pb2" not in path.name:
                out.append(rel)
    return out


def test_the_sources_are_scanned() -> None:
    """A checker that reads no files passes everything; make sure it reads the Kafka ones."""
    sources = {str(p) for p in _sources()}
    for expected in (
        "codecs/protoproxy_codecs/kafka/codec.py",
        "protoproxy/kafka/filter.py",
        "protoproxy/faults/message_kafka.py",
        "testbed/kafka/dispatch.py",
    ):
        assert expected in sources


def test_no_module_but_the_enum_spells_api_key_numbers() -> None:
    found: list[str] = []
    for rel in _sources():
        found += violations((ROOT / rel).read_text(), str(rel), "kafka" in str(rel))
    assert found == []


PLANTED = """
PRODUCE = 0
_FETCH = 1
API_VERSIONS_KEY = 18
OFFSET_COMMIT, OFFSET_FETCH = 8, 9
HANDLERS = {0: produce, 1: fetch}

def handle(api_key, key, version):
    if api_key == 18:
        pass
    if key in (0, 1):
        pass
    return framing.encode_response(18, 0, 1, body)
"""


def test_the_checker_catches_planted_numbers() -> None:
    found = violations(PLANTED, "planted.py", kafka_module=True)
    lines = sorted(int(f.split(":")[1]) for f in found)
    assert lines == [2, 3, 4, 5, 5, 6, 9, 11, 13], found
    # Outside the Kafka modules only the named constants count.
    assert len(violations(PLANTED, "planted.py", kafka_module=False)) == 5


CLEAN = """
from protoproxy_codecs.kafka.api_keys import ApiKey
_PRODUCE = int(ApiKey.PRODUCE)
HANDLERS = {ApiKey.PRODUCE: produce}
MAX_PENDING = 1000
_ERROR_NAME_OVERRIDES = {0: "NONE", 6: "NOT_LEADER_OR_FOLLOWER"}

def handle(api_key, version):
    if api_key == ApiKey.API_VERSIONS and version >= 3:
        return framing.encode_response(ApiKey.API_VERSIONS, 0, 1, body)
"""


def test_the_checker_passes_enum_spellings() -> None:
    assert violations(CLEAN, "clean.py", kafka_module=True) == []


def test_enum_is_exactly_what_kafka_python_knows() -> None:
    """The members are kafka-python's APIs, under Kafka's names, so the two cannot drift."""
    names = schema.tables().names
    assert {int(k) for k in ApiKey} == set(names)
    for key in ApiKey:
        assert key.display_name == names[key], key


@pytest.mark.parametrize(
    ("key", "name"),
    [
        (ApiKey.PRODUCE, "Produce"),
        (ApiKey.API_VERSIONS, "ApiVersions"),
        (ApiKey.INIT_PRODUCER_ID, "InitProducerId"),
        (ApiKey.OFFSET_FOR_LEADER_EPOCH, "OffsetForLeaderEpoch"),
    ],
)
def test_display_names(key: ApiKey, name: str) -> None:
    assert key.display_name == name == schema.api_name(key)
