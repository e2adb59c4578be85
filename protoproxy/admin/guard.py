"""Browser safety of the admin API: refuse what a web page could have made the browser send.

The admin API changes what the proxy does (faults, toxics, listeners) and
shows what went through it (`/messages`, `/config`), and on loopback it needs
no token by default. Any web page the user opens can make the browser send
requests to 127.0.0.1: "simple" cross-site requests (an HTML form, a
``text/plain`` fetch) go out without a CORS preflight, and DNS rebinding
points a name the attacker controls at 127.0.0.1 so that the page can read the
answers too. Tools (curl, the Toxiproxy clients, tests) send none of what
gives a browser away, so each rule below stops one attack and costs them
nothing:

- ``host``: the ``Host`` header must name the admin API (localhost, a loopback
  address, `admin.allowed_hosts`, the address it listens on): a rebound name
  is refused, reads included.
- ``origin`` / ``fetch_site``: a request a browser marks as coming from another
  site (``Origin`` not the API's own nor in `admin.cors_origins`;
  ``Sec-Fetch-Site: cross-site`` or ``same-site``) is refused.
- ``content_type``: a state-changing request with a body must be
  ``application/json``, a type a browser cannot send cross-site without a
  preflight, which gets no CORS answer.

Bodyless state-changing requests (``POST /reset``, ``DELETE``) pass the
content-type rule whatever they declare (Toxiproxy's older Go client sends
``text/plain`` with an empty ``/reset``); browsers always send ``Origin`` on a
cross-site POST or DELETE, so the origin rule covers them. The checks are
pure functions of `RequestFacts`, listed in order in `CHECKS`;
`protoproxy.admin.server` applies them and counts each refusal by reason.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ..addresses import is_loopback

if TYPE_CHECKING:
    from ..config import Admin, Upstream

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
JSON_TYPE = "application/json"
#: Sec-Fetch-Site values meaning "another site's page sent this": same-site
#: is another port of localhost too (a local dev server), so it counts.
FOREIGN_FETCH_SITES = frozenset({"cross-site", "same-site"})
#: Listen hosts that mean "every address": the Host names an IP of the machine.
WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})
#: What a CORS preflight may ask for, when admin.cors_origins allows its origin.
CORS_METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE"
CORS_HEADERS = "Authorization, Content-Type"
CORS_MAX_AGE = "600"
SEE = "(docs/security.md#admin-api-threat-model)"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Refusal:
    """Why a request is refused: `reason` labels protoproxy_admin_refused_total."""

    reason: str
    error: str


@dataclass(frozen=True)
class RequestFacts:
    """What the rules look at, taken from the request once."""

    method: str
    host: str | None
    origin: str | None
    fetch_site: str | None
    content_type: str | None
    has_body: bool


def split_host(value: str) -> tuple[str, int | None] | None:
    """A Host header's name (lowercase, no trailing dot) and port; None if malformed."""
    text = value.strip().lower()
    if text.startswith("["):
        name, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            return None
        port_text = rest[1:] if rest else None
    else:
        name, sep, port_text = text.partition(":")
        if sep and (":" in port_text):
            return None  # a bare IPv6 address: not a valid Host
        port_text = port_text if sep else None
    if port_text is not None and not port_text.isdigit():
        return None
    name = name.rstrip(".")
    if not name:
        return None
    return name, int(port_text) if port_text is not None else None


