"""Message faults: the per-connection filter, the delay gate, and their installation.

A connection gets a `MessageFaultFilter` only when some enabled message fault
could match its listener and protocol, so connections no fault can touch pay
nothing per message. Faults added later reach live connections through an
engine hook. The filter does the generic work (match, decide, delay, drop,
close, reset, truncate, corrupt) and leaves what needs protocol knowledge
(Kafka error responses, gRPC statuses, HTTP/2 flow control and HPACK, HTTP/1
pipelining) to a per-protocol handler from `message_kafka`, `message_http2`
and `message_http`, subclasses of `handler.Handler` (a module of its own, so
the handlers never import this one).
"""

from __future__ import annotations

import logging
import random
from typing import TYPE_CHECKING, Any

from protoproxy_codecs.base import DOWNSTREAM, UPSTREAM, Direction, Message

from ..pipeline import FilterSlot
from .actions import DIRECTIONS, FRAME_ACTIONS, Action
from .handler import Handler, Matcher, flip_bits
from .stage import TimedStage, clock

if TYPE_CHECKING:
    from ..connection import Connection
    from ..proxy import Proxy
    from .engine import ActiveFault, FaultEngine

log = logging.getLogger("protoproxy.faults")

#: `conn.extra` key of the connection's MessageFaultFilter
FILTER = "_message_faults"


# -- actions ----------------------------------------------------------------------------


def action_of(fault: ActiveFault) -> Action:
    """The fault's parsed action, cached on the fault (a new ActiveFault on update)."""
    action = fault.extra.get("action")
    if action is None:
        assert fault.spec.action is not None
        action = fault.extra["action"] = Action(fault.spec.action)
    return action


def directions_of(fault: ActiveFault) -> tuple[Direction, ...]:
    """Requests (upstream) by default; connection-level frame faults both ways."""
    given = fault.spec.match.get("direction")
    if given is not None:
        return DIRECTIONS[str(given).lower()]
    if action_of(fault).kind in FRAME_ACTIONS:
        return (UPSTREAM, DOWNSTREAM)
    return (UPSTREAM,)


# -- the delay gate -----------------------------------------------------------------------


class Gate(TimedStage):
    """Holds one direction's bytes behind delayed messages, in order.

    Linked outermost (the filter writes into it); a delay puts a barrier in
    the queue and everything written after it waits for it, so a delayed
    message keeps its place on the connection. Each barrier counts in its
    fault's `active` until released. EOF waits behind held bytes.
    """

    kind = "message_delay"

    def __init__(self, conn: Connection, direction: Direction, fault: ActiveFault) -> None:
        super().__init__(conn, direction, fault, random.Random(0))

    def hold(self, seconds: float, fault: ActiveFault) -> None:
        due = max(clock() + seconds, self.last_due)
        self.last_due = due
        fault.active += 1
        self.queue.append((due, fault))
        if self._timer is None:
            self._arm(self.queue[0][0])

    def write(self, data: bytes) -> None:
        self.enqueue(self.last_due, data)

    def writelines(self, chunks: list[bytes]) -> None:
        if not self.queue:
            assert self.next is not None
            self.next.writelines(chunks)
            return
        for chunk in chunks:
            self.enqueue(self.last_due, chunk)

    def _passed(self, item: Any) -> None:
        if callable(item):
            super()._passed(item)
        else:
            item.active -= 1  # a barrier: its delay is over

    def cancel(self) -> None:
        for _, item in self.queue:
            if type(item) is not bytes and not callable(item):
                item.active -= 1
        super().cancel()

    def detach(self) -> None:  # never unlinked while the connection lives
        self.cancel()


# -- the filter ---------------------------------------------------------------------------


