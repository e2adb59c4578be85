"""Fault marks: which fault hit which exchange, for the access log.

A fault acts on a message long before the codec pairs that message into an
Exchange, so the fault leaves a mark on the connection, keyed by the
message's correlation key, and an exchange observer (run before any other)
moves it onto ``exchange.attrs["fault"]``. Connections no fault touched pay
one dict lookup per batch of exchanges.

A fault that keeps a message from its receiver (a dropped response, the
responses a stalled Kafka connection withholds) also marks the exchange
``attrs["undelivered"]``, so that counts of what the client was told
(records acknowledged, records fetched) leave it out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from protoproxy_codecs.base import Exchange

    from ..connection import Connection

#: `conn.extra` key of the pending marks: {correlation key: fault name}
MARKS = "fault_marks"
#: `conn.extra` key of the keys whose message a fault kept from its receiver
UNDELIVERED = "fault_undelivered"
#: `conn.extra` key of the stream toxics applied to the connection (names)
TOXICS = "toxics"
#: marks kept per connection for exchanges that have not completed yet; a
#: key whose exchange never completes must not grow the dict for ever
MAX_PENDING = 4096


def mark(conn: Connection, key: Any, name: str) -> None:
    pending: dict[Any, str] | None = conn.extra.get(MARKS)
    if pending is None:
        pending = conn.extra[MARKS] = {}
    elif len(pending) >= MAX_PENDING and key not in pending:
        del pending[next(iter(pending))]  # oldest first
    prior = pending.get(key)
    pending[key] = name if prior is None or prior == name else f"{prior},{name}"


def undelivered(conn: Connection, key: Any, name: str) -> None:
    """Fault `name` kept the message `key` (and so its exchange) from its receiver."""
    if key is None:
        return
    mark(conn, key, name)
    keys: set[Any] | None = conn.extra.get(UNDELIVERED)
    if keys is None:
        keys = conn.extra[UNDELIVERED] = set()
    elif len(keys) >= MAX_PENDING:
        keys.pop()  # a key whose exchange never came; any will do
    keys.add(key)


def observe(conn: Connection, exchanges: list[Exchange]) -> None:
    """Copy marks onto exchanges; the first exchange observer (`ExchangeSlot.MARKS`)."""
    extra = conn.extra
    if not extra:
        return
    pending: dict[Any, str] | None = extra.get(MARKS)
    toxics: list[str] | None = extra.get(TOXICS)
    if not pending and not toxics:
        return
    lost: set[Any] | None = extra.get(UNDELIVERED)
    sticky = pending.get(None) if pending else None
    for ex in exchanges:
        name = pending.pop(ex.key, None) if pending and ex.key is not None else None
        if name is None:
            name = sticky
        if name is None and toxics:
            name = ",".join(toxics)
        if name is not None:
            ex.attrs["fault"] = name
        if lost and ex.key in lost:
            lost.discard(ex.key)
            ex.attrs["undelivered"] = True
