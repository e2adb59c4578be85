"""The brokers' SASL mechanisms: PLAIN (RFC 4616) and SCRAM-SHA-256/512 (RFC 5802/7677).

Pure functions of bytes, no sockets: `sasl_gate` feeds them the client's tokens.
Credentials are derived once, when the cluster is made, as a broker stores
them (``kafka-configs --alter --add-config SCRAM-SHA-256=[...]``): a salt, the
iteration count, StoredKey and ServerKey; the password itself is not kept, and
PLAIN checks against a salted hash. Comparisons use `hmac.compare_digest`.

Failures raise `SaslFailure` carrying the message a real broker sends. Kafka
words them in two ways (SaslServerAuthenticator.handleSaslToken): a mechanism's
`SaslAuthenticationException` passes its own text ("Authentication failed:
Invalid username or password" from PLAIN), and any other `SaslException`
(every SCRAM failure: unknown user, bad proof, malformed message) becomes the
generic "Authentication failed during authentication due to invalid
credentials with SASL mechanism SCRAM-SHA-256", so that nothing about the
user's existence leaks. We keep both wordings.

Every message is parsed strictly (UTF-8, the RFC's attribute order, canonical
base64), so that any change to a client message is noticed: the property the
hypothesis tests check.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

ITERATIONS = 4096
#: the longest client token read; real ones are under 1 KiB
MAX_TOKEN = 64 * 1024
#: SaslHandshake's mechanism names -> hashlib algorithm
SCRAM_HASHES = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}
MECHANISMS = ("PLAIN", *SCRAM_HASHES)


class SaslFailure(Exception):
    """Authentication failed; the exception text is what the client is told."""


def generic_failure(mechanism: str) -> SaslFailure:
    """Kafka's answer to any SaslException: it says nothing about the cause."""
    return SaslFailure(
        "Authentication failed during authentication due to invalid credentials "
        f"with SASL mechanism {mechanism}"
    )


@dataclass(frozen=True, slots=True)
class ScramCredential:
    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes


def scram_credential(
    algorithm: str, password: str, salt: bytes, iterations: int = ITERATIONS
) -> ScramCredential:
    """RFC 5802 section 3: SaltedPassword = Hi(password, salt, i), then the two keys."""
    salted = hashlib.pbkdf2_hmac(algorithm, password.encode(), salt, iterations)
    client_key = hmac.digest(salted, b"Client Key", algorithm)
    return ScramCredential(
        salt,
        iterations,
        hashlib.new(algorithm, client_key).digest(),
        hmac.digest(salted, b"Server Key", algorithm),
    )


class Credentials:
    """What the brokers know of each user, derived once from the scenario's passwords.

    Salts come from `seed` and the user name, so a run repeats byte for byte
    (the nonces, not the salts, make each exchange unique).
    """

    def __init__(
        self,
        users: Mapping[str, str],
        mechanisms: list[str] | tuple[str, ...] = MECHANISMS,
        seed: int = 0,
    ) -> None:
        unknown = [m for m in mechanisms if m not in MECHANISMS]
        if unknown or not mechanisms:
            raise ValueError(f"SASL mechanisms must be among {', '.join(MECHANISMS)}")
        if not users:
            raise ValueError("SASL needs at least one user")
        #: in SaslHandshake's order
        self.mechanisms = list(mechanisms)
        self._plain: dict[str, tuple[bytes, bytes]] = {}
        self._scram: dict[tuple[str, str], ScramCredential] = {}
        for name, password in users.items():
            salt = hashlib.sha256(f"protoproxy-testbed:{seed}:{name}".encode()).digest()[:16]
            if "PLAIN" in self.mechanisms:
                self._plain[name] = (salt, _plain_hash(salt, password))
            for mech, algorithm in SCRAM_HASHES.items():
                if mech in self.mechanisms:
                    self._scram[(mech, name)] = scram_credential(algorithm, password, salt)

    def check_plain(self, user: str, password: str) -> bool:
        entry = self._plain.get(user)
        if entry is None:
            # Same work either way: a timing difference would tell who exists.
            _plain_hash(b"\0" * 16, password)
            return False
        salt, want = entry
        return hmac.compare_digest(_plain_hash(salt, password), want)

    def scram(self, mechanism: str, user: str) -> ScramCredential | None:
        return self._scram.get((mechanism, user))

    def server(self, mechanism: str, nonce: Callable[[], str] | None = None) -> SaslServer:
        """A fresh server side of one authentication exchange."""
        if mechanism == "PLAIN":
            return PlainServer(self)
        return ScramServer(self, mechanism, nonce)


