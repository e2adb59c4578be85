"""Put stream toxics on connections, and take them off, live.

A toxic is decided once per connection (`toxicity`, like Toxiproxy), when
the connection's upstream is connected or, for a toxic added later, when it
is added. The decision and the stage are remembered per connection by the
ActiveFault object itself, so any change to the fault set (add, update,
remove, reset) is one reconcile pass: stages whose fault is gone are
unlinked (flushing what they hold), new faults are decided and linked.
Nothing here runs per message.
"""

from __future__ import annotations

import logging
import random
from typing import TYPE_CHECKING

from protoproxy_codecs.base import Direction

from . import marks
from .stage import Stage
from .toxics import STAGES

if TYPE_CHECKING:
    from ..connection import Connection
    from ..proxy import Proxy
    from .engine import ActiveFault, FaultEngine

log = logging.getLogger("protoproxy.faults")

#: `conn.extra` key: {ActiveFault: Stage or None (decided not to apply)}
STATE = "_toxic_state"


class ToxicManager:
    def __init__(self, engine: FaultEngine, proxy: Proxy) -> None:
        self.engine = engine
        self.proxy = proxy
        engine.hooks.append(self._changed)

    # -- connection lifecycle ----------------------------------------------------
    def connected(self, conn: Connection) -> None:
        if self.engine.faults:
            self.reconcile(conn)

    def closed(self, conn: Connection) -> None:
        state: dict[ActiveFault, Stage | None] | None = conn.extra.pop(STATE, None)
        if state:
            for fault, stage in state.items():
                if stage is not None:
                    stage.cancel()
                    fault.active -= 1

    def _changed(self, fault: ActiveFault | None, what: str) -> None:
        if fault is not None and fault.spec.toxic is None and what in ("added", "removed"):
            return  # a message fault: nothing to do on streams
        for conn in list(self.proxy.connections.values()):
            if conn.server is not None and conn.end_reason is None:
                self.reconcile(conn)

    # -- the one place stages are linked and unlinked --------------------------
    def reconcile(self, conn: Connection) -> None:
        state: dict[ActiveFault, Stage | None] | None = conn.extra.get(STATE)
        wanted = self.engine.candidates(conn.listener.name, conn.protocol, kind="toxic")
        if state is None:
            if not wanted:
                return
            state = conn.extra[STATE] = {}
        keep = set(wanted)
        for fault in [f for f in state if f not in keep]:
            stage = state.pop(fault)
            if stage is not None:
                self._unlink(conn, stage)
        for fault in wanted:
            if fault in state:
                continue
            toxic = fault.spec.toxic
            assert toxic is not None
            stage = None
            if self.engine.decide(fault, toxicity=toxic.toxicity):
                stage = self._link(conn, fault)
            state[fault] = stage
        names = [f.name for f, s in state.items() if s is not None]
        if names:
            conn.extra[marks.TOXICS] = names
        else:
            conn.extra.pop(marks.TOXICS, None)

    def _link(self, conn: Connection, fault: ActiveFault) -> Stage:
        toxic = fault.spec.toxic
        assert toxic is not None
        direction = Direction.UPSTREAM if toxic.stream == "upstream" else Direction.DOWNSTREAM
        # Per-stage RNG seeded from the engine's: jitter and slice sizes vary
        # with chunking, which must not shift the engine's own draws.
        rng = random.Random(self.engine.rng.getrandbits(64))
        stage = STAGES[toxic.type](conn, direction, fault, rng)
        # Innermost (next to the Side): Toxiproxy appends new toxics to the chain's end.
        conn.attach_stage(direction, stage, outermost=False)
        stage.start()
        fault.active += 1  # connections this toxic is in effect on (schedule.max_active)
        log.info("conn %d: toxic %s (%s %s) applied", conn.id, fault.name, toxic.type, toxic.stream)
        return stage

    def _unlink(self, conn: Connection, stage: Stage) -> None:
        stage.detach()
        stage.fault.active -= 1
        conn.detach_stage(stage.direction, stage)  # closes if it held a close back

    # -- queries -------------------------------------------------------------------
    @staticmethod
    def stages(conn: Connection) -> list[Stage]:
        state: dict[ActiveFault, Stage | None] = conn.extra.get(STATE) or {}
        return [s for s in state.values() if s is not None]
