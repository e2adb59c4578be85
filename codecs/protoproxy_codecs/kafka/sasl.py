"""SASL state of one Kafka connection: the mechanism, and legacy bare-token mode.

After a successful SaslHandshake **v0** the client stops writing Kafka
requests and sends bare size-prefixed SASL tokens, which the broker answers
the same way; Kafka headers come back once authentication is done. Nothing in
a token says when that is, so the end is found two ways:
- by the mechanism's known number of round trips (PLAIN, OAUTHBEARER: 1;
  SCRAM: 2);
- for others (GSSAPI), or as a safety net, by a frame that parses as a known
  Kafka request carrying the handshake's client_id.
(With SaslHandshake v1 the tokens travel inside SaslAuthenticate requests
and no mode switch happens.)
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from . import schema

if TYPE_CHECKING:
    from ..base import Exchange

ROUNDS = {"PLAIN": 1, "SCRAM-SHA-256": 2, "SCRAM-SHA-512": 2, "OAUTHBEARER": 1}
UNKNOWN_ROUNDS = -1

_HEAD = struct.Struct(">hhih")  # api_key, api_version, correlation_id, client_id length


class SaslState:
    """Per-connection SASL bookkeeping for KafkaCodec; no credentials are kept.

    The codec asks questions (``token_mode``, ``awaiting_server_token``,
    ``is_kafka_request``) that never change anything, and says what happened
    (``handshake``, ``handshake_succeeded``, ``leave_token_mode``,
    ``client_token``, ``server_token``), so every transition is a named call.
    The two flags the codec reads per frame are plain attributes, recomputed
    by ``_settle`` after each transition: an attribute read is cheaper than a
    property call on every frame.
    """

    __slots__ = (
        "_rounds",
        "_started",
        "awaiting_server_token",
        "client_id",
        "mechanism",
        "token_mode",
    )

    def __init__(self) -> None:
        self.mechanism: str | None = None
        self.client_id: str | None = None  # of the SaslHandshake request
        # Token mode: None when off; else round trips still expected (-1: unknown).
        self._rounds: int | None = None
        #: unanswered client tokens' exchanges (stamped, awaiting the server's token)
        self._started: list[Exchange] = []
        #: bare tokens instead of Kafka frames (after a successful SaslHandshake v0)
        self.token_mode = False
        #: token mode with a client token unanswered: the next downstream frame is a token
        self.awaiting_server_token = False

    def _settle(self) -> None:
        self.token_mode = self._rounds is not None
        self.awaiting_server_token = self.token_mode and bool(self._started)

    def handshake(self, mechanism: str, client_id: str | None) -> None:
        self.mechanism = mechanism
        self.client_id = client_id

    def handshake_succeeded(self, version: int) -> None:
        """A SaslHandshake response without error: v0 switches to bare tokens."""
        if version == 0:
            self._rounds = ROUNDS.get(self.mechanism or "", UNKNOWN_ROUNDS)
            self._settle()

    def is_kafka_request(self, raw: bytes) -> bool:
        """In token mode: is this upstream frame a Kafka request after all?

        Only a known (api_key, version) carrying the handshake's exact
        client_id counts; a credential token matching that by chance would
        need those bytes at that offset. Asking changes nothing: the caller
        ends token mode with ``leave_token_mode``.
        """
        if len(raw) < 14:
            return False
        api_key, version, _corr, cid_len = _HEAD.unpack_from(raw, 4)
        if not schema.is_known(api_key, version) or cid_len < -1 or 14 + cid_len > len(raw):
            return False
        cid = None if cid_len < 0 else str(raw[14 : 14 + cid_len], "utf-8", "replace")
        return cid == self.client_id

    def leave_token_mode(self) -> None:
        """Kafka requests are back: unanswered tokens will not be answered as tokens."""
        self._rounds = None
        self._started.clear()
        self._settle()

    def client_token(self, exchange: Exchange) -> int:
        """A client token passed; its exchange waits for the server's. Returns how many wait."""
        self._started.append(exchange)
        self._settle()
        return len(self._started)

    def server_token(self) -> Exchange:
        """A server token arrived: its client token's exchange; may end token mode."""
        started = self._started.pop(0)
        if self._rounds is not None and self._rounds > 0:
            self._rounds -= 1
            if self._rounds == 0:
                self._rounds = None
        self._settle()
        return started