def _plain_hash(salt: bytes, password: str) -> bytes:
    return hashlib.sha256(salt + password.encode("utf-8", "surrogatepass")).digest()


class SaslServer(Protocol):
    mechanism: str
    #: the exchange succeeded; `user` is who authenticated
    complete: bool
    user: str | None

    def step(self, token: bytes) -> bytes:
        """The server's answer to one client token; raises SaslFailure."""
        ...


class PlainServer:
    """RFC 4616: one token, ``[authzid] NUL authcid NUL passwd``."""

    mechanism = "PLAIN"

    def __init__(self, credentials: Credentials) -> None:
        self._credentials = credentials
        self.complete = False
        self.user: str | None = None

    def step(self, token: bytes) -> bytes:
        if self.complete or len(token) > MAX_TOKEN:
            raise generic_failure(self.mechanism)
        try:
            text = token.decode()
        except UnicodeDecodeError:
            raise generic_failure(self.mechanism) from None
        parts = text.split("\0")
        if len(parts) != 3 or not parts[1] or not parts[2]:
            raise generic_failure(self.mechanism)
        authzid, user, password = parts
        if not self._credentials.check_plain(user, password):
            raise SaslFailure("Authentication failed: Invalid username or password")
        if authzid and authzid != user:
            raise SaslFailure(
                "Authentication failed: Client requested an authorization id that is "
                "different from username"
            )
        self.complete = True
        self.user = user
        return b""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _strict_b64(text: str) -> bytes:
    """Base64 that decodes only in its canonical spelling (no ignored padding bits)."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not base64") from None
    if _b64(raw) != text:
        raise ValueError("not canonical base64")
    return raw


def _saslname(value: str) -> str:
    """RFC 5802's saslname: ``=2C`` is a comma, ``=3D`` an equals sign, no other ``=``."""
    if "," in value:
        raise ValueError("comma in a name")
    out = value.replace("=2C", ",").replace("=3D", "=")
    if "=" in value.replace("=2C", "").replace("=3D", ""):
        raise ValueError("bad escape in a name")
    return out


def _printable_nonce(value: str) -> bool:
    return bool(value) and all(0x21 <= ord(c) <= 0x7E and c != "," for c in value)


def _random_nonce() -> str:
    return secrets.token_urlsafe(24)


