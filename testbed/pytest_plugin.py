"""pytest plugin: the `protoproxy_testbed` fixture, every port ephemeral.

Registered through the `pytest11` entry point, so any project that installs
protoproxy can write ``def test_x(protoproxy_testbed): ...``.

The fixture is a plain (sync) fixture around `testbed.threaded.TestbedThread`:
the testbed runs on its own loop in a thread. So it needs no event loop from
the test, and works the same in sync tests, in async tests under pytest-asyncio's
strict or auto mode, and without pytest-asyncio installed; an async fixture
would need pytest-asyncio in auto mode or a user's conftest.

Choosing the scenario (docs/testbed.md):
- ``@pytest.mark.protoproxy_scenario("scenario.yaml")``, a path relative to the
  test file; or a dict of scenario keys; keyword arguments override keys;
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
    from .threaded import TestbedThread

MARKER = "protoproxy_scenario"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(scenario=None, **keys): the scenario of the protoproxy_testbed "
        "fixture: a YAML path relative to the test file, or a dict of scenario keys; "
        "keyword arguments override scenario keys",
    )


def requested_scenario(request: pytest.FixtureRequest) -> tuple[Any, dict[str, Any]]:
    """(source, overrides) for this test: the indirect parameter or the closest
    marker's argument as the source, the marker's keyword arguments as overrides."""
    marker = request.node.get_closest_marker(MARKER)
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


@pytest.fixture
def protoproxy_testbed(request: pytest.FixtureRequest) -> Iterator[TestbedThread]:
    """The testbed (fake services behind the proxy) for one test, stopped after it."""
    from .threaded import TestbedThread

    source, overrides = requested_scenario(request)
    with TestbedThread(source, base=request.path.parent, overrides=overrides) as tb:
        yield tb
