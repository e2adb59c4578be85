"""pytest plugin: the `testbed` fixture (alias `protoproxy_testbed`) and the
`grpc_fake`, `http_fake` and `kafka_fake` handles, every port ephemeral.

Registered through the `pytest11` entry point, so any project that installs
protoproxy can write ``def test_x(testbed): ...``.

The fixture is a plain (sync) fixture around `testbed.threaded.TestbedThread`:
the testbed runs on its own loop in a thread. So it needs no event loop from
the test, and works the same in sync tests, in async tests under pytest-asyncio's
strict or auto mode, and without pytest-asyncio installed; an async fixture
would need pytest-asyncio in auto mode or a user's conftest.

Choosing the scenario (docs/testbed.md):
- ``@pytest.mark.testbed("scenario.yaml")`` (or its older name
  ``protoproxy_scenario``), a path relative to the test file; or a dict of
  scenario keys; keyword arguments override keys;
- ``@pytest.mark.parametrize("protoproxy_testbed", ["a.yaml", {...}], indirect=True)``,
  which takes the place of the marker's positional argument;
- neither: the embedded default scenario (every fake service).

This module imports only pytest when it loads: every pytest run of an
environment with protoproxy installed loads it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .fakes import GrpcFake, HttpFake, KafkaFake
    from .threaded import TestbedThread

MARKER = "testbed"
#: the marker's first name, still accepted
OLD_MARKER = "protoproxy_scenario"


def pytest_configure(config: pytest.Config) -> None:
    for name in (MARKER, OLD_MARKER):
        config.addinivalue_line(
            "markers",
            f"{name}(scenario=None, **keys): the scenario of the testbed fixture: a YAML "
            "path relative to the test file, or a dict of scenario keys; keyword "
            "arguments override scenario keys",
        )


def requested_scenario(request: pytest.FixtureRequest) -> tuple[Any, dict[str, Any]]:
    """(source, overrides) for this test: the indirect parameter or the closest
    marker's argument as the source, the marker's keyword arguments as overrides."""
    marker = _closest_marker(request.node)
    source: Any = None
    overrides: dict[str, Any] = {}
    if marker is not None:
        if len(marker.args) > 1:
            raise pytest.UsageError(f"{MARKER} takes one scenario, got {len(marker.args)}")
        source = marker.args[0] if marker.args else None
        overrides = dict(marker.kwargs)
    if hasattr(request, "param"):
        source = request.param
    return source, overrides


def _closest_marker(node: pytest.Item) -> pytest.Mark | None:
    """The closest `testbed` or `protoproxy_scenario` marker (function, class, module)."""
    for _, mark in node.iter_markers_with_node():
        if mark.name in (MARKER, OLD_MARKER):
            return mark
    return None


def _start(request: pytest.FixtureRequest) -> Iterator[TestbedThread]:
    from .threaded import TestbedThread

    source, overrides = requested_scenario(request)
    with TestbedThread(source, base=request.path.parent, overrides=overrides) as tb:
        yield tb


@pytest.fixture
def testbed(request: pytest.FixtureRequest) -> Iterator[TestbedThread]:
    """The testbed (fake services behind the proxy) for one test, stopped after it."""
    yield from _start(request)


@pytest.fixture
def protoproxy_testbed(request: pytest.FixtureRequest) -> Iterator[TestbedThread]:
    """`testbed` under its first name (a test may ask for both: one testbed)."""
    if "testbed" in request.fixturenames:
        yield request.getfixturevalue("testbed")
    else:
        yield from _start(request)


@pytest.fixture
def grpc_fake(testbed: TestbedThread) -> GrpcFake:
    """Stubs, targets and journal of the scenario's own gRPC services."""
    from .fakes import GrpcFake

    return GrpcFake(testbed)


@pytest.fixture
def http_fake(testbed: TestbedThread) -> HttpFake:
    """Mappings, URLs and journal of the scenario's WireMock-format HTTP services."""
    from .fakes import HttpFake

    return HttpFake(testbed)


@pytest.fixture
def kafka_fake(testbed: TestbedThread) -> KafkaFake:
    """Bootstrap address, live topics and journal of the fake Kafka cluster."""
    from .fakes import KafkaFake

    return KafkaFake(testbed)
