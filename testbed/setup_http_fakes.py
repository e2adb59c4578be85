"""Start the scenario's WireMock-format HTTP fakes and put the proxy in front of each.

Each `http.services` entry gets its own engine and server on an ephemeral
loopback port, and a proxy listener (``protocol: http``) on the entry's port,
so that clients and WireMock's admin clients reach the fake only through the
proxy, as they reach the real service in production.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from protoproxy.config_errors import ConfigError

if TYPE_CHECKING:
    from .harness import Testbed
    from .scenario import Scenario
    from .wiremock.engine import WireMockEngine


def load_engines(sc: Scenario) -> list[WireMockEngine]:
    """One engine per `http.services` entry, its mapping files loaded; every bad
    file of every entry in one ConfigError (`protoproxy testbed --check` can call
    this: it opens no socket)."""
    from .wiremock.engine import MappingError, WireMockEngine

    engines: list[WireMockEngine] = []
    problems: list[tuple[str, str]] = []
    for i, entry in enumerate(sc.http.services):
        engine = WireMockEngine(seed=sc.seed, journal_limit=sc.journal.limit)
        try:
            engine.load_paths([Path(p) for p in entry.mappings])
        except MappingError as e:
            problems.append((f"http.services[{i}].mappings", str(e)))
        except OSError as e:
            problems.append((f"http.services[{i}].mappings", f"{e.filename}: {e.strerror}"))
        engines.append(engine)
    if problems:
        raise ConfigError(problems, source="testbed scenario")
    return engines


async def start(
    tb: Testbed, listeners: list[dict[str, Any]], upstreams: list[dict[str, Any]]
) -> None:
    """Load every service's mappings first (a bad file stops start-up before any
    socket is opened), then start the servers on `tb._stack`."""
    from .wiremock.hostile import HttpHostile
    from .wiremock.service import WireMockService

    sc = tb.scenario
    engines = load_engines(sc)
    spec = sc.http.hostile
    for entry, engine in zip(sc.http.services, engines, strict=True):
        hostile = None
        if spec is not None:
            hostile = HttpHostile(entry.name, spec.seed, spec.rate, spec.paths)
        service = await tb._stack.enter_async_context(
            WireMockService(engine, entry.name, host=sc.host, journal=tb.journal, hostile=hostile)
        )
        tb.services[entry.name] = service
        host, port = service.address
        tb.front(entry.name, "http", [f"{host}:{port}"], listeners, upstreams, port=entry.port)
    tb.hints.append(_admin_hint)


def _admin_hint(tb: Testbed) -> list[str]:
    """Where each fake's WireMock admin API is, through the proxy."""
    lines = []
    for entry in tb.scenario.http.services:
        address = tb.addresses.get(entry.name)
        if address is not None:
            lines.append(
                f"  {entry.name}:  curl -s http://{address}/__admin/mappings   (WireMock admin)"
            )
    return lines
