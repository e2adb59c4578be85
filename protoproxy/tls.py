"""TLS for both sides of the proxy, on memory BIOs.

Why not asyncio's own TLS transport: the proxy must read the ClientHello
before it decides anything (SNI routing, passthrough vs terminate), and it
must propagate half-closes through TLS (close_notify), which asyncio's SSL
transport cannot do. An `ssl.SSLObject` on memory BIOs gives both, at the
same cost as asyncio's pure-Python SSL protocol.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .config import ListenerTls, UpstreamTls

READ_SIZE = 256 * 1024
_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


class TlsError(Exception):
    """A handshake or record failure, with a short `reason` for metrics."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def _reason(exc: ssl.SSLError) -> str:
    text = (exc.reason or exc.__class__.__name__).lower()
    return text.replace(" ", "_")


def cert_names(cert_path: Path) -> list[str]:
    """DNS names of a PEM certificate, for SNI selection."""
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
    names: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names.extend(n.lower() for n in san.value.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        pass
    if not names:
        for attr in cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME):
            names.append(str(attr.value).lower())
    return names


def name_matches(pattern: str, host: str) -> bool:
    if pattern == host:
        return True
    if pattern.startswith("*."):
        head, _, rest = host.partition(".")
        return bool(head) and rest == pattern[2:]
    return False


@dataclass
class ServerTls:
    """Terminating TLS for one listener: certificates chosen by SNI."""

    config: ListenerTls
    default: ssl.SSLContext = field(init=False)
    by_name: list[tuple[str, ssl.SSLContext]] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        contexts: list[ssl.SSLContext] = []
        for ck in self.config.all_certs():
            ctx = self._context()
            ctx.load_cert_chain(str(ck.cert), str(ck.key))
            contexts.append(ctx)
            for name in ck.names or cert_names(ck.cert):
                self.by_name.append((name.lower().rstrip("."), ctx))
        self.default = contexts[0]
        # The context we wrap with carries the SNI callback; it swaps in the
        # context holding the right certificate.
        self.default.sni_callback = self._on_sni

    def _context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = _VERSIONS[self.config.min_version]
        if self.config.alpn:
            ctx.set_alpn_protocols(self.config.alpn)
        if self.config.client_ca is not None:
            ctx.load_verify_locations(str(self.config.client_ca))
            ctx.verify_mode = (
                ssl.CERT_REQUIRED if self.config.require_client_cert else ssl.CERT_OPTIONAL
            )
        ctx.options |= ssl.OP_NO_COMPRESSION
        return ctx

    def context_for(self, server_name: str | None) -> ssl.SSLContext | None:
        if server_name is None:
            return None
        for pattern, ctx in self.by_name:
            if name_matches(pattern, server_name):
                return ctx
        return None

    def _on_sni(self, sslobj: ssl.SSLObject, server_name: str | None, _ctx: ssl.SSLContext) -> None:
        ctx = self.context_for(server_name.lower() if server_name else None)
        if ctx is not None and ctx is not self.default:
            sslobj.context = ctx

    def engine(self) -> TlsEngine:
        return TlsEngine(self.default, server_side=True)


class ClientTls:
    """Originating TLS toward one upstream; contexts cached per offered ALPN list."""

    def __init__(self, config: UpstreamTls) -> None:
        self.config = config
        self._by_alpn: dict[tuple[str, ...], ssl.SSLContext] = {}
        #: SSLKEYLOGFILE path for these handshakes (a tap's `keylog`), or None
        self.keylog: str | None = None

    def set_keylog(self, path: str) -> None:
        """Log the keys of this upstream's handshakes from now on (protoproxy.capture)."""
        self.keylog = path
        for ctx in self._by_alpn.values():
            ctx.keylog_filename = path

    def context(self, alpn: tuple[str, ...]) -> ssl.SSLContext:
        ctx = self._by_alpn.get(alpn)
        if ctx is None:
            ctx = self._build(alpn)
            self._by_alpn[alpn] = ctx
        return ctx

    def _build(self, alpn: tuple[str, ...]) -> ssl.SSLContext:
        cfg = self.config
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = _VERSIONS[cfg.min_version]
        if cfg.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        elif cfg.ca is not None:
            ctx.load_verify_locations(str(cfg.ca))
        else:
            ctx.load_default_certs()
        if cfg.cert is not None and cfg.key is not None:
            ctx.load_cert_chain(str(cfg.cert), str(cfg.key))
        offered = list(cfg.alpn) if cfg.alpn is not None else list(alpn)
        if offered:
            ctx.set_alpn_protocols(offered)
        if self.keylog is not None:
            ctx.keylog_filename = self.keylog
        return ctx

    def engine(self, host: str, alpn: tuple[str, ...]) -> TlsEngine:
        name = self.config.server_name or host
        return TlsEngine(self.context(alpn), server_side=False, server_hostname=name)


class TlsEngine:
    """One TLS session on memory BIOs: ciphertext in/out, plaintext in/out."""

    __slots__ = ("eof", "handshaked", "incoming", "obj", "outgoing", "shut")

    def __init__(
        self, ctx: ssl.SSLContext, server_side: bool, server_hostname: str | None = None
    ) -> None:
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(
            self.incoming, self.outgoing, server_side=server_side, server_hostname=server_hostname
        )
        self.handshaked = False
        self.eof = False  # peer sent close_notify
        self.shut = False  # we sent close_notify

    def start(self) -> bytes:
        """Client side: produce the ClientHello."""
        self._handshake()
        return self.outgoing.read()

    def _handshake(self) -> None:
        try:
            self.obj.do_handshake()
        except ssl.SSLWantReadError:
            return
        except ssl.SSLCertVerificationError as exc:
            raise TlsError(
                f"certificate verify failed: {exc.verify_message}", "certificate_verify_failed"
            ) from None
        except ssl.SSLError as exc:
            raise TlsError(f"TLS handshake failed: {exc.reason or exc}", _reason(exc)) from None
        self.handshaked = True

    def receive(self, data: bytes, sink: Callable[[bytes], None]) -> bytes:
        """Feed ciphertext; plaintext goes to `sink`; returns ciphertext to send back."""
        self.incoming.write(data)
        if not self.handshaked:
            self._handshake()
            if not self.handshaked:
                return self.outgoing.read()
        read = self.obj.read
        while True:
            try:
                chunk = read(READ_SIZE)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                self.eof = True
                break
            except ssl.SSLError as exc:
                raise TlsError(f"TLS record error: {exc.reason or exc}", _reason(exc)) from None
            if not chunk:
                self.eof = True
                break
            sink(chunk)
        return self.outgoing.read() if self.outgoing.pending else b""

    def send(self, data: bytes) -> bytes:
        """Encrypt plaintext; returns the ciphertext to write."""
        self.obj.write(data)
        return self.outgoing.read()

    def close_notify(self) -> bytes:
        """Half-close our sending side; we can still read until the peer's close_notify."""
        if self.shut:
            return b""
        self.shut = True
        try:
            self.obj.unwrap()
        except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
            pass
        except ssl.SSLError:
            pass  # the session is broken; the caller closes the transport
        return self.outgoing.read()

    @property
    def alpn(self) -> str | None:
        return self.obj.selected_alpn_protocol()

    @property
    def server_name(self) -> str | None:
        return self.obj.server_hostname
