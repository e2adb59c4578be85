"""A blocking client for the admin API, for tests and scripts.

It speaks plain HTTP through the standard library on purpose: a test that
checks the proxy through `/faults` or `/metrics` then goes through the same
routes a user's curl does, with no client library of ours in between, and it
needs no event loop (it works in sync tests and, for short calls, in async ones).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


class AdminError(Exception):
    """The admin API answered with an HTTP error; `status` and `body` are its answer."""

    def __init__(self, method: str, path: str, status: int, body: Any) -> None:
        super().__init__(f"{method} {path}: HTTP {status}: {body}")
        self.status = status
        self.body = body


class AdminClient:
    """``AdminClient("http://127.0.0.1:9901").get("/faults")`` gives the decoded JSON."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 30) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """JSON in, JSON out (text for non-JSON answers such as /metrics, None for 204)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return _decode(resp.headers.get_content_type(), resp.read())
        except urllib.error.HTTPError as exc:
            answer = _decode(exc.headers.get_content_type(), exc.read())
            raise AdminError(method, path, exc.code, answer) from None

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, body if body is not None else {})

    def put(self, path: str, body: Any) -> Any:
        return self.request("PUT", path, body)

    def patch(self, path: str, body: Any) -> Any:
        return self.request("PATCH", path, body)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    # -- the routes tests use most ---------------------------------------------------
    def metrics(self) -> str:
        """The Prometheus text of /metrics."""
        return str(self.get("/metrics"))

    def faults(self) -> list[dict[str, Any]]:
        """Every fault with its `stats` (matches, injected, active)."""
        return list(self.get("/faults")["faults"])

    def fault(self, name: str) -> dict[str, Any]:
        return dict(self.get(f"/faults/{name}"))

    def add_fault(self, fault: dict[str, Any]) -> dict[str, Any]:
        return dict(self.post("/faults", fault))

    def remove_fault(self, name: str) -> None:
        self.delete(f"/faults/{name}")

    def reset_faults(self, seed: int | None = None) -> None:
        self.post("/faults/reset", {} if seed is None else {"seed": seed})


def _decode(content_type: str, raw: bytes) -> Any:
    if not raw:
        return None
    if content_type == "application/json":
        return json.loads(raw)
    return raw.decode("utf-8", "replace")
