"""Which driver class serves which `protoproxy fuzz` subcommand, and its proxy listener.

Drivers are named as ``module:Class`` strings and imported only when their
subcommand runs, so `protoproxy fuzz kafka` never loads the gRPC stack. Tests
and plugins add their own with `register` (or `--driver module:Class`).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

#: subcommand -> "module:Class"
DRIVERS: dict[str, str] = {
    "kafka": "protoproxy.fuzz.kafka:KafkaDriver",
    "grpc": "protoproxy.fuzz.grpc:GrpcDriver",
    "http2": "protoproxy.fuzz.http2:Http2Driver",
}

#: subcommand -> the proxy listener's `protocol` (protoproxy.config.Protocol)
LISTENER_PROTOCOL: dict[str, str] = {"kafka": "kafka", "grpc": "grpc", "http2": "http2"}


class DriverMissing(LookupError):
    """The driver's module or class is not there (not built yet, or a typo)."""


def register(name: str, spec: str, listener_protocol: str = "tcp") -> None:
    """Add (or replace) a driver under `name`, e.g. a test's own line protocol."""
    DRIVERS[name] = spec
    LISTENER_PROTOCOL[name] = listener_protocol


def load(spec_or_name: str) -> type[Any]:
    """The driver class for a registered name or a ``module:Class`` spec."""
    spec = DRIVERS.get(spec_or_name, spec_or_name)
    module_name, sep, attr = spec.partition(":")
    if not sep:
        raise DriverMissing(f"no driver {spec_or_name!r} (known: {', '.join(sorted(DRIVERS))})")
    try:
        module = import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise DriverMissing(f"driver module {module_name} is not built") from exc
        raise
    try:
        return getattr(module, attr)
    except AttributeError as exc:
        raise DriverMissing(f"{module_name} has no {attr}") from exc


def listener_protocol(name: str, driver_cls: type[Any] | None = None) -> str:
    """The proxy listener protocol for a driver: the registry's, else the class's
    own `listener_protocol` attribute, else plain tcp."""
    if name in LISTENER_PROTOCOL:
        return LISTENER_PROTOCOL[name]
    return str(getattr(driver_cls, "listener_protocol", "tcp"))
