"""pytest plugin: a `protoproxy_testbed` fixture with every port ephemeral.

Registered through the `pytest11` entry point, so any project that installs
protoproxy can write `async def test_x(protoproxy_testbed): ...`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest


@pytest.fixture
async def protoproxy_testbed() -> AsyncIterator[object]:
    from .harness import Testbed
    from .scenario import Scenario

    async with Testbed(Scenario.ephemeral()) as tb:
        yield tb