class ScramServer:
    """RFC 5802 / 7677 server: client-first -> server-first, client-final -> server-final."""

    def __init__(
        self, credentials: Credentials, mechanism: str, nonce: Callable[[], str] | None = None
    ) -> None:
        self.mechanism = mechanism
        self._algorithm = SCRAM_HASHES[mechanism]
        self._credentials = credentials
        self._nonce = nonce or _random_nonce
        self.complete = False
        self.user: str | None = None
        self._state = 0
        self._gs2_header = ""
        self._client_first_bare = ""
        self._server_first = ""
        self._full_nonce = ""
        self._credential: ScramCredential | None = None

    def step(self, token: bytes) -> bytes:
        state, self._state = self._state, -1  # any failure leaves the exchange dead
        if len(token) > MAX_TOKEN:
            raise generic_failure(self.mechanism)
        try:
            text = token.decode()
            if state == 0:
                answer = self._client_first(text)
            elif state == 1:
                answer = self._client_final(text)
            else:
                raise ValueError("no more tokens expected")
        except (ValueError, UnicodeDecodeError):
            # A bad proof, an unknown user and a garbled message get one answer.
            raise generic_failure(self.mechanism) from None
        self._state = state + 1
        return answer.encode()

    def _client_first(self, text: str) -> str:
        # gs2-header: "n,," or "n,a=authzid,"; "y" (client could bind, thinks we
        # cannot) is fine; "p=" asks for channel binding, which SASL_PLAINTEXT lacks.
        flag, sep1, rest = text.partition(",")
        authz, sep2, bare = rest.partition(",")
        if not sep1 or not sep2 or flag not in ("n", "y"):
            raise ValueError("bad gs2 header")
        authzid = ""
        if authz:
            if not authz.startswith("a="):
                raise ValueError("bad authzid")
            authzid = _saslname(authz[2:])
        attrs = bare.split(",")
        if len(attrs) < 2 or not attrs[0].startswith("n=") or not attrs[1].startswith("r="):
            raise ValueError("bad client-first-message")
        user = _saslname(attrs[0][2:])
        client_nonce = attrs[1][2:]
        if not user or not _printable_nonce(client_nonce):
            raise ValueError("bad user or nonce")
        for ext in attrs[2:]:  # extensions (Kafka's tokenauth) are ignored, as Kafka does
            key, eq, _ = ext.partition("=")
            if not eq or not key.isalpha():
                raise ValueError("bad extension")
        credential = self._credentials.scram(self.mechanism, user)
        if credential is None:
            raise ValueError("unknown user")
        if authzid and authzid != user:
            raise ValueError("authzid is not the user")
        server_nonce = self._nonce()
        if not _printable_nonce(server_nonce):
            raise AssertionError("server nonce must be printable without commas")
        self._gs2_header = f"{flag},{authz},"
        self._client_first_bare = bare
        self._full_nonce = client_nonce + server_nonce
        self._credential = credential
        self.user = user
        self._server_first = (
            f"r={self._full_nonce},s={_b64(credential.salt)},i={credential.iterations}"
        )
        return self._server_first

    def _client_final(self, text: str) -> str:
        without_proof, sep, proof_b64 = text.rpartition(",p=")
        if not sep:
            raise ValueError("no proof")
        attrs = without_proof.split(",")
        if len(attrs) < 2 or attrs[0] != "c=" + _b64(self._gs2_header.encode()):
            raise ValueError("channel binding does not match the gs2 header")
        # RFC 5802 wants the nonce repeated exactly. librdkafka before 2.6.1 sends
        # its own nonce once more in front (librdkafka#4895; kcat 1.7 ships 2.0.2),
        # and Kafka 3.8.1-3.9 accept that (the CVE-2024-56128 fix checks endsWith);
        # the fake plays a 3.x broker, so it does too. The extra bytes are still
        # covered by the proof: the AuthMessage is built from the message as sent.
        nonce = attrs[1].removeprefix("r=")
        if not attrs[1].startswith("r=") or not nonce.endswith(self._full_nonce):
            raise ValueError("nonce mismatch")
        for ext in attrs[2:]:
            key, eq, _ = ext.partition("=")
            if not eq or not key.isalpha():
                raise ValueError("bad extension")
        proof = _strict_b64(proof_b64)
        credential = self._credential
        assert credential is not None
        if len(proof) != len(credential.stored_key):
            raise ValueError("proof of the wrong length")
        auth_message = f"{self._client_first_bare},{self._server_first},{without_proof}".encode()
        client_signature = hmac.digest(credential.stored_key, auth_message, self._algorithm)
        client_key = bytes(a ^ b for a, b in zip(proof, client_signature, strict=True))
        computed = hashlib.new(self._algorithm, client_key).digest()
        if not hmac.compare_digest(computed, credential.stored_key):
            raise ValueError("invalid client credentials")
        self.complete = True
        signature = hmac.digest(credential.server_key, auth_message, self._algorithm)
        return "v=" + _b64(signature)
