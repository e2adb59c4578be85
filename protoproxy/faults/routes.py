"""Native fault control: /faults, /faults/{name}, /faults/reset, /faults/seed.

Bodies are the same FaultSpec as the config file's `faults:` entries, so
what a user tries with curl can be pasted into a config. Validation errors
name the field, as `protoproxy check` does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web
from pydantic import ValidationError

from ..admin.body import BodyError, read_json
from ..config_errors import format_errors
from .model import FaultSpec

if TYPE_CHECKING:
    from .engine import FaultEngine


class _BadRequest(Exception):
    def __init__(self, message: str | list[str], status: int = 400) -> None:
        super().__init__(message)
        self.status = status


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        data = await read_json(request)
    except BodyError as exc:
        raise _BadRequest(str(exc), exc.status) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise _BadRequest("body must be a JSON object")
    return data


def _merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """JSON merge patch (RFC 7396): nested objects merge, null removes."""
    out = dict(base)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _bad(message: str | list[str], status: int = 400) -> web.Response:
    problems = message if isinstance(message, list) else [message]
    return web.json_response({"error": "; ".join(problems), "problems": problems}, status=status)


def routes(engine: FaultEngine) -> list[web.RouteDef]:
    def _validate(data: dict[str, Any]) -> FaultSpec:
        try:
            spec = FaultSpec.model_validate(data)
        except ValidationError as exc:
            raise _BadRequest(format_errors(exc)) from None
        try:
            engine.check(spec)  # names only the running proxy knows (listeners)
        except ValueError as exc:
            raise _BadRequest(str(exc)) from None
        return spec

    def _missing(name: str) -> web.Response:
        return web.json_response({"error": f"no fault named {name!r}"}, status=404)

    async def index(request: web.Request) -> web.Response:
        return web.json_response(engine.to_json())

    async def create(request: web.Request) -> web.Response:
        try:
            spec = _validate(await _json(request))
        except _BadRequest as exc:
            return _bad(exc.args[0], exc.status)
        if spec.name in engine.faults:
            return web.json_response({"error": f"fault {spec.name!r} already exists"}, status=409)
        return web.json_response(engine.add(spec).to_json(), status=201)

    async def show(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        fault = engine.faults.get(name)
        return _missing(name) if fault is None else web.json_response(fault.to_json())

    async def put(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        try:
            data = await _json(request)
            data.setdefault("name", name)
            spec = _validate(data)
        except _BadRequest as exc:
            return _bad(exc.args[0], exc.status)
        if name not in engine.faults:
            if spec.name != name:
                return _bad(f"name {spec.name!r} differs from the path's {name!r}")
            return web.json_response(engine.add(spec).to_json(), status=201)
        if spec.name != name and spec.name in engine.faults:
            return web.json_response({"error": f"fault {spec.name!r} already exists"}, status=409)
        return web.json_response(engine.update(name, spec).to_json())

    async def patch(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        fault = engine.faults.get(name)
        if fault is None:
            return _missing(name)
        try:
            merged = _merge(
                fault.spec.model_dump(mode="json", exclude_none=True), await _json(request)
            )
            spec = _validate(merged)
        except _BadRequest as exc:
            return _bad(exc.args[0], exc.status)
        if spec.name != name and spec.name in engine.faults:
            return web.json_response({"error": f"fault {spec.name!r} already exists"}, status=409)
        return web.json_response(engine.update(name, spec).to_json())

    async def delete(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in engine.faults:
            return _missing(name)
        engine.remove(name)
        return web.Response(status=204)

    async def reset(request: web.Request) -> web.Response:
        try:
            data = await _json(request)
        except _BadRequest as exc:
            return _bad(exc.args[0], exc.status)
        seed = data.get("seed")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            return _bad("seed: must be an integer")
        engine.reset(seed)
        return web.json_response({"seed": engine.seed, "faults": []})

    async def seed_get(request: web.Request) -> web.Response:
        return web.json_response({"seed": engine.seed})

    async def seed_put(request: web.Request) -> web.Response:
        try:
            data = await _json(request)
        except _BadRequest as exc:
            return _bad(exc.args[0], exc.status)
        seed = data.get("seed")
        if not isinstance(seed, int) or isinstance(seed, bool):
            return _bad("seed: must be an integer")
        engine.reseed(seed)
        return web.json_response({"seed": engine.seed})

    async def history(request: web.Request) -> web.Response:
        return web.json_response(
            {"seed": engine.seed, "history": [list(h) for h in engine.history]}
        )

    # The fixed paths first: aiohttp matches in registration order.
    return [
        web.get("/faults", index),
        web.post("/faults", create),
        web.post("/faults/reset", reset),
        web.get("/faults/seed", seed_get),
        web.put("/faults/seed", seed_put),
        web.get("/faults/history", history),
        web.get("/faults/{name:.+}", show),
        web.put("/faults/{name:.+}", put),
        web.patch("/faults/{name:.+}", patch),
        web.delete("/faults/{name:.+}", delete),
    ]
