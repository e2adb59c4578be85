"""A stub's `request` block: parsed once, matched with WireMock's weighted distance.

WireMock scores a request against a pattern in two phases (RequestPattern.java):
URL (weight 10) and method (weight 3), beside scheme/host/port/client IP
(weights 3, 10, 10, 3, always exact here since we do not match on them); only
when those all match does it add headers, query parameters, cookies and body
patterns (weight 1 each, plus path parameters, form parameters and multipart,
always exact here). The distance is the weighted sum over the summed weights.
Near misses rank by this number, so we compute it the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import parse_qsl

from .errors import MappingError
from .matchers import ValueMatcher, parse_value_matcher

URL_KEYS = ("url", "urlPath", "urlPattern", "urlPathPattern", "urlPathTemplate")
REQUEST_KEYS = {
    *URL_KEYS,
    "method",
    "queryParameters",
    "headers",
    "cookies",
    "bodyPatterns",
    "scheme",
    "host",
    "port",
    "clientIp",
    "basicAuthCredentials",
    "formParameters",
    "pathParameters",
    "multipartPatterns",
    "customMatcher",
}
UNSUPPORTED_REQUEST_KEYS = {
    "basicAuthCredentials",
    "formParameters",
    "pathParameters",
    "multipartPatterns",
    "customMatcher",
    "scheme",
    "host",
    "port",
    "clientIp",
}
#: Weights of the first phase that never differ here: scheme, host, port, client IP.
FIXED_PHASE_ONE_WEIGHT = 3.0 + 10.0 + 10.0 + 3.0
URL_WEIGHT = 10.0
METHOD_WEIGHT = 3.0
#: Phase two has seven parts of weight 1: path params, headers, query, form, cookies, body, multipart.
PHASE_TWO_PARTS = 7


@dataclass(frozen=True)
class RequestView:
    """A request as the matchers see it (from an HttpIn or from a logged request)."""

    method: str
    url: str
    headers: list[tuple[str, str]]
    body: bytes
    path: str = field(init=False)
    query: dict[str, list[str]] = field(init=False)
    cookies: dict[str, list[str]] = field(init=False)

    def __post_init__(self) -> None:
        path, _, query = self.url.partition("?")
        object.__setattr__(self, "path", path)
        params: dict[str, list[str]] = {}
        for name, value in parse_qsl(query, keep_blank_values=True):
            params.setdefault(name, []).append(value)
        object.__setattr__(self, "query", params)
        object.__setattr__(self, "cookies", parse_cookies(self.header_values("cookie")))

    def header_values(self, name: str) -> list[str]:
        lower = name.lower()
        return [v for k, v in self.headers if k.lower() == lower]

    @property
    def body_text(self) -> str:
        return self.body.decode("utf-8", "replace")

    @property
    def path_segments(self) -> list[str]:
        return [s for s in self.path.split("/") if s]


def parse_cookies(lines: list[str]) -> dict[str, list[str]]:
    cookies: dict[str, list[str]] = {}
    for line in lines:
        for part in line.split(";"):
            name, eq, value = part.strip().partition("=")
            if not eq or not name:
                continue
            try:
                parsed = SimpleCookie(f"{name}={value}")
            except CookieError:
                parsed = None
            cookie_value = parsed[name].value if parsed and name in parsed else value
            cookies.setdefault(name, []).append(cookie_value)
    return cookies


@dataclass(frozen=True)
class MatchOutcome:
    distance: float
    exact: bool


@dataclass(frozen=True)
class UrlMatcher:
    key: str
    value: str
    matcher: ValueMatcher | None  # None: any URL
    template: tuple[str, ...] = ()

    def match(self, req: RequestView) -> float:
        if self.key == "any":
            return 0.0
        if self.key == "urlPathTemplate":
            return _template_distance(self.template, req.path)
        target = req.url if self.key in ("url", "urlPattern") else req.path
        assert self.matcher is not None
        return self.matcher.match(target)

    def is_exact(self, req: RequestView) -> bool:
        if self.key in ("any", "urlPathTemplate"):
            return self.match(req) == 0
        assert self.matcher is not None
        return self.matcher.is_exact(req.url if self.key in ("url", "urlPattern") else req.path)

    def describe(self) -> str:
        """As WireMock's diff prints the URL pattern (`[path regex] /a/.*`)."""
        prefix = {
            "any": "",
            "url": "",
            "urlPath": "[path] ",
            "urlPattern": "[regex] ",
            "urlPathPattern": "[path regex] ",
            "urlPathTemplate": "[path template] ",
        }[self.key]
        return prefix + (self.value if self.key != "any" else "(any)")


def _template_distance(template: tuple[str, ...], path: str) -> float:
    segments = path.split("/")
    if len(segments) != len(template):
        return 1.0
    for want, got in zip(template, segments, strict=True):
        if want.startswith("{") and want.endswith("}"):
            if not got:
                return 1.0
        elif want != got:
            return 1.0
    return 0.0


