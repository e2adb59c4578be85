"""The fault engine: one registry of faults, one seeded RNG, one set of counters.

Config, the admin API (native and Toxiproxy-compatible) and the Python API
all call the same methods here, so a fault behaves the same however it was
made. Decisions draw from a single `random.Random(seed)` in the order
messages arrive, so the same seed and the same traffic give the same
injections: a failing run can be replayed.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import marks
from .actions import CONN_PROTOCOL, listener_problem
from .model import FaultSpec

if TYPE_CHECKING:
    from ..connection import Connection
    from ..proxy import Proxy

log = logging.getLogger("protoproxy.faults")

ChangeHook = Callable[["ActiveFault | None", str], None]


@dataclass(eq=False)
class ActiveFault:
    """A fault as installed: its spec plus the state its schedule needs."""

    spec: FaultSpec
    added: float
    matches: int = 0  # messages (or connections, for toxics) that matched
    injected: int = 0
    active: int = 0  # injections still in effect (held, delayed)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.name

    def to_json(self) -> dict[str, Any]:
        out = self.spec.model_dump(mode="json", exclude_none=True)
        out["stats"] = {"matches": self.matches, "injected": self.injected, "active": self.active}
        return out


class FaultEngine:
    def __init__(
        self, proxy: Proxy, seed: int | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.proxy = proxy
        self.clock = clock
        self.seed = seed if seed is not None else random.SystemRandom().randrange(2**32)
        self.rng = random.Random(self.seed)
        self.faults: dict[str, ActiveFault] = {}
        #: bumped on every change, so per-connection caches know to refresh
        self.generation = 0
        self.hooks: list[ChangeHook] = []
        self.injected = proxy.stats.counter(
            "protoproxy_faults_injected_total", "Fault injections, by fault", ("fault", "kind")
        )
        #: a replay log of (fault, match number) in injection order
        self.history: list[tuple[str, int]] = []
        self.history_limit = 100_000

    # -- control (config, admin, Python) ---------------------------------------
    def check(self, spec: FaultSpec) -> None:
        """Raise ValueError for names in the match that this proxy does not have.

        The model checks a fault on its own; only the running proxy knows its
        listeners (from config, opened for Kafka brokers, or added at run time).
        """
        if "listener" not in spec.match:
            return
        listeners = {lst.name: lst.protocol for lst in self.proxy.config.listeners}
        listeners.update((name, lst.config.protocol) for name, lst in self.proxy.listeners.items())
        problem = listener_problem(spec.match["listener"], listeners)
        if problem is not None:
            raise ValueError(f"match.listener: {problem}")

    def add(self, spec: FaultSpec) -> ActiveFault:
        if spec.name in self.faults:
            raise KeyError(f"fault {spec.name!r} already exists")
        self.check(spec)
        fault = ActiveFault(spec, added=self.clock())
        self.faults[spec.name] = fault
        self._changed(fault, "added")
        log.info("fault %s added: %s", spec.name, spec.model_dump(exclude_none=True))
        return fault

    def update(self, name: str, spec: FaultSpec) -> ActiveFault:
        self.check(spec)
        old = self.faults.pop(name)
        fault = ActiveFault(spec, added=old.added, matches=old.matches, injected=old.injected)
        self.faults[spec.name] = fault
        self._changed(fault, "updated")
        return fault

    def remove(self, name: str) -> None:
        fault = self.faults.pop(name)
        self._changed(fault, "removed")
        log.info("fault %s removed", name)

    def reset(self, seed: int | None = None) -> None:
        """Remove every fault; optionally restart the RNG for a replay."""
        for name in list(self.faults):
            self.remove(name)
        if seed is not None:
            self.reseed(seed)

    def reseed(self, seed: int) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.history.clear()

    def get(self, name: str) -> ActiveFault:
        return self.faults[name]

    def _changed(self, fault: ActiveFault | None, what: str) -> None:
        self.generation += 1
        for hook in self.hooks:
            hook(fault, what)

    # -- decisions -------------------------------------------------------------------
    def candidates(self, listener: str, protocol: str, kind: str = "message") -> list[ActiveFault]:
        """Enabled faults that could apply to a listener/protocol (cheap prefilter)."""
        out = []
        for fault in self.faults.values():
            spec = fault.spec
            if not spec.enabled or (kind == "toxic") != (spec.toxic is not None):
                continue
            m = spec.match
            if "listener" in m and m["listener"] != listener:
                continue
            if "protocol" in m and CONN_PROTOCOL.get(m["protocol"]) != protocol:
                continue
            if spec.protocols is not None and protocol not in spec.protocols:
                continue
            out.append(fault)
        return out

    def decide(self, fault: ActiveFault, toxicity: float = 1.0) -> bool:
        """Count a match and decide, by schedule then probability, whether to inject.

        `toxicity` scales the probability: a stream toxic applies to a
        connection with `probability * toxicity`, drawn once, so a toxic costs
        one draw per connection whatever its settings.
        """
        fault.matches += 1
        n = fault.matches
        spec = fault.spec
        sched = spec.schedule
        if sched is not None:
            if sched.limit is not None and fault.injected >= sched.limit:
                return False
            if sched.first is not None and n > sched.first:
                return False
            if sched.after is not None and n <= sched.after:
                return False
            if sched.every is not None and n % sched.every != 0:
                return False
            if sched.between is not None:
                elapsed = self.clock() - fault.added
                if not sched.between[0] <= elapsed < sched.between[1]:
                    return False
            if sched.max_active is not None and fault.active >= sched.max_active:
                return False
        # Always draw, so that one fault's schedule does not shift another's dice.
        draw = self.rng.random()
        if draw >= spec.probability * toxicity:
            return False
        self.record(fault)
        return True

    def record(self, fault: ActiveFault) -> None:
        fault.injected += 1
        self.injected.inc((fault.name, fault.spec.kind))
        if len(self.history) < self.history_limit:
            self.history.append((fault.name, fault.matches))

    def mark(self, conn: Connection, key: Any, name: str) -> None:
        """Note that fault `name` hit the exchange `key` of `conn` (for the access log).

        The engine's exchange observer copies the mark onto that Exchange's
        ``attrs["fault"]`` when the codec reports it. `key` None marks every
        later exchange of the connection.
        """
        marks.mark(conn, key, name)

    def to_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "faults": [f.to_json() for f in self.faults.values()],
        }
