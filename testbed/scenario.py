"""Testbed scenarios: which fake services to start and where the proxy listens.

A scenario is a small YAML document; the embedded default starts everything
on the ports DESIGN.md promises, so `protoproxy testbed` needs no file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from protoproxy.config_errors import ConfigError, problems_of

DEFAULT_PORTS = {"kafka": 19092, "grpc": 15051, "http": 18080, "echo": 17000, "admin": 9901}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KafkaScenario(_Model):
    enabled: bool = True
    brokers: int = Field(default=3, ge=1, le=16)
    topics: dict[str, int] = Field(default_factory=lambda: {"orders": 6})
    auto_create: bool = True


class ServiceScenario(_Model):
    enabled: bool = True


class GrpcScenario(ServiceScenario):
    #: Run grpcio's server in the testbed's own process instead of a child process
    #: (testbed.grpc_process): for tests that reach into the live FakeGrpcService.
    in_process: bool = False


class Scenario(_Model):
    seed: int = 0
    host: str = "127.0.0.1"
    #: Proxy listener ports; 0 asks for ephemeral ports (what tests use).
    ports: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_PORTS))
    kafka: KafkaScenario = Field(default_factory=KafkaScenario)
    grpc: GrpcScenario = Field(default_factory=GrpcScenario)
    http: ServiceScenario = Field(default_factory=ServiceScenario)
    echo: ServiceScenario = Field(default_factory=ServiceScenario)
    faults: list[dict[str, Any]] = Field(default_factory=list)
    #: Keep recent decoded messages for /messages (a laptop tool: on by default).
    tail: bool = True
    #: Write one JSON line per exchange to stdout.
    access_log: bool = False

    @classmethod
    def ephemeral(cls, **overrides: Any) -> Scenario:
        """Every port chosen by the OS: for tests running side by side."""
        data: dict[str, Any] = {"ports": dict.fromkeys(DEFAULT_PORTS, 0)}
        data.update(overrides)
        return cls.model_validate(data)

    def with_ephemeral_ports(self) -> Scenario:
        """This scenario with every port left to the OS: a scenario file written for
        `protoproxy testbed` (default ports) then also serves tests run in parallel."""
        return self.model_copy(update={"ports": dict.fromkeys(DEFAULT_PORTS, 0)})


#: What a scenario can be given as: a file, a mapping of scenario keys, or a Scenario.
ScenarioSource = Scenario | dict[str, Any] | str | Path | None


def load_scenario(path: str | Path | None) -> Scenario:
    if path is None:
        return Scenario()
    text = Path(path).read_text()
    return _validate(yaml.safe_load(text) or {}, str(path))


def resolve_scenario(source: ScenarioSource, base: Path | None = None) -> Scenario:
    """A Scenario from any `ScenarioSource`; a relative file path is taken from
    `base` (the pytest plugin passes the test file's directory)."""
    if source is None or isinstance(source, Scenario):
        return source if source is not None else Scenario()
    if isinstance(source, dict):
        return _validate(source, "testbed scenario")
    path = Path(source)
    if base is not None and not path.is_absolute():
        path = base / path
    return load_scenario(path)


def _validate(data: Any, source: str) -> Scenario:
    if not isinstance(data, dict):
        raise ConfigError([("", "a scenario is a mapping of keys")], source)
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(problems_of(exc), source) from None