@dataclass(frozen=True)
class RequestPattern:
    """A parsed `request` block; `spec` is kept to give the same JSON back."""

    spec: dict[str, Any]
    method: str
    url: UrlMatcher
    query: tuple[tuple[str, ValueMatcher], ...]
    headers: tuple[tuple[str, ValueMatcher], ...]
    cookies: tuple[tuple[str, ValueMatcher], ...]
    body: tuple[ValueMatcher, ...]

    @classmethod
    def parse(cls, spec: Any, where: str = "request") -> RequestPattern:
        if not isinstance(spec, dict):
            raise MappingError(where, "must be an object")
        for key in spec:
            if key not in REQUEST_KEYS:
                raise MappingError(f"{where}.{key}", "unknown field")
            if key in UNSUPPORTED_REQUEST_KEYS:
                raise MappingError(
                    f"{where}.{key}", "not supported by the testbed's WireMock engine"
                )
        method = spec.get("method", "ANY")
        if not isinstance(method, str) or not method:
            raise MappingError(f"{where}.method", "must be a method name or ANY")
        url_keys = [k for k in URL_KEYS if k in spec]
        if len(url_keys) > 1:
            raise MappingError(where, "only one of " + ", ".join(url_keys))
        url = _parse_url(spec, url_keys[0] if url_keys else None, where)
        return cls(
            spec=dict(spec),
            method=method,  # case-sensitive, as WireMock 3.13 compares it
            url=url,
            query=_named(spec, "queryParameters", where),
            headers=_named(spec, "headers", where),
            cookies=_named(spec, "cookies", where),
            body=_body(spec, where),
        )

    def to_json(self) -> dict[str, Any]:
        return dict(self.spec)

    def match(self, req: RequestView) -> MatchOutcome:
        url_distance = self.url.match(req)
        method_distance = self.method_distance(req)
        phase_one = URL_WEIGHT * url_distance + METHOD_WEIGHT * method_distance
        phase_one_weight = FIXED_PHASE_ONE_WEIGHT + URL_WEIGHT + METHOD_WEIGHT
        if phase_one > 0:
            return MatchOutcome(phase_one / phase_one_weight, False)
        parts = [
            _aggregate([m.match(_best(req.header_values(n), m)) for n, m in self.headers]),
            _aggregate([m.match(_best(req.query.get(n, []), m)) for n, m in self.query]),
            _aggregate([cookie_distance(req.cookies.get(n, []), m) for n, m in self.cookies]),
            _aggregate([m.match(req.body_text or None) for m in self.body]),
        ]
        total = sum(parts)
        distance = total / (phase_one_weight + PHASE_TWO_PARTS)
        return MatchOutcome(distance, total == 0)

    def is_match(self, req: RequestView) -> bool:
        """An exact match, without computing distances (what serving and the journal queries need)."""
        if self.method_distance(req) != 0 or not self.url.is_exact(req):
            return False
        for name, m in self.headers:
            if not _any_exact(req.header_values(name), m):
                return False
        for name, m in self.query:
            if not _any_exact(req.query.get(name, []), m):
                return False
        for name, m in self.cookies:
            if cookie_distance(req.cookies.get(name, []), m) != 0:
                return False
        body = req.body_text or None
        return all(m.is_exact(body) for m in self.body)

    def method_distance(self, req: RequestView) -> float:
        return 0.0 if self.method == "ANY" or self.method == req.method else 1.0


def _any_exact(values: list[str], matcher: ValueMatcher) -> bool:
    if not values:
        return matcher.is_exact(None)
    return any(matcher.is_exact(v) for v in values)


def _best(values: list[str], matcher: ValueMatcher) -> str | None:
    """WireMock's single-value pattern over a multi-valued field: the closest value wins."""
    if not values:
        return None
    return min(values, key=matcher.match)


def cookie_distance(values: list[str], matcher: ValueMatcher) -> float:
    """A missing cookie matches only `absent` (WireMock 3.13 fails even doesNotContain on it)."""
    if not values:
        return 0.0 if matcher.key == "absent" else 1.0
    return matcher.match(_best(values, matcher))


def _aggregate(distances: list[float]) -> float:
    return sum(distances) / len(distances) if distances else 0.0


def _parse_url(spec: dict[str, Any], key: str | None, where: str) -> UrlMatcher:
    if key is None:
        return UrlMatcher("any", "", None)
    value = spec[key]
    if not isinstance(value, str):
        raise MappingError(f"{where}.{key}", "must be a string")
    if key == "urlPathTemplate":
        return UrlMatcher(key, value, None, tuple(value.split("/")))
    matcher_spec = {"equalTo": value} if key in ("url", "urlPath") else {"matches": value}
    return UrlMatcher(key, value, parse_value_matcher(matcher_spec, f"{where}.{key}"))


def _named(spec: dict[str, Any], key: str, where: str) -> tuple[tuple[str, ValueMatcher], ...]:
    block = spec.get(key)
    if block is None:
        return ()
    if not isinstance(block, dict):
        raise MappingError(f"{where}.{key}", "must be an object of name: matcher")
    return tuple(
        (name, parse_value_matcher(m, f"{where}.{key}.{name}")) for name, m in block.items()
    )


def _body(spec: dict[str, Any], where: str) -> tuple[ValueMatcher, ...]:
    patterns = spec.get("bodyPatterns")
    if patterns is None:
        return ()
    if not isinstance(patterns, list):
        raise MappingError(f"{where}.bodyPatterns", "must be a list of matchers")
    return tuple(
        parse_value_matcher(p, f"{where}.bodyPatterns[{i}]") for i, p in enumerate(patterns)
    )
