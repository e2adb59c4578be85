"""One connection's SASL authentication, before any other request is served.

Follows Kafka's SaslServerAuthenticator state by state:

- before the handshake, only ApiVersions and SaslHandshake are served; any
  other request closes the connection without an answer ("Unexpected Kafka
  request of type X during SASL handshake", an InvalidRequestException);
- SaslHandshake names a mechanism: an enabled one is accepted with the enabled
  list; another gets UNSUPPORTED_SASL_MECHANISM with that list, then the
  connection closes;
- after a **v0** handshake the client sends bare size-prefixed tokens and the
  broker answers the same way (an empty answer is a zero-length frame); a
  failure there closes the connection, since no error can be written;
- after a **v1** handshake each token travels in a SaslAuthenticate request;
  any other request is answered with ILLEGAL_SASL_STATE and the connection
  closes; a failed token is answered with SASL_AUTHENTICATION_FAILED (58) and
  Kafka's message, and the connection closes;
- once the mechanism completes, requests go to the normal handlers, where
  SaslHandshake and SaslAuthenticate answer ILLEGAL_SASL_STATE.

``session_lifetime_ms`` is always 0 (no re-authentication, KIP-368). Nothing
here logs a token, a password or a proof.
"""

from __future__ import annotations

import logging
import struct
from typing import TYPE_CHECKING, Any

from protoproxy_codecs.kafka import framing, schema
from protoproxy_codecs.kafka.api_keys import ApiKey
from protoproxy_codecs.kafka.framing import RequestHeaderInfo

from . import errors
from .dispatch import dispatch
from .sasl_mechanisms import Credentials, SaslFailure, SaslServer

if TYPE_CHECKING:
    from .server import BrokerServer

log = logging.getLogger(__name__)

_SIZE = struct.Struct(">i")
_API_VERSIONS = int(ApiKey.API_VERSIONS)
_HANDSHAKE = int(ApiKey.SASL_HANDSHAKE)
_AUTHENTICATE = int(ApiKey.SASL_AUTHENTICATE)

#: what the gate answers: the bytes to write (or None) and whether to close after
Step = tuple[bytes | None, bool]


class SaslGate:
    """The authentication state of one connection; `authenticated` opens the gate."""

    __slots__ = ("_credentials", "_server", "authenticated", "raw_tokens", "user")

    def __init__(self, credentials: Credentials) -> None:
        self._credentials = credentials
        self._server: SaslServer | None = None
        #: the mechanism completed: requests go to the normal handlers
        self.authenticated = False
        #: after a v0 handshake: frames are bare SASL tokens, not requests
        self.raw_tokens = False
        self.user: str | None = None

    async def request(
        self, broker: BrokerServer, header: RequestHeaderInfo, body: Any, client_host: str
    ) -> Step:
        """A Kafka request on a connection not yet authenticated."""
        key = header.api_key
        if self._server is None:
            if key == _API_VERSIONS:
                return await dispatch(broker, header, body, client_host), False
            if key == _HANDSHAKE and body is not None:
                return self._handshake(broker, header, body)
            log.info(
                "broker %d: %s before SASL authentication, closing",
                broker.node_id,
                schema.api_name(key),
            )
            return None, True
        if key != _AUTHENTICATE or body is None:
            log.info(
                "broker %d: %s during SASL authentication, closing",
                broker.node_id,
                schema.api_name(key),
            )
            return error_response(header, errors.ILLEGAL_SASL_STATE), True
        return self._authenticate(broker, header, body)

    def token(self, broker: BrokerServer, frame: bytes) -> Step:
        """A bare token (after a v0 handshake); the answer is a bare token too."""
        server = self._server
        assert server is not None
        try:
            answer = server.step(frame)
        except SaslFailure:
            self._failed(broker, server)
            return None, True
        self._maybe_done(server)
        return _SIZE.pack(len(answer)) + answer, False

    def _handshake(self, broker: BrokerServer, header: RequestHeaderInfo, body: Any) -> Step:
        mechanism = body.mechanism
        enabled = self._credentials.mechanisms
        R = schema.response_class(_HANDSHAKE, header.api_version)
        if mechanism not in enabled:
            log.info(
                "broker %d: SASL mechanism %r is not enabled, closing", broker.node_id, mechanism
            )
            resp = R(error_code=errors.UNSUPPORTED_SASL_MECHANISM, mechanisms=list(enabled))
            return _encode(header, resp), True
        self._server = self._credentials.server(mechanism)
        self.raw_tokens = header.api_version == 0
        resp = R(error_code=errors.NONE, mechanisms=list(enabled))
        return _encode(header, resp), False

    def _authenticate(self, broker: BrokerServer, header: RequestHeaderInfo, body: Any) -> Step:
        server = self._server
        assert server is not None
        R = schema.response_class(_AUTHENTICATE, header.api_version)
        try:
            answer = server.step(bytes(body.auth_bytes or b""))
        except SaslFailure as exc:
            self._failed(broker, server)
            resp = R(
                error_code=errors.SASL_AUTHENTICATION_FAILED,
                error_message=str(exc),
                auth_bytes=b"",
                session_lifetime_ms=0,
            )
            return _encode(header, resp), True
        self._maybe_done(server)
        resp = R(
            error_code=errors.NONE, error_message=None, auth_bytes=answer, session_lifetime_ms=0
        )
        return _encode(header, resp), False

    def _maybe_done(self, server: SaslServer) -> None:
        if server.complete:
            self.authenticated = True
            self.raw_tokens = False
            self.user = server.user

    def _failed(self, broker: BrokerServer, server: SaslServer) -> None:
        broker.cluster.sasl_failures += 1
        log.info(
            "broker %d: SASL/%s authentication failed, closing", broker.node_id, server.mechanism
        )


def _encode(header: RequestHeaderInfo, resp: Any) -> bytes:
    return framing.encode_response(header.api_key, header.api_version, header.correlation_id, resp)


def error_response(header: RequestHeaderInfo, code: int) -> bytes:
    """The request's response schema with its defaults and a top-level error code."""
    cls = schema.response_class(header.api_key, header.api_version)
    if cls is None:
        head = _SIZE.pack(header.correlation_id)
        body = code.to_bytes(2, "big", signed=True)
        return _SIZE.pack(len(head) + len(body)) + head + body
    resp = cls()
    for field in cls[None]._struct._fields:
        if field.for_version_q(header.api_version) and field.name == "error_code":
            resp.error_code = code
    return _encode(header, resp)
