"""Testbed scenarios: which fake services to start and where the proxy listens.

A scenario is a small YAML document; the embedded default starts everything
on the ports DESIGN.md promises, so `protoproxy testbed` needs no file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from protoproxy.config_errors import ConfigError, problems_of

DEFAULT_PORTS = {"kafka": 19092, "grpc": 15051, "http": 18080, "echo": 17000, "admin": 9901}


#: Names the testbed gives its own listeners; a user service may not take one.
RESERVED_NAMES = frozenset(DEFAULT_PORTS)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _relative_to_scenario(value: Path, info: ValidationInfo) -> Path:
    """A relative path in a scenario file is taken from the file's directory, so
    a scenario means the same whatever the working directory (pytest's, CI's)."""
    base = (info.context or {}).get("base")
    if base is not None and not value.is_absolute():
        return Path(base) / value
    return value


#: A file or folder named in a scenario: relative to the scenario file's directory.
ScenarioPath = Annotated[Path, AfterValidator(_relative_to_scenario)]
Port = Annotated[int, Field(ge=0, le=65535)]
ServiceName = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,62}$")]


class TopicScenario(_Model):
    partitions: int = Field(default=1, ge=1, le=1024)
    #: seed records: a JSON-lines file, one object per line with ``key``, ``value``
    #: (or ``value_b64``), ``headers``, ``partition`` and ``timestamp``
    records: ScenarioPath | None = None


def _topic_short_form(value: Any) -> Any:
    """``orders: 3`` is ``orders: {partitions: 3}``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return {"partitions": value}
    return value


#: ``orders: 3`` or ``orders: {partitions: 3, records: seed.jsonl}``
TopicEntry = Annotated[
    TopicScenario,
    BeforeValidator(_topic_short_form, json_schema_input_type=int | TopicScenario),
]


class SaslUser(_Model):
    password: SecretStr


class SaslScenario(_Model):
    #: mechanisms the fake brokers offer, in SaslHandshake's order
    mechanisms: list[Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]] = Field(
        default_factory=lambda: ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"], min_length=1
    )
    users: dict[str, SaslUser] = Field(min_length=1)


class HostileScenario(_Model):
    """Hostile answers: a `rate` share of requests answered with edge values.

    Which requests, and what each answer carries, is drawn from (`seed`, the
    request's index at the fake), so the same seed and the same requests give
    the same answers; testbed/hostile.py says what is drawn.
    """

    seed: int = 0
    #: the share of requests answered hostile (0 to 1)
    rate: float = Field(default=0.1, ge=0.0, le=1.0)


def _kafka_api_name(name: str) -> str:
    from protoproxy_codecs.kafka import schema

    try:
        schema.api_key_of(name)
    except KeyError:
        raise ValueError(f"unknown Kafka API {name!r} (e.g. Metadata, Produce, Fetch)") from None
    return name


class KafkaHostileScenario(HostileScenario):
    #: only these APIs (by name: Metadata, Fetch...); leave out for every API
    apis: list[Annotated[str, AfterValidator(_kafka_api_name)]] | None = None


class GrpcHostileScenario(HostileScenario):
    #: only these methods ("pkg.Service/Method", or a "Service/Method" suffix); all if left out
    methods: list[str] | None = None


class KafkaScenario(_Model):
    enabled: bool = True
    brokers: int = Field(default=3, ge=1, le=16)
    #: topic -> partition count, or -> {partitions, records}
    topics: dict[
        str,
        Annotated[
            TopicScenario,
            BeforeValidator(_topic_short_form, json_schema_input_type=int | TopicScenario),
        ],
    ] = Field(default_factory=lambda: {"orders": TopicScenario(partitions=6)})
    auto_create: bool = True
    #: SASL on every broker listener (SASL_PLAINTEXT); leave out for none
    sasl: SaslScenario | None = None
    #: answer a share of requests with edge values (testbed/kafka/hostile.py)
    hostile: KafkaHostileScenario | None = None


