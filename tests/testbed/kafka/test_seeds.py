"""Seed files: every field as documented, placement by Kafka's partitioner, and a
bad line named by file:line and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protoproxy.config_errors import ConfigError
from testbed.kafka import FakeKafkaCluster, seeds
from testbed.scenario import load_scenario

from .rig import SCENARIO


def _write(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "seed.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


async def test_the_fixture_lands_where_the_docs_say() -> None:
    sc = load_scenario(SCENARIO)
    spec = sc.kafka.topics["orders"]
    assert spec.records is not None and spec.records.is_absolute()  # relative to the file
    records = seeds.load_file(spec.records, spec.partitions)
    async with FakeKafkaCluster(brokers=1) as cluster:
        cluster.create_topic("orders", spec.partitions)
        assert seeds.append(cluster, "orders", records) == {0: 4, 1: 1, 2: 1}
        p0 = cluster.records("orders", 0)
        assert [(r.offset, r.key, r.value) for r in p0] == [
            (0, b"order-1", b'{"id":1,"item":"book"}'),
            (1, b"order-4", b"[1,2,3]"),
            (2, b"customer-42", b"by key"),
            (3, None, b"no key, round-robin"),
        ]
        assert p0[0].headers == (("source", b"seed"),) and p0[0].timestamp == 1767225600000
        (r1,) = cluster.records("orders", 1)
        assert r1.timestamp == 1767225601000  # "2026-01-01T00:00:01Z"
        (r2,) = cluster.records("orders", 2)
        assert (r2.key, r2.value) == (b"order-3", b"\x00\x01\x02\xff")


def test_keyless_records_go_round_robin_and_keys_by_murmur2() -> None:
    place = seeds.Partitioner(4)
    assert [place(seeds.SeedRecord(None, b"v")) for _ in range(6)] == [0, 1, 2, 3, 0, 1]
    # Values the Java client's DefaultPartitioner gives (Utils.murmur2 of the key bytes).
    assert seeds.to_positive(-1) == 0x7FFFFFFF
    assert place(seeds.SeedRecord(b"customer-42", b"v")) == place(
        seeds.SeedRecord(b"customer-42", None)
    )


@pytest.mark.parametrize(
    ("line", "field", "words"),
    [
        ('{"key": "k", "valeu": "v"}', "valeu", "unknown field"),
        ('{"value": "v", "value_b64": "AA=="}', "value_b64", "not both"),
        ('{"value_b64": "not base64!"}', "value_b64", "not valid base64"),
        ('{"key_b64": 5}', "key_b64", "base64 string"),
        ('{"partition": 3}', "partition", "0 to 2"),
        ('{"partition": true}', "partition", "0 to 2"),
        ('{"timestamp": "yesterday"}', "timestamp", "ISO 8601"),
        ('{"timestamp": -5}', "timestamp", "non-negative"),
        ('{"headers": {"h": 1}}', "headers.h", "string or null"),
        ('{"headers": []}', "headers", "object"),
        ("[1, 2]", "", "JSON object"),
        ("{not json", "", "not JSON"),
    ],
)
def test_a_bad_line_names_file_line_and_field(
    tmp_path: Path, line: str, field: str, words: str
) -> None:
    path = _write(tmp_path, '{"value": "fine"}', "", line)
    with pytest.raises(ConfigError) as exc:
        seeds.load_file(path, 3)
    assert exc.value.source == f"{path}:3"
    assert exc.value.problems[0][0] == field
    assert words in exc.value.problems[0][1]
    assert f"{path}:3" in str(exc.value)


def test_bounds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, json.dumps({"value": "x" * 200}))
    monkeypatch.setattr(seeds, "MAX_LINE_BYTES", 100)
    with pytest.raises(ConfigError, match="longer than 100 bytes") as exc:
        seeds.load_file(path, 1)
    assert exc.value.source == f"{path}:1"
    monkeypatch.setattr(seeds, "MAX_FILE_BYTES", 10)
    with pytest.raises(ConfigError, match="the limit is 10"):
        seeds.load_file(path, 1)
    with pytest.raises(ConfigError, match="cannot read"):
        seeds.load_file(tmp_path / "missing.jsonl", 1)


async def test_a_bad_seed_file_fails_the_testbed_start(tmp_path: Path) -> None:
    from testbed.harness import Testbed

    (tmp_path / "s.jsonl").write_text('{"value": 1}\n{"partition": 9}\n')
    (tmp_path / "sc.yaml").write_text(
        "kafka: {topics: {t: {partitions: 2, records: s.jsonl}}}\n"
        "grpc: {enabled: false}\nhttp: {enabled: false}\necho: {enabled: false}\n"
    )
    sc = load_scenario(tmp_path / "sc.yaml").with_ephemeral_ports()
    with pytest.raises(ConfigError) as exc:
        async with Testbed(sc):
            pass
    assert exc.value.source == f"{tmp_path / 's.jsonl'}:2"
    assert exc.value.problems[0][0] == "partition"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=10,
)


@settings(max_examples=200, deadline=None)
@given(obj=st.dictionaries(st.sampled_from([*seeds.FIELDS, "other"]), json_values, max_size=6))
def test_any_object_parses_or_names_a_field(obj: dict[str, object]) -> None:
    try:
        rec = seeds.parse_record(obj, 3)
    except seeds.SeedError as exc:
        assert exc.field == "" or exc.field.split(".")[0] in obj
        return
    value = obj.get("value")
    if isinstance(value, str):
        assert rec.value == value.encode()
    elif value is not None and "value_b64" not in obj:
        assert json.loads(rec.value or b"") == value


def test_check_reads_the_seed_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from testbed.cli import run

    (tmp_path / "s.jsonl").write_text('{"value": "ok"}\n{"timestamp": "soon"}\n')
    (tmp_path / "sc.yaml").write_text("kafka: {topics: {t: {records: s.jsonl}}}\n")
    args = argparse.Namespace(schema=False, check=True, scenario=str(tmp_path / "sc.yaml"))
    assert run(args) == 2
    assert f"{tmp_path / 's.jsonl'}:2: timestamp:" in capsys.readouterr().err
