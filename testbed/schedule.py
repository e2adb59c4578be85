"""A scenario's `schedule:`: faults applied at workload steps, not at seconds.

Each entry is a `faults:` entry (a proxy fault or a `service:` fault) or
`{remove: name}`, with `at: k`: applied once the workload has called
`advance()` k times (`at: 0`, the default: at start). Steps count what the
workload did, so a replay applies every fault at the same point of the
workload however slow the machine is; `protoproxy testbed` without a workload
applies only the `at: 0` steps. This is what `protoproxy.fuzz.fault_search`
replays its plans with.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from protoproxy.config_errors import ConfigError

if TYPE_CHECKING:
    from .faults import TestbedFaults
    from .harness import Testbed


class Schedule:
    """`tb.schedule`: the position in the workload and the steps still to apply."""

    def __init__(self, faults: TestbedFaults) -> None:
        self.faults = faults
        self.position = 0
        self._steps: list[tuple[int, dict[str, Any]]] = []
        #: (at, entry) of every step applied, in order
        self.applied: list[tuple[int, dict[str, Any]]] = []

    async def load(self, entries: list[dict[str, Any]]) -> None:
        """Replace the steps (position back to 0), check them all, apply the `at: 0` ones."""
        steps: list[tuple[int, dict[str, Any]]] = []
        for i, raw in enumerate(entries):
            entry = dict(raw)
            at = entry.pop("at", 0)
            if not isinstance(at, int) or isinstance(at, bool) or at < 0:
                raise ConfigError(
                    [(f"schedule[{i}].at", "must be an integer >= 0")], "testbed scenario"
                )
            if "remove" in entry:
                if set(entry) != {"remove"} or not isinstance(entry["remove"], str):
                    raise ConfigError(
                        [(f"schedule[{i}]", "a remove step is {at: N, remove: NAME}")],
                        "testbed scenario",
                    )
            else:
                try:
                    self.faults.parse(i, entry)
                except ConfigError as exc:
                    raise ConfigError(
                        [(w.replace("faults[", "schedule[", 1), p) for w, p in exc.problems],
                        "testbed scenario",
                    ) from None
            steps.append((at, entry))
        self._steps = sorted(steps, key=lambda s: s[0])  # stable: equal `at` keeps file order
        self.position = 0
        self.applied = []
        await self._apply_due()

    async def advance(self) -> int:
        """The workload finished one more step: apply what is due; returns the position."""
        self.position += 1
        await self._apply_due()
        return self.position

    @property
    def pending(self) -> int:
        return len(self._steps)

    async def _apply_due(self) -> None:
        while self._steps and self._steps[0][0] <= self.position:
            at, entry = self._steps.pop(0)
            if "remove" in entry:
                self.faults.remove(entry["remove"])
            else:
                parsed = self.faults.parse(len(self.applied), entry)
                await self.faults.apply(parsed)
            self.applied.append((at, entry))


async def attach(tb: Testbed) -> Schedule:
    schedule = Schedule(tb.faults)
    tb.schedule = schedule
    await schedule.load(tb.scenario.schedule)
    return schedule