class ServiceScenario(_Model):
    enabled: bool = True


class GrpcServiceScenario(_Model):
    """A fake of one of the user's gRPC services, from its schema and stub files."""

    name: ServiceName
    #: the proxy listener's port; 0 = ephemeral
    port: Port = 0
    #: .proto files, compiled at start (protoc in-process): no codegen step
    protos: list[ScenarioPath] = Field(default_factory=list)
    #: where imports in `protos` are found (the proto files' folders are added)
    import_paths: list[ScenarioPath] = Field(default_factory=list)
    #: a FileDescriptorSet (``protoc --descriptor_set_out --include_imports``)
    descriptor_set: ScenarioPath | None = None
    #: host:port of a real server whose reflection service gives the schema
    reflect_from: str | None = None
    #: GripMock stub files (YAML or JSON), or folders searched recursively
    stubs: list[ScenarioPath] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_schema(self) -> GrpcServiceScenario:
        given = [k for k in ("protos", "descriptor_set", "reflect_from") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of protos, descriptor_set or reflect_from"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self


class HttpServiceScenario(_Model):
    """A fake HTTP service answering from WireMock stub mappings."""

    name: ServiceName
    port: Port = 0
    #: WireMock mapping JSON files, or folders (a folder's ``__files/`` holds bodies)
    mappings: list[ScenarioPath] = Field(default_factory=list)


class UserServicesScenario(ServiceScenario):
    """A protocol whose fakes may be the user's own (`services`), answered
    hostile (`hostile`) or not, beside the built-in demo (`demo`)."""

    kind: ClassVar[str]
    #: the protocol's built-in demo service; default: on unless `services` lists the user's own
    demo: bool | None = None
    #: (each protocol narrows the types of these two)
    services: list[Any] = Field(default_factory=list)
    hostile: Any = None

    @property
    def runs_demo(self) -> bool:
        return self.enabled and (self.demo if self.demo is not None else not self.services)

    @model_validator(mode="after")
    def _hostile_needs_services(self) -> UserServicesScenario:
        if self.hostile is not None and not self.services:
            raise ValueError(
                f"hostile: answers come from the user's services: list one under {self.kind}.services"
            )
        return self


class GrpcScenario(UserServicesScenario):
    kind: ClassVar[str] = "grpc"

    #: Run grpcio's server in the testbed's own process instead of a child process
    #: (testbed.grpc_process): for tests that reach into the live FakeGrpcService.
    in_process: bool = False
    #: the built-in TestService on the ``grpc`` listener; default: on unless
    #: `services` lists the user's own
    demo: bool | None = None
    services: list[GrpcServiceScenario] = Field(default_factory=list)
    #: answer a share of the user services' calls with edge values (testbed/grpc_fakes/hostile.py)
    hostile: GrpcHostileScenario | None = None


class HttpHostileScenario(HostileScenario):
    #: only requests whose path starts with one of these ("/api/"); all if left out
    paths: list[str] | None = None


class HttpScenario(UserServicesScenario):
    kind: ClassVar[str] = "http"

    #: the built-in routes on the ``http`` listener; default: on unless `services` is set
    demo: bool | None = None
    services: list[HttpServiceScenario] = Field(default_factory=list)
    #: answer a share of the `services` fakes' requests with edge values (testbed/wiremock/hostile.py)
    hostile: HttpHostileScenario | None = None


class JournalScenario(_Model):
    #: entries kept; older ones are dropped (and counted)
    limit: int = Field(default=10_000, ge=1, le=10_000_000)


class Scenario(_Model):
    seed: int = 0
    host: str = "127.0.0.1"
    #: Proxy listener ports; 0 asks for ephemeral ports (what tests use).
    ports: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_PORTS))
    kafka: KafkaScenario = Field(default_factory=KafkaScenario)
    grpc: GrpcScenario = Field(default_factory=GrpcScenario)
    http: HttpScenario = Field(default_factory=HttpScenario)
    echo: ServiceScenario = Field(default_factory=ServiceScenario)
    faults: list[dict[str, Any]] = Field(default_factory=list)
    #: faults entries (or ``{remove: name}``) keyed by workload step ``at``: see testbed/schedule.py
    schedule: list[dict[str, Any]] = Field(default_factory=list)
    #: Keep recent decoded messages for /messages (a laptop tool: on by default).
    tail: bool = True
    #: Write one JSON line per exchange to stdout.
    access_log: bool = False
    journal: JournalScenario = Field(default_factory=JournalScenario)

    @model_validator(mode="after")
    def _unique_names(self) -> Scenario:
        seen: set[str] = set()
        for kind, services in (("grpc", self.grpc.services), ("http", self.http.services)):
            for i, svc in enumerate(services):
                if svc.name in RESERVED_NAMES:
                    raise ValueError(
                        f"{kind}.services[{i}].name: {svc.name!r} is the testbed's own "
                        f"listener name; pick another"
                    )
                if svc.name in seen:
                    raise ValueError(f"{kind}.services[{i}].name: {svc.name!r} is used twice")
                seen.add(svc.name)
        return self

    def user_services(self) -> list[GrpcServiceScenario | HttpServiceScenario]:
        return [*self.grpc.services, *self.http.services]

    @classmethod
    def ephemeral(cls, **overrides: Any) -> Scenario:
        """Every port chosen by the OS: for tests running side by side."""
        data: dict[str, Any] = {"ports": dict.fromkeys(DEFAULT_PORTS, 0)}
        data.update(overrides)
        return cls.model_validate(data)

    def with_ephemeral_ports(self) -> Scenario:
        """This scenario with every port left to the OS: a scenario file written for
        `protoproxy testbed` (default ports) then also serves tests run in parallel."""
        grpc = self.grpc.model_copy(
            update={"services": [s.model_copy(update={"port": 0}) for s in self.grpc.services]}
        )
        http = self.http.model_copy(
            update={"services": [s.model_copy(update={"port": 0}) for s in self.http.services]}
        )
        return self.model_copy(
            update={"ports": dict.fromkeys(DEFAULT_PORTS, 0), "grpc": grpc, "http": http}
        )


