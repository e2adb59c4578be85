"""Scenario files: the schema, paths relative to the file, and errors that name their path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from protoproxy.config import ConfigError
from testbed.scenario import Scenario, json_schema, load_scenario, resolve_scenario

FULL = """
grpc:
  services:
    - name: shop
      port: 15052
      protos: [protos/shop.proto]
      import_paths: [protos]
      stubs: [stubs/shop/]
http:
  services:
    - name: api
      port: 18081
      mappings: [wiremock/mappings/]
kafka:
  topics:
    orders: {partitions: 3, records: seed/orders.jsonl}
    audit: 2
  sasl: {mechanisms: [PLAIN, SCRAM-SHA-256], users: {alice: {password: secret}}}
"""


def write(tmp_path: Path, text: str, name: str = "scenario.yaml") -> Path:
    path = tmp_path / "project" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_paths_are_taken_from_the_scenario_files_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, FULL)
    monkeypatch.chdir(tmp_path)  # a working directory that is not the file's
    sc = load_scenario("project/scenario.yaml")
    base = path.parent.resolve()
    shop = sc.grpc.services[0]
    assert shop.protos == [base / "protos/shop.proto"]
    assert shop.import_paths == [base / "protos"]
    assert shop.stubs == [base / "stubs/shop"]
    assert sc.http.services[0].mappings == [base / "wiremock/mappings"]
    assert sc.kafka.topics["orders"].records == base / "seed/orders.jsonl"
    assert sc.kafka.topics["audit"].partitions == 2  # the short form
    assert sc.kafka.sasl is not None
    assert sc.kafka.sasl.users["alice"].password.get_secret_value() == "secret"
    assert "secret" not in repr(sc)  # a SecretStr: never printed
    # the user's services replace the demo ones unless asked for
    assert not sc.grpc.runs_demo and not sc.http.runs_demo


def test_an_absolute_path_is_kept(tmp_path: Path) -> None:
    sc = resolve_scenario(
        {"http": {"services": [{"name": "api", "mappings": ["/abs/m"]}]}}, tmp_path
    )
    assert sc.http.services[0].mappings == [Path("/abs/m")]


def test_ephemeral_ports_also_free_the_user_services_ports(tmp_path: Path) -> None:
    sc = load_scenario(write(tmp_path, FULL)).with_ephemeral_ports()
    assert [s.port for s in sc.user_services()] == [0, 0]
    assert set(sc.ports.values()) == {0}


@pytest.mark.parametrize(
    ("text", "path", "problem"),
    [
        (
            "grpc: {services: [{name: shop, protos: [a.proto], stub: [x]}]}",
            "grpc.services[0].stub",
            "unknown key",
        ),
        (
            "kafka: {topics: {orders: {partitions: 0}}}",
            "kafka.topics.orders.partitions",
            "greater than or equal to 1",
        ),
        (
            "kafka: {topics: {orders: {partitions: 1, record: x}}}",
            "kafka.topics.orders.record",
            "unknown key",
        ),
        (
            "kafka: {sasl: {mechanisms: [GSSAPI], users: {a: {password: b}}}}",
            "kafka.sasl.mechanisms[0]",
            "PLAIN",
        ),
        (
            "http: {services: [{name: api, port: 70000}]}",
            "http.services[0].port",
            "less than or equal to 65535",
        ),
        (
            "grpc: {services: [{name: shop}]}",
            "grpc.services[0]",
            "exactly one of protos, descriptor_set or reflect_from",
        ),
        (
            "grpc: {services: [{name: shop, protos: [a], descriptor_set: d}]}",
            "grpc.services[0]",
            "(got protos, descriptor_set)",
        ),
        (
            "grpc: {services: [{name: kafka, protos: [a]}]}",
            "grpc.services[0].name",
            "the testbed's own listener name",
        ),
        (
            "grpc: {services: [{name: x, protos: [a]}]}\nhttp: {services: [{name: x}]}",
            "http.services[0].name",
            "used twice",
        ),
        ("journal: {limit: 0}", "journal.limit", "greater than or equal to 1"),
    ],
)
def test_a_bad_scenario_names_the_path_and_the_problem(
    tmp_path: Path, text: str, path: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as failed:
        load_scenario(write(tmp_path, text))
    assert path in str(failed.value)
    assert problem in str(failed.value)


def test_the_json_schema_accepts_a_full_scenario_and_refuses_unknown_keys(tmp_path: Path) -> None:
    import yaml

    schema = json.loads(json_schema())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(yaml.safe_load(FULL), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"grpc": {"services": [{"name": "a", "protoz": []}]}}, schema)
    # every key of the models is in it: the docs' field tables are checked against this
    props = schema["$defs"]["GrpcServiceScenario"]["properties"]
    assert set(props) == set(
        Scenario.model_fields["grpc"]
        .annotation.model_fields["services"]
        .annotation.__args__[0]
        .model_fields
    )  # type: ignore[union-attr]


def test_the_cli_prints_the_schema_and_checks_a_file(tmp_path: Path) -> None:
    run = [sys.executable, "-m", "protoproxy", "testbed"]
    printed = subprocess.run([*run, "--schema"], capture_output=True, text=True, timeout=60)
    assert printed.returncode == 0
    assert json.loads(printed.stdout)["title"] == "protoproxy testbed scenario"
    # --check reads every file the scenario names: here, one seed file
    good = write(tmp_path, "kafka: {topics: {orders: {partitions: 3, records: seed/orders.jsonl}}}")
    (good.parent / "seed").mkdir()
    (good.parent / "seed/orders.jsonl").write_text('{"key": "k", "value": "v"}\n')
    ok = subprocess.run([*run, "--check", str(good)], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    bad = write(tmp_path, "kafka: {brokerz: 1}", "bad.yaml")
    refused = subprocess.run(
        [*run, "--check", str(bad)], capture_output=True, text=True, timeout=60
    )
    assert refused.returncode == 2
    assert "kafka.brokerz: unknown key" in refused.stderr
    (good.parent / "seed/orders.jsonl").write_text('{"key": "k", "valu": "v"}\n')
    seeds = subprocess.run([*run, "--check", str(good)], capture_output=True, text=True, timeout=60)
    assert seeds.returncode == 2
    assert "orders.jsonl:1" in seeds.stderr  # the seed files are checked too
    mappings = good.parent / "mappings"
    mappings.mkdir()
    (mappings / "a.json").write_text(
        '{"request": {"urlPath": "/a", "method": "GET"}, "respons": {}}'
    )
    wired = write(tmp_path, "http: {services: [{name: api, mappings: [mappings/]}]}", "w.yaml")
    refused = subprocess.run(
        [*run, "--check", str(wired)], capture_output=True, text=True, timeout=60
    )
    assert refused.returncode == 2
    assert "a.json" in refused.stderr and "respons" in refused.stderr  # and the mapping files