def origin_key(origin: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an origin, default ports filled in; None for ``null``."""
    try:
        parts = urlsplit(origin.strip().lower())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return None
    default = 443 if parts.scheme == "https" else 80
    return parts.scheme, parts.hostname.rstrip("."), port or default


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


class BrowserGuard:
    """The rules for one admin config; `refusal` says whether a request may go on."""

    def __init__(self, admin: Admin) -> None:
        self.listen_host = admin.listen.host.lower().strip("[]")
        self.allowed_hosts = frozenset(h.lower().rstrip(".") for h in admin.allowed_hosts)
        self.cors_origins = {
            key: origin.rstrip("/")
            for origin in admin.cors_origins
            if (key := origin_key(origin)) is not None
        }

    # -- the rules -------------------------------------------------------------------
    def host_allowed(self, name: str) -> bool:
        if is_loopback(name) or "*" in self.allowed_hosts or name in self.allowed_hosts:
            return True
        if self.listen_host in WILDCARD_HOSTS:
            # A rebinding attack needs a name; an IP literal is the machine's own.
            return _ip(name) is not None
        return name == self.listen_host

    def check_host(self, req: RequestFacts) -> Refusal | None:
        if req.host is None:
            return None  # no browser omits Host; HTTP/1.0 tools may
        parsed = split_host(req.host)
        if parsed is not None and self.host_allowed(parsed[0]):
            return None
        return Refusal(
            "host",
            f"Host {req.host!r} is not this admin API's: it answers to localhost, loopback "
            f"addresses, the address it listens on and admin.allowed_hosts; another name is "
            f"how DNS rebinding reaches it from a web page {SEE}",
        )

    def origin_allowed(self, req: RequestFacts, origin: str) -> bool:
        key = origin_key(origin)
        if key is None:
            return False
        if key in self.cors_origins:
            return True
        own = split_host(req.host) if req.host is not None else None
        return own is not None and key == ("http", own[0], own[1] or 80)

    def check_origin(self, req: RequestFacts) -> Refusal | None:
        if req.origin is not None:
            if self.origin_allowed(req, req.origin):
                return None
            return Refusal(
                "origin",
                f"Origin {req.origin!r} is neither this admin API's own origin nor in "
                f"admin.cors_origins: requests from other sites' web pages are refused {SEE}",
            )
        if req.fetch_site is not None and req.fetch_site.lower() in FOREIGN_FETCH_SITES:
            return Refusal(
                "fetch_site",
                f"Sec-Fetch-Site: {req.fetch_site} says another site's web page sent this "
                f"request; such requests are refused {SEE}",
            )
        return None

    def check_content_type(self, req: RequestFacts) -> Refusal | None:
        if req.method not in STATE_CHANGING or not req.has_body:
            return None
        media = (req.content_type or "").split(";", 1)[0].strip().lower()
        if media == JSON_TYPE:
            return None
        return Refusal(
            "content_type",
            f"a {req.method} with a body must be Content-Type: {JSON_TYPE} "
            f"(got {req.content_type or 'none'}); a web page can send other types to this "
            f"API without asking (curl: -H 'Content-Type: application/json') {SEE}",
        )

    def refusal(self, req: RequestFacts) -> Refusal | None:
        """The first rule `req` breaks, in `CHECKS` order, or None."""
        for check in CHECKS:
            found = check(self, req)
            if found is not None:
                return found
        return None

    # -- CORS, only for admin.cors_origins -------------------------------------------
    def cors_headers(self, origin: str | None) -> dict[str, str]:
        """Headers that let an allowed origin's page read an answer; none for others."""
        if origin is None:
            return {}
        key = origin_key(origin)
        if key is None or key not in self.cors_origins:
            return {}
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}

    def preflight_headers(self, method: str, headers: Mapping[str, str]) -> dict[str, str]:
        """The answer to an allowed origin's CORS preflight; empty when it is not one."""
        if method != "OPTIONS" or "Access-Control-Request-Method" not in headers:
            return {}
        allow = self.cors_headers(headers.get("Origin"))
        if not allow:
            return {}
        return {
            **allow,
            "Access-Control-Allow-Methods": CORS_METHODS,
            "Access-Control-Allow-Headers": CORS_HEADERS,
            "Access-Control-Max-Age": CORS_MAX_AGE,
        }


#: The rules in the order they are applied: Host first (a rebound name learns
#: nothing else), then where the request came from, then what it carries.
CHECKS: tuple[Callable[[BrowserGuard, RequestFacts], Refusal | None], ...] = (
    BrowserGuard.check_host,
    BrowserGuard.check_origin,
    BrowserGuard.check_content_type,
)


# -- where run-time listeners may forward to ---------------------------------------------
@dataclass(frozen=True)
class UpstreamPattern:
    """One `admin.upstream_allow` entry: ``*``, ``host:port``, ``host:*``, ``10.0.0.0/8``...

    Names are compared as written, never resolved: resolving at check time
    would let a name that resolves elsewhere at connect time through.
    """

    text: str
    #: None: any host
    name: str | None = None
    network: Network | None = None
    #: None: any port
    port: int | None = None

    @classmethod
    def parse(cls, text: str) -> UpstreamPattern:
        raw = text.strip()
        if raw == "*":
            return cls(raw)
        if raw.startswith("["):
            host, sep, rest = raw[1:].partition("]")
            if not sep or (rest and not rest.startswith(":")):
                raise ValueError(f"{text!r} is not [ipv6]:port")
            port_text: str | None = rest[1:] if rest else None
        elif raw.count(":") == 1:
            host, _, port_text = raw.partition(":")
        else:
            host, port_text = raw, None  # a name, an IPv4 one, or a bare IPv6 address/CIDR
        if port_text is None or port_text == "*":
            port = None
        elif port_text.isdigit() and 0 < int(port_text) <= 65535:
            port = int(port_text)
        else:
            raise ValueError(f"{text!r}: port {port_text!r} is not a number 1-65535 or *")
        host = host.lower().rstrip(".")
        if not host:
            raise ValueError(f"{text!r} has no host (use * for any)")
        if host == "*":
            return cls(raw, port=port)
        try:
            network = ipaddress.ip_network(host, strict=False)
        except ValueError:
            if "/" in host or ":" in host:
                raise ValueError(f"{text!r}: {host!r} is not an address or CIDR") from None
            return cls(raw, name=host, port=port)
        return cls(raw, network=network, port=port)

    def matches(self, host: str, port: int) -> bool:
        if self.port is not None and port != self.port:
            return False
        if self.network is not None:
            ip = _ip(host.strip("[]"))
            return ip is not None and ip in self.network
        if self.name is not None:
            return host.lower().rstrip(".") == self.name
        return True


def upstream_allowed(admin: Admin, host: str, port: int) -> bool:
    """Whether a listener made at run time may forward to host:port."""
    return any(UpstreamPattern.parse(p).matches(host, port) for p in admin.upstream_allow)


def upstream_refusal(admin: Admin, upstream: Upstream | None) -> str | None:
    """The problem with an upstream made by the API (POST /proxies), or None."""
    if upstream is None:
        return None
    refused = [ep for ep in upstream.endpoints if not upstream_allowed(admin, ep.host, ep.port)]
    if not refused:
        return None
    return (
        f"upstream: {', '.join(refused)} is not allowed by admin.upstream_allow "
        f"({', '.join(admin.upstream_allow) or 'empty: nothing is'}); names are matched as "
        "written, not resolved"
    )