class MessageFaultFilter:
    """One per connection that message faults may touch; installed last in the chain."""

    def __init__(self, manager: MessageFaults, conn: Connection, handler_cls: type[Handler]):
        self.manager = manager
        self.engine = manager.engine
        self.conn = conn
        self.generation = -1
        #: by Direction: (fault, action, matcher) to try, in fault order
        self.rules: list[list[tuple[ActiveFault, Action, Matcher]]] = [[], []]
        self.gates: list[Gate | None] = [None, None]
        self.handler = handler_cls(self)
        self.rng = random.Random(self.engine.rng.getrandbits(64))

    def refresh(self) -> None:
        self.generation = self.engine.generation
        rules: list[list[tuple[ActiveFault, Action, Matcher]]] = [[], []]
        conn = self.conn
        for fault in self.engine.candidates(conn.listener.name, conn.protocol):
            action = action_of(fault)
            matcher = self.handler.compile(fault, action)
            if matcher is None:
                continue
            for d in directions_of(fault):
                rules[d].append((fault, action, matcher))
        self.rules = rules

    # -- the Filter interface ----------------------------------------------------------
    def on_messages(
        self, conn: Connection, direction: Direction, messages: list[Message]
    ) -> list[Message]:
        if self.generation != self.engine.generation:
            self.refresh()
        rules = self.rules[direction]
        handler = self.handler
        out: list[Message] = []
        for msg in messages:
            if conn.end_reason is not None:
                return []
            if handler.stalled is not None:
                handler.stalled_message(direction, msg, out)
            elif rules:
                for fault, action, matcher in rules:
                    if matcher(msg) and self.engine.decide(fault):
                        self.engine.mark(conn, msg.key, fault.name)
                        self.inject(fault, action, direction, msg, out)
                        break
                else:
                    handler.forward(direction, msg, out)
            else:
                handler.forward(direction, msg, out)
        return out if conn.end_reason is None else []

    # -- actions -----------------------------------------------------------------------------
    def injected(self, direction: Direction, messages: list[Message]) -> None:
        """Made-up `messages` (``info["injected"]`` names the fault) are being written."""
        for obs in self.manager.proxy.inject_observers:
            obs(self.conn, direction, messages)

    def flush(self, direction: Direction, out: list[Message]) -> None:
        """Write what the batch has so far (before a hold, close or injection)."""
        if out:
            self.conn.send(direction, out)
            out.clear()

    def gate(self, direction: Direction, fault: ActiveFault) -> Gate:
        gate = self.gates[direction]
        if gate is None:
            conn = self.conn
            gate = self.gates[direction] = Gate(conn, direction, fault)
            conn.attach_stage(direction, gate, outermost=True)
        return gate

    def inject(
        self, fault: ActiveFault, action: Action, direction: Direction, msg: Message, out: list
    ) -> None:
        kind = action.kind
        conn = self.conn
        handler = self.handler
        if action.delay is not None:
            self.flush(direction, out)
            self.gate(direction, fault).hold(action.delay.draw(self.rng), fault)
            handler.forward(direction, msg, out)
        elif kind == "drop":
            handler.drop(direction, msg, out, fault.name)
        elif kind == "close" or kind == "reset":
            self.flush(direction, out)
            self.end(kind, fault)
        elif kind == "truncate":
            self.flush(direction, out)
            raw = msg.raw
            cut = action.size if action.size is not None else len(raw) // 2
            conn.send_raw(direction, raw[: min(cut, max(len(raw) - 1, 0))])
            self.end("close", fault)
        elif kind == "corrupt":
            span = handler.payload_span(msg)
            if span is None or span[0] >= span[1]:
                if not handler.act(fault, action, direction, msg, out):
                    handler.forward(direction, msg, out)
                return
            raw = flip_bits(msg.raw, span, action, self.rng)
            handler.forward(
                direction, Message(msg.direction, msg.kind, raw, msg.key, msg.info), out
            )
        elif not handler.act(fault, action, direction, msg, out):
            handler.forward(direction, msg, out)  # not applicable here: pass through

    def end(self, how: str, fault: ActiveFault) -> None:
        conn = self.conn
        if how == "reset":
            conn.fail("fault_reset", f"fault {fault.name} reset the connection")
        else:
            conn.close("fault_close")

    def closed(self) -> None:
        for gate in self.gates:
            if gate is not None:
                gate.cancel()
        self.handler.closed()


# -- installation -----------------------------------------------------------------------------


class MessageFaults:
    """Puts a MessageFaultFilter on connections that enabled message faults may match.

    `filter_for` is the FilterSlot.FAULTS factory; faults added at run time
    reach live connections through `Connection.add_filter`, in the same slot.
    `handlers` (protocol -> Handler class) come from the installer, so this
    module does not import the protocol handlers built on it.
    """

    def __init__(
        self, engine: FaultEngine, proxy: Proxy, handlers: dict[str, type[Handler]]
    ) -> None:
        self.engine = engine
        self.proxy = proxy
        self.handlers = handlers
        engine.hooks.append(self._changed)

    def filter_for(self, conn: Connection) -> MessageFaultFilter | None:
        engine = self.engine
        if not engine.faults or FILTER in conn.extra or conn.end_reason is not None:
            return None
        if not engine.candidates(conn.listener.name, conn.protocol):
            return None
        handler = self.handlers.get(conn.protocol)
        if handler is None:
            return None
        filt = conn.extra[FILTER] = MessageFaultFilter(self, conn, handler)
        return filt

    def _changed(self, fault: ActiveFault | None, what: str) -> None:
        if fault is None or fault.spec.action is None or what == "removed":
            return
        for conn in list(self.proxy.connections.values()):
            if conn.codec is not None:
                filt = self.filter_for(conn)
                if filt is not None:
                    conn.add_filter(FilterSlot.FAULTS, filt)

    def closed(self, conn: Connection) -> None:
        filt: MessageFaultFilter | None = conn.extra.pop(FILTER, None)
        if filt is not None:
            filt.closed()