def json_schema() -> str:
    """The scenario file's JSON Schema (`protoproxy testbed --schema`)."""
    schema = Scenario.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "protoproxy testbed scenario"
    return json.dumps(schema, indent=2, sort_keys=True)


#: What a scenario can be given as: a file, a mapping of scenario keys, or a Scenario.
ScenarioSource = Scenario | dict[str, Any] | str | Path | None


def load_scenario(path: str | Path | None) -> Scenario:
    """A scenario file; its relative paths are taken from the file's directory."""
    if path is None:
        return Scenario()
    path = Path(path)
    text = path.read_text()
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([("", f"not YAML: {exc}")], str(path)) from None
    return _validate(data or {}, str(path), base=path.resolve().parent)


def resolve_scenario(source: ScenarioSource, base: Path | None = None) -> Scenario:
    """A Scenario from any `ScenarioSource`; a relative file path is taken from
    `base` (the pytest plugin passes the test file's directory)."""
    if source is None or isinstance(source, Scenario):
        return source if source is not None else Scenario()
    if isinstance(source, dict):
        return _validate(source, "testbed scenario", base=base)
    path = Path(source)
    if base is not None and not path.is_absolute():
        path = base / path
    return load_scenario(path)


def _validate(data: Any, source: str, base: Path | None = None) -> Scenario:
    if not isinstance(data, dict):
        raise ConfigError([("", "a scenario is a mapping of keys")], source)
    try:
        return Scenario.model_validate(data, context={"base": base})
    except ValidationError as exc:
        raise ConfigError(problems_of(exc), source) from None
