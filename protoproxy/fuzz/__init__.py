"""Protocol-aware fuzzing: `protoproxy fuzz` against a user's server, and fault-schedule search.

`fault_schedules`, `FaultPlan` and `fault_search` come from `schedules` and
`search`, imported on first use so that `protoproxy fuzz` does not load the
testbed and the testbed does not load the fuzzer.
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "fault_schedules": "schedules",
    "FaultPlan": "schedules",
    "fault_search": "search",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(name)
    from importlib import import_module

    return getattr(import_module(f"{__name__}.{module}"), name)
