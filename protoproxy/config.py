"""The config file: YAML validated by pydantic into typed models.

Every mistake is reported as ``path.into[2].config: the problem``, because a
user with a 200-line config needs to know *where*, not just *what*. Unknown
keys are errors: a typo must never be silently ignored.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import core_schema

from .addresses import is_loopback
from .config_errors import ConfigError, problems_of
from .faults.actions import listener_problem
from .faults.model import FaultSpec
from .units import Duration, Size

Protocol = Literal["auto", "tcp", "http", "http2", "grpc", "kafka"]


def parse_hostport(value: str, *, allow_port_zero: bool = True) -> tuple[str, int]:
    """``"127.0.0.1:9092"`` / ``"[::1]:80"`` / ``"host:80"`` -> (host, port)."""
    if isinstance(value, int) and not isinstance(value, bool):
        raise ValueError(f"{value} is not host:port (did you mean 127.0.0.1:{value}?)")
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not host:port")
    text = value.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ValueError(f"{value!r} is not [ipv6]:port")
        port_text = rest[1:]
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            raise ValueError(f"{value!r} has no port (use host:port)")
    if not host:
        raise ValueError(f"{value!r} has no host")
    if not port_text.isdigit():
        raise ValueError(f"port {port_text!r} is not a number")
    port = int(port_text)
    if port > 65535 or (port == 0 and not allow_port_zero):
        raise ValueError(f"port {port} is out of range")
    return host, port


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False, populate_by_name=True)


class Address(str):
    """A validated ``host:port`` string that also knows its parts."""

    host: str
    port: int

    def __new__(cls, value: str) -> Address:
        host, port = parse_hostport(value)
        obj = super().__new__(cls, value)
        obj.host, obj.port = host, port
        return obj

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> Any:
        return core_schema.no_info_plain_validator_function(
            lambda v: v if isinstance(v, Address) else Address(v),
            serialization=core_schema.plain_serializer_function_ser_schema(str),
        )


HostPort = Address


class CertKey(Model):
    cert: Path
    key: Path
    #: Hostnames this certificate serves (SNI); empty means "from the certificate".
    names: list[str] = Field(default_factory=list)


class ListenerTls(Model):
    """Terminate TLS (certificates given) or pass it through (route by SNI only)."""

    mode: Literal["terminate", "passthrough"] = "terminate"
    cert: Path | None = None
    key: Path | None = None
    certs: list[CertKey] = Field(default_factory=list)
    alpn: list[str] = Field(default_factory=list)
    client_ca: Path | None = None
    require_client_cert: bool = False
    min_version: Literal["1.2", "1.3"] = "1.2"
    handshake_timeout: Duration = 10.0

    @model_validator(mode="after")
    def _check(self) -> ListenerTls:
        if self.mode == "terminate":
            if (self.cert is None) != (self.key is None):
                raise ValueError("cert and key must be given together")
            if self.cert is None and not self.certs:
                raise ValueError("terminate mode needs cert and key (or certs)")
        elif self.cert or self.certs or self.client_ca:
            raise ValueError("passthrough mode takes no certificates (TLS is not terminated)")
        if self.require_client_cert and self.client_ca is None:
            raise ValueError("require_client_cert needs client_ca")
        return self

    def all_certs(self) -> list[CertKey]:
        out = list(self.certs)
        if self.cert is not None and self.key is not None:
            out.insert(0, CertKey(cert=self.cert, key=self.key))
        return out


class Route(Model):
    """Pick an upstream by the TLS server name the client asked for."""

    sni: str
    upstream: str

    @field_validator("sni")
    @classmethod
    def _lower(cls, v: str) -> str:
        if not v:
            raise ValueError("sni must not be empty")
        return v.lower().rstrip(".")


class KafkaListener(Model):
    """Per-broker proxy listeners for Kafka address rewriting."""

    #: Port range for automatically opened broker listeners, e.g. "19093-19199".
    broker_ports: str | None = None
    #: Pinned broker listeners: node id -> listen address.
    brokers: dict[int, HostPort] = Field(default_factory=dict)
    #: Host advertised to clients for broker listeners (defaults to the listen host).
    advertised_host: str | None = None
    #: Broker listeners one bootstrap listener may open (node ids come from the wire).
    max_brokers: int = Field(default=64, ge=1, le=4096)

    @field_validator("broker_ports")
    @classmethod
    def _range(cls, v: str | None) -> str | None:
        if v is None:
            return v
        lo, sep, hi = v.partition("-")
        if not sep or not lo.strip().isdigit() or not hi.strip().isdigit():
            raise ValueError(f"{v!r} is not a port range like 19093-19199")
        a, b = int(lo), int(hi)
        if not 0 < a <= b <= 65535:
            raise ValueError(f"port range {v!r} is out of range")
        return v

    def port_range(self) -> range | None:
        if self.broker_ports is None:
            return None
        lo, _, hi = self.broker_ports.partition("-")
        return range(int(lo), int(hi) + 1)


class RecordSchema(Model):
    """Where the recorder finds the gRPC schema that turns messages into JSON.

    Exactly one of `protos`, `descriptor_set` or `reflect`; without a schema
    messages are recorded as base64 (docs/config.md#record).
    """

    #: .proto files, compiled at start by grpcio-tools' protoc (no grpc C-core loaded)
    protos: list[Path] = Field(default_factory=list)
    #: where imports in `protos` are found (the files' own folders are added)
    import_paths: list[Path] = Field(default_factory=list)
    #: a FileDescriptorSet (``protoc --descriptor_set_out --include_imports``)
    descriptor_set: Path | None = None
    #: ask the upstream's server reflection service, once, on the first gRPC call
    reflect: bool = False

    @model_validator(mode="after")
    def _one(self) -> RecordSchema:
        given = [bool(self.protos), self.descriptor_set is not None, self.reflect]
        if sum(given) != 1:
            raise ValueError("give exactly one of protos, descriptor_set or reflect: true")
        if self.import_paths and not self.protos:
            raise ValueError("import_paths go with protos")
        return self


class Record(Model):
    """Write what passes through in the formats the testbed's fakes read (docs/testbed.md)."""

    #: the recording's folder: grpc/, http/, kafka/ and scenario.yaml go here
    dir: Path
    #: header and metadata names written as they are; other secret-like ones become "[redacted]"
    keep_headers: list[str] = Field(default_factory=list)
    schema_: RecordSchema | None = Field(default=None, alias="schema")
    #: files this listener may write (stubs, mappings, bodies; a topic file counts once)
    max_files: int = Field(default=1000, ge=1, le=1_000_000)
    #: bytes this listener may write in all
    max_bytes: Size = 64 * 1024 * 1024
    #: message or body bytes one call or request may carry and still be recorded
    max_exchange_bytes: Size = 4 * 1024 * 1024
    #: recordings waiting for the writer; past it they are dropped and counted
    queue: int = Field(default=1000, ge=1, le=100_000)
    #: HTTP bodies larger than this go to http/__files/ instead of inline
    inline_body_bytes: Size = 4096


class CaptureTap(Model):
    """A tap: both legs of matching connections as pcapng (docs/captures.md#taps).

    The same model reads `captures.taps` entries, a listener's `capture:` and
    the body of ``POST /captures``.
    """

    #: the tap's id in the admin API and its file names (default: tap-N)
    name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    #: only this listener's connections (a listener's own `capture:` implies it)
    listener: str | None = None
    #: only connections speaking this protocol (grpc: HTTP/2)
    protocol: Literal["tcp", "http", "http2", "grpc", "kafka"] | None = None
    #: only clients from this address or network (``10.0.0.0/8``, ``::1``)
    peer: str | None = None
    #: overwrite credentials with same-length filler; false is logged as a warning
    redact: bool = True
    #: a file is rotated once it holds this much
    max_file_bytes: Size = 64 * 1024 * 1024
    #: rotated files kept (the oldest are deleted)
    max_files: int = Field(default=8, ge=1, le=10_000)
    #: bytes the tap writes in all; then it stops and counts what it drops
    max_bytes: Size = 1024 * 1024 * 1024
    #: events (reads, writes, closes) waiting for the writer thread; past it, dropped
    queue: int = Field(default=100_000, ge=1, le=10_000_000)
    #: bytes those events may hold
    queue_bytes: Size = 64 * 1024 * 1024
    #: SSLKEYLOGFILE-format key log of the TLS the tapped listener terminates or originates
    keylog: Path | None = None

    @field_validator("peer")
    @classmethod
    def _peer(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            ipaddress.ip_network(value.strip().strip("[]"), strict=False)
        except ValueError:
            raise ValueError(f"{value!r} is not an address or network (10.0.0.0/8, ::1)") from None
        return value.strip().strip("[]")


class Captures(Model):
    """Taps started with the proxy, and where every tap writes."""

    #: the folder tap files go into (default: a temporary folder made at start)
    dir: Path | None = None
    taps: list[CaptureTap] = Field(default_factory=list)


class Listener(Model):
    name: str
    listen: HostPort
    protocol: Protocol = "auto"
    tls: ListenerTls | None = None
    upstream: str | None = None
    routes: list[Route] = Field(default_factory=list)
    kafka: KafkaListener | None = None
    enabled: bool = True
    #: this listener's own connection cap; unset: only limits.max_connections applies
    max_connections: int | None = Field(default=None, ge=1)
    #: record what passes through as testbed fakes (docs/config.md#record)
    record: Record | None = None
    #: tap this listener's connections into pcapng files (docs/captures.md#taps)
    capture: CaptureTap | None = None

    @model_validator(mode="after")
    def _check(self) -> Listener:
        if self.upstream is None and not self.routes:
            raise ValueError("needs an upstream (or routes)")
        if self.routes and self.tls is None:
            raise ValueError("routes select by SNI, so they need tls (terminate or passthrough)")
        if (
            self.tls is not None
            and self.tls.mode == "passthrough"
            and self.protocol
            not in (
                "auto",
                "tcp",
            )
        ):
            raise ValueError(f"protocol {self.protocol} cannot be decoded in TLS passthrough mode")
        if self.kafka is not None and self.protocol != "kafka":
            raise ValueError("kafka settings need protocol: kafka")
        if self.record is not None and self.protocol == "tcp":
            raise ValueError("record needs a decoded protocol (http, http2, grpc, kafka or auto)")
        if self.capture is not None and self.capture.listener not in (None, self.name):
            raise ValueError("capture.listener: a listener's capture taps that listener only")
        return self


class UpstreamTls(Model):
    """Originate TLS to the upstream. Verification is on unless `insecure: true`."""

    ca: Path | None = None
    server_name: str | None = None
    insecure: bool = False
    cert: Path | None = None
    key: Path | None = None
    alpn: list[str] | None = None
    min_version: Literal["1.2", "1.3"] = "1.2"

    @model_validator(mode="after")
    def _check(self) -> UpstreamTls:
        if (self.cert is None) != (self.key is None):
            raise ValueError("client cert and key must be given together")
        return self


class Upstream(Model):
    name: str
    endpoints: list[HostPort] = Field(min_length=1)
    tls: UpstreamTls | None = None
    connect_timeout: Duration | None = None
    #: Connect attempts across endpoints before giving up (default: one per endpoint).
    connect_attempts: int | None = Field(default=None, ge=1, le=100)


class Timeouts(Model):
    connect: Duration = 5.0
    idle: Duration = 300.0
    drain: Duration = 10.0
    #: A client's request head / HTTP/2 preface / header block, from its first byte.
    header: Duration = Field(default=10.0, gt=0)
    #: A client's Kafka request frame, from its first byte to its last.
    frame: Duration = Field(default=30.0, gt=0)


class Http2Limits(Model):
    """HTTP/2 flood rules (docs/security.md#http2-floods-what-the-proxy-refuses); 0 turns a rule off.

    Breaking one closes the connection with GOAWAY ENHANCE_YOUR_CALM, before
    the frames of the offending read reach the upstream.
    """

    #: Premature resets (before any response byte) allowed per client stream...
    max_reset_ratio: float = Field(default=0.5, ge=0, le=1)
    #: ...once the client opened this many streams.
    reset_check_after: int = Field(default=100, ge=0)
    #: PING/SETTINGS/WINDOW_UPDATE/PRIORITY/empty DATA or CONTINUATION per second, per sender.
    control_frames_per_s: int = Field(default=20000, ge=0)
    #: CONTINUATION frames in one header block.
    max_continuations: int = Field(default=64, ge=0)
    #: Decoded header bytes (RFC 7541 sizes) per second, per sender.
    header_bytes_per_s: Size = 64 * 1024 * 1024
    #: New streams one read may open.
    max_requests_per_read: int = Field(default=1000, ge=0)


class Limits(Model):
    http2: Http2Limits = Field(default_factory=Http2Limits)
    max_message_size: Size = 16 * 1024 * 1024
    write_buffer_high: Size = 1024 * 1024
    write_buffer_low: Size = 256 * 1024
    max_connections: int = Field(default=10000, ge=1)
    #: fds the data plane may not use: the admin API's own, and sockets accepted
    #: only to be refused (protoproxy.fdlimits)
    admin_reserve: int = Field(default=64, ge=0)
    max_pending: int = Field(default=4096, ge=1)
    #: Bytes all connections together may buffer (codec units, pending, write buffers).
    memory: Size = Field(default=1024 * 1024 * 1024, ge=1024 * 1024)

    @model_validator(mode="after")
    def _check(self) -> Limits:
        if self.write_buffer_low > self.write_buffer_high:
            raise ValueError("write_buffer_low must not exceed write_buffer_high")
        return self


class Admin(Model):
    """The admin API and who may drive it (docs/security.md#admin-api-threat-model).

    The browser-rule keys are parsed by `protoproxy.admin.guard`'s own parsers,
    imported inside the validators (guard imports this module), so an entry
    the guard would read otherwise than meant is refused at load.
    """

    listen: HostPort = Address("127.0.0.1:9901")
    token: str | None = Field(default=None, json_schema_extra={"secret": True})
    enabled: bool = True
    #: Listeners made at run time (POST /listeners, POST /proxies) may bind off loopback.
    allow_public_listeners: bool = False
    #: Host header names answered besides localhost, loopback addresses and the listen
    #: address (``*``: any); every other name is refused, against DNS rebinding.
    allowed_hosts: list[str] = Field(default_factory=list)
    #: Browser origins (``http://host:port``) whose pages may call the API; they get
    #: CORS answers. No other origin does, and no CORS header is sent otherwise.
    cors_origins: list[str] = Field(default_factory=list)
    #: Where listeners made at run time with an upstream address of their own
    #: (Toxiproxy's POST /proxies) may forward: ``host:port``, ``host:*``, CIDR, ``*``.
    upstream_allow: list[str] = Field(default_factory=lambda: ["*"])

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        out = [name.strip().strip("[]") for name in value]
        for name in out:
            try:
                ipaddress.ip_address(name)
            except ValueError:
                if not name or any(c in name for c in "/:@ "):
                    raise ValueError(
                        f"{name!r} is not a host name or address (no port, no scheme)"
                    ) from None
        return out

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        from .admin.guard import origin_key

        for origin in value:
            if origin_key(origin) is None:
                raise ValueError(
                    f"{origin!r} is not an origin: scheme://host[:port], no path, no wildcard"
                )
        return value

    @field_validator("upstream_allow")
    @classmethod
    def _upstreams(cls, value: list[str]) -> list[str]:
        from .admin.guard import UpstreamPattern

        for entry in value:
            UpstreamPattern.parse(entry)
        return value

    @model_validator(mode="after")
    def _check(self) -> Admin:
        if self.enabled and not is_loopback(self.listen.host) and not self.token:
            raise ValueError(
                f"admin listens on non-loopback {self.listen.host}; set admin.token "
                "(a bearer token is required off loopback)"
            )
        return self


class AccessLog(Model):
    path: str | None = None  # "-" or None for stdout
    enabled: bool = False
    sample: float = Field(default=1.0, ge=0.0, le=1.0)


class Metrics(Model):
    """Series caps: every label set beyond a cap is counted under `other`."""

    #: Distinct label sets per family unless `families` says otherwise.
    max_series: int = Field(default=10000, ge=1)
    #: Per-family caps by full metric name, e.g. {protoproxy_client_requests_total: 1000}.
    families: dict[str, Annotated[int, Field(ge=1)]] = Field(default_factory=dict)
    #: Label sets of all families together (each family's `other` aside).
    max_total_series: int = Field(default=100_000, ge=1)
    #: Bytes a label value may take once escaped; longer ones are cut (docs/metrics.md).
    max_label_bytes: int = Field(default=128, ge=16, le=65536)
    #: Bytes one family's series may take in /metrics; past it, new label sets go to `other`.
    max_family_bytes: Size = 1024 * 1024
    #: Per-family byte budgets by full metric name, overriding `max_family_bytes`.
    family_bytes: dict[str, Size] = Field(default_factory=dict)
    #: Bytes the series of all families may take in /metrics together (each `other`
    #: aside); past it, every family folds new label sets into its `other`.
    max_total_bytes: Size = 4 * 1024 * 1024
    #: The generic per-exchange families (protoproxy_exchange*); off only to measure their cost.
    exchanges: bool = True


class Tail(Model):
    """The /messages ring buffer of recent decoded messages (off unless enabled)."""

    enabled: bool = False
    max_messages: int = Field(default=1000, ge=1, le=1_000_000)
    max_bytes: Size = 8 * 1024 * 1024
    #: Listeners to capture from; empty means all.
    listeners: list[str] = Field(default_factory=list)
    #: FileDescriptorSet files (``protoc --descriptor_set_out``): gRPC payloads of
    #: the methods they describe are shown by type; others as decode_raw.
    descriptors: list[Path] = Field(default_factory=list)


class Config(Model):
    admin: Admin = Field(default_factory=Admin)
    listeners: list[Listener] = Field(min_length=1)
    upstreams: list[Upstream] = Field(default_factory=list)
    faults: list[FaultSpec] = Field(default_factory=list)
    timeouts: Timeouts = Field(default_factory=Timeouts)
    limits: Limits = Field(default_factory=Limits)
    access_log: AccessLog = Field(default_factory=AccessLog)
    metrics: Metrics = Field(default_factory=Metrics)
    tail: Tail = Field(default_factory=Tail)
    captures: Captures = Field(default_factory=Captures)
    seed: int | None = None

    def upstream(self, name: str) -> Upstream:
        for up in self.upstreams:
            if up.name == name:
                return up
        raise KeyError(name)


def _cross_check(cfg: Config) -> list[tuple[str, str]]:
    """Checks that span sections: names that must exist, things that must be unique."""
    problems: list[tuple[str, str]] = []
    known = [u.name for u in cfg.upstreams]
    seen_up: set[str] = set()
    for i, up in enumerate(cfg.upstreams):
        if up.name in seen_up:
            problems.append((f"upstreams[{i}].name", f"duplicate upstream name {up.name!r}"))
        seen_up.add(up.name)
    names: set[str] = set()
    addrs: dict[tuple[str, int], str] = {}
    record_dirs: dict[str, tuple[str, Record]] = {}
    for i, lst in enumerate(cfg.listeners):
        if lst.name in names:
            problems.append((f"listeners[{i}].name", f"duplicate listener name {lst.name!r}"))
        names.add(lst.name)
        key = (lst.listen.host, lst.listen.port)
        if lst.listen.port and key in addrs:
            problems.append(
                (
                    f"listeners[{i}].listen",
                    f"{lst.listen} is already used by listener {addrs[key]!r}",
                )
            )
        addrs.setdefault(key, lst.name)
        if lst.record is not None:
            where = str(lst.record.dir)
            first = record_dirs.setdefault(where, (lst.name, lst.record))
            if first[1] != lst.record:
                problems.append(
                    (
                        f"listeners[{i}].record",
                        f"{where} is also recorded into by listener {first[0]!r}, "
                        "with other settings: listeners sharing a dir share its settings",
                    )
                )
        if lst.upstream is not None and lst.upstream not in known:
            problems.append(
                (
                    f"listeners[{i}].upstream",
                    f"unknown upstream {lst.upstream!r} (known: {', '.join(known) or 'none'})",
                )
            )
        for j, route in enumerate(lst.routes):
            if route.upstream not in known:
                problems.append(
                    (
                        f"listeners[{i}].routes[{j}].upstream",
                        f"unknown upstream {route.upstream!r} (known: {', '.join(known) or 'none'})",
                    )
                )
    tap_names: set[str] = {lst.capture.name or lst.name for lst in cfg.listeners if lst.capture}
    for i, tap in enumerate(cfg.captures.taps):
        if tap.listener is not None and tap.listener not in names:
            problems.append(
                (
                    f"captures.taps[{i}].listener",
                    f"unknown listener {tap.listener!r} (known: {', '.join(sorted(names))})",
                )
            )
        if tap.name is not None:
            if tap.name in tap_names:
                problems.append((f"captures.taps[{i}].name", f"duplicate tap name {tap.name!r}"))
            tap_names.add(tap.name)
    fault_names: set[str] = set()
    protocols = {lst.name: lst.protocol for lst in cfg.listeners}
    for i, fault in enumerate(cfg.faults):
        if fault.name in fault_names:
            problems.append((f"faults[{i}].name", f"duplicate fault name {fault.name!r}"))
        fault_names.add(fault.name)
        if "listener" in fault.match:
            problem = listener_problem(fault.match["listener"], protocols)
            if problem is not None:
                problems.append((f"faults[{i}].match.listener", problem))
    return problems


def from_dict(data: Any, source: str = "") -> Config:
    """Validate a parsed document; raise ConfigError naming every problem's path."""
    if not isinstance(data, dict):
        raise ConfigError([("", "the config must be a mapping at the top level")], source)
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(problems_of(exc), source) from None
    problems = _cross_check(cfg)
    if problems:
        raise ConfigError(problems, source)
    return cfg


def load(path: str | Path, *, admin_token: str | None = None) -> Config:
    """Read and validate a YAML config file. Relative paths inside resolve from its folder.

    `admin_token` (``--admin-token``) replaces ``admin.token`` before validation,
    so a config listening off loopback may leave its token to the command line.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError([("", f"cannot read config: {exc.strerror}")], str(path)) from None
    return loads(text, source=str(path), base=path.parent, admin_token=admin_token)


def loads(
    text: str,
    source: str = "<config>",
    base: Path | None = None,
    *,
    admin_token: str | None = None,
) -> Config:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([("", f"invalid YAML: {where}{problem}")], source) from None
    if admin_token is not None and isinstance(data, dict):
        admin = data.get("admin")
        data["admin"] = {**(admin if isinstance(admin, dict) else {}), "token": admin_token}
    cfg = from_dict(data, source)
    if base is not None:
        _resolve_paths(cfg, base)
    return cfg


def _resolve_paths(cfg: Config, base: Path) -> None:
    def fix(p: Path | None) -> Path | None:
        return p if p is None or p.is_absolute() else base / p

    for lst in cfg.listeners:
        if lst.tls is not None:
            lst.tls.cert, lst.tls.key = fix(lst.tls.cert), fix(lst.tls.key)
            lst.tls.client_ca = fix(lst.tls.client_ca)
            for ck in lst.tls.certs:
                ck.cert, ck.key = fix(ck.cert), fix(ck.key)  # type: ignore[assignment]
    for up in cfg.upstreams:
        if up.tls is not None:
            up.tls.ca, up.tls.cert, up.tls.key = fix(up.tls.ca), fix(up.tls.cert), fix(up.tls.key)
    cfg.tail.descriptors = [p if p.is_absolute() else base / p for p in cfg.tail.descriptors]
    cfg.captures.dir = fix(cfg.captures.dir)
    for tap in [*cfg.captures.taps, *(lst.capture for lst in cfg.listeners if lst.capture)]:
        tap.keylog = fix(tap.keylog)
    for lst in cfg.listeners:
        rec = lst.record
        if rec is not None:
            rec.dir = base / rec.dir if not rec.dir.is_absolute() else rec.dir
            sch = rec.schema_
            if sch is not None:
                sch.protos = [p if p.is_absolute() else base / p for p in sch.protos]
                sch.import_paths = [p if p.is_absolute() else base / p for p in sch.import_paths]
                sch.descriptor_set = fix(sch.descriptor_set)


def check_files(cfg: Config) -> list[tuple[str, str]]:
    """Files the config names must exist; `protoproxy check` reports the ones that don't."""
    problems: list[tuple[str, str]] = []

    def need(path: Path | None, where: str) -> None:
        if path is not None and not path.is_file():
            problems.append((where, f"file {str(path)!r} does not exist"))

    for i, lst in enumerate(cfg.listeners):
        if lst.tls is None:
            continue
        need(lst.tls.cert, f"listeners[{i}].tls.cert")
        need(lst.tls.key, f"listeners[{i}].tls.key")
        need(lst.tls.client_ca, f"listeners[{i}].tls.client_ca")
        for j, ck in enumerate(lst.tls.certs):
            need(ck.cert, f"listeners[{i}].tls.certs[{j}].cert")
            need(ck.key, f"listeners[{i}].tls.certs[{j}].key")
    for i, path in enumerate(cfg.tail.descriptors):
        need(path, f"tail.descriptors[{i}]")
    for i, lst in enumerate(cfg.listeners):
        sch = lst.record.schema_ if lst.record is not None else None
        if sch is not None:
            need(sch.descriptor_set, f"listeners[{i}].record.schema.descriptor_set")
            for j, path in enumerate(sch.protos):
                need(path, f"listeners[{i}].record.schema.protos[{j}]")
    for i, up in enumerate(cfg.upstreams):
        if up.tls is not None:
            need(up.tls.ca, f"upstreams[{i}].tls.ca")
            need(up.tls.cert, f"upstreams[{i}].tls.cert")
            need(up.tls.key, f"upstreams[{i}].tls.key")
    return problems


SECRET_KEYS = frozenset({"token", "password", "sasl_password", "secret", "key_password"})


def redacted(cfg: Config) -> dict[str, Any]:
    """The effective config as plain data with secrets replaced (for /config)."""

    def scrub(obj: Any) -> Any:
        if isinstance(obj, dict):
            return {
                k: ("<redacted>" if k in SECRET_KEYS and v is not None else scrub(v))
                for k, v in obj.items()
            }
        if isinstance(obj, list):
            return [scrub(v) for v in obj]
        return obj

    return scrub(cfg.model_dump(mode="json", by_alias=True))
