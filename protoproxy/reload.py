"""Config reload: re-read the file, validate all of it, apply the difference live.

SIGHUP and ``POST /config/reload`` both come here. A reload is three steps:

1. **Validate**: the file is loaded and checked exactly as `protoproxy check`
   does (same ``path: problem`` errors), then against what only the running
   proxy knows (names taken by listeners and upstreams made through the admin
   API, an upstream the file drops that such a listener forwards to), then
   the objects that read files (TLS contexts) are built. Any problem: the
   reload is ``invalid`` and nothing has changed.
2. **Bind**: listeners that go away (removed, or replaced because their entry
   changed) stop accepting; new and replaced ones bind. A port in use: the new
   ones are closed, the old ones listen again, the reload is ``failed`` and
   nothing else has changed.
3. **Commit** (nothing here can fail): listeners, upstream endpoints, limits,
   faults from the file and the seed take their new values.

Config-owned state follows the file, API-owned state stays: a listener,
upstream or fault whose name the file never had (``POST /listeners``,
``POST /proxies``, ``POST /faults``) is left alone; one the file names is the
file's. Established connections keep what they were accepted with (listener
runtime, upstream endpoint, limits, codec); message faults and toxics act per
message, so a changed fault applies to them from their next message, as a
``PUT /faults/{name}`` would. Sections that cannot change live (`admin`,
`timeouts`, `access_log`, `metrics`, `tail`) are kept as they are and named
in ``restart_needed``; the rest of the reload still applies.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import config as config_mod
from . import fdlimits
from .config import Config, Listener
from .config_errors import ConfigError, Problem, format_problem
from .listener import ListenerRuntime
from .runtime_listeners import ListenerDirectory
from .upstream import Cluster

if TYPE_CHECKING:
    from .app import App

log = logging.getLogger("protoproxy.reload")

#: top-level sections a reload cannot apply live: they stay, and are reported
RESTART_SECTIONS = ("admin", "timeouts", "access_log", "metrics", "tail")
RESULTS = ("ok", "invalid", "failed")


def _dump(model: Any) -> Any:
    return model.model_dump(mode="json", by_alias=True)


def changed_paths(old: Any, new: Any, prefix: str) -> list[str]:
    """Config paths whose values differ between two dumps, down to the leaves of mappings."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in dict.fromkeys([*old, *new]):
            out += changed_paths(old.get(key), new.get(key), f"{prefix}.{key}")
        return out
    return [] if old == new else [prefix]


@dataclass
class Diff:
    """Names added, removed and changed in one section."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    def to_json(self) -> dict[str, list[str]]:
        return {"added": self.added, "removed": self.removed, "changed": self.changed}


@dataclass
class Plan:
    """What a reload changes. A changed listener is replaced (closed and bound
    anew: its established connections drain on the old one); a changed upstream
    is updated in place."""

    listeners: Diff = field(default_factory=Diff)
    upstreams: Diff = field(default_factory=Diff)
    faults: Diff = field(default_factory=Diff)
    limits: list[str] = field(default_factory=list)
    seed: bool = False
    restart_needed: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.listeners or self.upstreams or self.faults or self.limits or self.seed)

    def to_json(self) -> dict[str, Any]:
        return {
            "listeners": self.listeners.to_json(),
            "upstreams": self.upstreams.to_json(),
            "faults": self.faults.to_json(),
            "limits": self.limits,
            "seed": self.seed,
        }

    def summary(self) -> str:
        parts = []
        for what, diff in (
            ("listeners", self.listeners),
            ("upstreams", self.upstreams),
            ("faults", self.faults),
        ):
            for verb in ("added", "removed", "changed"):
                names = getattr(diff, verb)
                if names:
                    parts.append(f"{what} {verb}: {', '.join(names)}")
        if self.limits:
            parts.append(f"limits changed: {', '.join(self.limits)}")
        if self.seed:
            parts.append("seed changed")
        text = "; ".join(parts) or "no changes"
        if self.restart_needed:
            text += f" (needs a restart, left unchanged: {', '.join(self.restart_needed)})"
        return text


@dataclass
class Outcome:
    """One reload's result: ``ok`` with its plan, or ``invalid``/``failed`` with problems."""

    result: str
    source: str
    plan: Plan | None = None
    error: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def status(self) -> int:
        if not self.source:
            return 409  # no file to reload
        return {"ok": 200, "invalid": 400}.get(self.result, 500)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"result": self.result, "source": self.source}
        if self.plan is not None:
            out["changed"] = self.plan.to_json()
            out["restart_needed"] = self.plan.restart_needed
        else:
            out["error"] = self.error
            out["problems"] = self.problems
        return out


class Rejected(Exception):
    """Why a reload changed nothing: its `result` and the problems."""

    def __init__(self, result: str, error: str, problems: list[str]) -> None:
        super().__init__(error)
        self.result = result
        self.problems = problems


def _invalid(problems: list[Problem], source: str) -> Rejected:
    exc = ConfigError(problems, source)
    return Rejected("invalid", str(exc), [format_problem(p, m) for p, m in problems])


@dataclass
class _Prepared:
    """Objects built before anything changes: building them reads certificate files."""

    clusters: dict[str, Cluster]  # added and changed upstreams, not registered yet
    runtimes: dict[str, ListenerRuntime]  # added and replaced listeners, not bound yet


class Reloader:
    """Reloads one App from the file it was started with (`path`; None: none to reload)."""

    def __init__(self, app: App, path: str | Path | None, admin_token: str | None) -> None:
        self.app = app
        self.path = str(path) if path is not None else None
        self.admin_token = admin_token
        cfg = app.config
        #: the file as last applied: live sections are diffed against it
        self.file: Config = cfg.model_copy(deep=True)
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Outcome]] = set()
        stats = app.proxy.stats
        self.reloads = stats.counter(
            "protoproxy_config_reloads_total",
            "Config reloads (SIGHUP, POST /config/reload), by result (ok, invalid, failed)",
            ("result",),
        )
        for result in RESULTS:
            self.reloads.inc((result,), 0)
        self.last_success = stats.gauge(
            "protoproxy_config_last_reload_success_timestamp_seconds",
            "Unix time of the last config load that was applied (start-up counts)",
            (),
        )
        self.last_success.set((), time.time())

    # -- entry points --------------------------------------------------------------------
    def on_signal(self) -> None:
        """The SIGHUP handler: reload in a task (a signal handler must not block)."""
        task = asyncio.get_running_loop().create_task(self.reload())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def reload(self) -> Outcome:
        """Reload once; concurrent calls (a SIGHUP during a POST) run one after the other."""
        async with self._lock:
            outcome = await self._reload()
        self.reloads.inc((outcome.result,))
        if outcome.result == "ok":
            self.last_success.set((), time.time())
            assert outcome.plan is not None
            log.info("config reload ok (%s): %s", outcome.source, outcome.plan.summary())
        else:
            level = logging.WARNING if outcome.result == "invalid" else logging.ERROR
            log.log(
                level,
                "config reload %s (%s), nothing changed: %s",
                outcome.result,
                outcome.source,
                "; ".join(outcome.problems) or outcome.error,
            )
        return outcome

    async def _reload(self) -> Outcome:
        if self.path is None:
            msg = "this proxy was not started from a config file: there is nothing to reload"
            return Outcome("failed", "", error=msg, problems=[msg])
        try:
            new = self._load()
            plan = self.plan(new)
            prepared = self._prepare(new, plan)
            await self._apply(new, plan, prepared)
        except Rejected as exc:
            return Outcome(exc.result, self.path, error=str(exc), problems=exc.problems)
        return Outcome("ok", self.path, plan=plan)

    # -- 1. validate -----------------------------------------------------------------------
    def _load(self) -> Config:
        assert self.path is not None
        try:
            cfg = config_mod.load(self.path, admin_token=self.admin_token)
        except ConfigError as exc:
            raise _invalid(exc.problems, exc.source) from None
        problems = config_mod.check_files(cfg)
        if problems:
            raise _invalid(problems, self.path)
        return cfg

    def plan(self, new: Config) -> Plan:
        """The difference between the file as last applied and `new`; Rejected
        when `new` collides with what the admin API made."""
        assert self.path is not None
        proxy = self.app.proxy
        running = proxy.config
        old = self.file
        plan = Plan()
        problems: list[Problem] = []

        old_up = {u.name: u for u in old.upstreams}
        new_up = {u.name: u for u in new.upstreams}
        api_up = {u.name for u in running.upstreams} - set(old_up)
        for i, up in enumerate(new.upstreams):
            if up.name in api_up:
                problems.append(
                    (
                        f"upstreams[{i}].name",
                        f"upstream {up.name!r} exists, made through the admin API "
                        "(remove its listener there, or rename this one)",
                    )
                )
            elif up.name not in old_up:
                plan.upstreams.added.append(up.name)
            elif _dump(up) != _dump(old_up[up.name]):
                plan.upstreams.changed.append(up.name)
        plan.upstreams.removed = [n for n in old_up if n not in new_up]

        old_lst = {c.name: c for c in old.listeners}
        new_lst = {c.name: c for c in new.listeners}
        api_lst = set(proxy.listeners) - {
            lst.name for n in old_lst for lst in ListenerDirectory(proxy).family(n)
        }
        for i, cfg in enumerate(new.listeners):
            if cfg.name in api_lst:
                problems.append(
                    (
                        f"listeners[{i}].name",
                        f"listener {cfg.name!r} exists, made through the admin API "
                        "(delete it there, or rename this one)",
                    )
                )
            elif cfg.name not in old_lst or cfg.name not in proxy.listeners:
                plan.listeners.added.append(cfg.name)  # new, or deleted through the API
            elif self._listener_changed(old_lst[cfg.name], cfg, plan):
                plan.listeners.changed.append(cfg.name)
        plan.listeners.removed = [n for n in old_lst if n not in new_lst]

        api_cfgs = [c for c in running.listeners if c.name not in old_lst]
        for name in plan.upstreams.removed:
            for cfg in api_cfgs:
                if name == cfg.upstream or any(r.upstream == name for r in cfg.routes):
                    problems.append(
                        (
                            "upstreams",
                            f"upstream {name!r} is gone from the file, but listener "
                            f"{cfg.name!r}, made through the admin API, forwards to it",
                        )
                    )
        if problems:
            raise _invalid(problems, self.path)

        engine = self.app.faults
        new_faults = {f.name: f for f in new.faults}
        for name, spec in new_faults.items():
            fault = engine.faults.get(name)
            if fault is None:
                plan.faults.added.append(name)
            elif _dump(fault.spec) != _dump(spec):
                plan.faults.changed.append(name)
        plan.faults.removed = [
            f.name for f in old.faults if f.name not in new_faults and f.name in engine.faults
        ]

        plan.limits = changed_paths(_dump(old.limits), _dump(new.limits), "limits")
        plan.seed = new.seed is not None and new.seed != old.seed
        for section in RESTART_SECTIONS:
            plan.restart_needed += changed_paths(
                _dump(getattr(running, section)), _dump(getattr(new, section)), section
            )
        return plan

    @staticmethod
    def _listener_changed(old: Listener, new: Listener, plan: Plan) -> bool:
        """A Kafka listener is replaced when its upstream changes too: its broker
        listeners copy the upstream's settings when they open."""
        if _dump(old) != _dump(new):
            return True
        return new.protocol == "kafka" and new.upstream in plan.upstreams.changed

    def _prepare(self, new: Config, plan: Plan) -> _Prepared:
        assert self.path is not None
        proxy = self.app.proxy
        problems: list[Problem] = []
        clusters: dict[str, Cluster] = {}
        timeout = proxy.config.timeouts.connect  # timeouts need a restart
        for i, up in enumerate(new.upstreams):
            if up.name in plan.upstreams.added or up.name in plan.upstreams.changed:
                try:
                    clusters[up.name] = Cluster(up, connect_timeout=timeout)
                except (OSError, ssl.SSLError, ValueError) as exc:
                    problems.append((f"upstreams[{i}].tls", str(exc)))
        lookup = {**proxy.clusters, **clusters}
        runtimes: dict[str, ListenerRuntime] = {}
        for i, cfg in enumerate(new.listeners):
            if cfg.name in plan.listeners.added or cfg.name in plan.listeners.changed:
                try:
                    runtimes[cfg.name] = ListenerRuntime(proxy, cfg, lookup)
                except (OSError, ssl.SSLError, ValueError) as exc:
                    problems.append((f"listeners[{i}].tls", str(exc)))
        if problems:
            raise _invalid(problems, self.path)
        return _Prepared(clusters, runtimes)

    # -- 2. bind, 3. commit ----------------------------------------------------------------
    async def _apply(self, new: Config, plan: Plan, prepared: _Prepared) -> None:
        proxy = self.app.proxy
        directory = ListenerDirectory(proxy)
        going = plan.listeners.removed + plan.listeners.changed
        old_runtimes = {n: proxy.listeners[n] for n in going if n in proxy.listeners}
        closing = [lst for n in going for lst in directory.family(n)]
        serving = [lst for lst in closing if lst.enabled and lst.server is not None]
        for lst in closing:
            lst.stop_accepting()  # connections stay; a replacement may take the port
        started: list[ListenerRuntime] = []
        try:
            for name, lst in prepared.runtimes.items():
                old = old_runtimes.get(name)
                if (
                    old is not None
                    and old.address is not None
                    and lst.config.listen.port == 0
                    and lst.config.listen.host == old.config.listen.host
                ):
                    lst.address = old.address  # port 0 keeps the port it was given
                if lst.enabled:
                    await lst.start()
                    started.append(lst)
        except OSError as exc:
            for lst in started:
                lst.stop_accepting()
            for lst in serving:
                try:
                    await lst.start()
                except OSError as again:  # taken meanwhile: say so, the rest is back
                    log.error("reload rollback: %s", again)
            raise Rejected("failed", str(exc), [str(exc)]) from None

        # Commit: from here on nothing raises on a valid plan.
        running = proxy.config
        for name in going:
            directory.retire(name)
        for name in plan.upstreams.removed:
            proxy.clusters.pop(name, None)
        new_up = {u.name: u for u in new.upstreams}
        running.upstreams[:] = [
            new_up.get(u.name, u) for u in running.upstreams if u.name not in plan.upstreams.removed
        ]
        for name in plan.upstreams.changed:
            proxy.clusters[name].reconfigure(prepared.clusters[name])
        for name in plan.upstreams.added:
            running.upstreams.append(new_up[name])
            proxy.clusters[name] = prepared.clusters[name]
        for lst in prepared.runtimes.values():
            try:
                await directory.install(lst)
            except OSError as exc:  # a Kafka listener's pinned broker port in use
                log.error("reload: listener %s: %s", lst.name, exc)
        self._apply_limits(new)
        self._apply_faults(new, plan)
        if plan.seed:
            assert new.seed is not None
            self.app.faults.reseed(new.seed)
            running.seed = new.seed
        self.file = new

    def _apply_limits(self, new: Config) -> None:
        """New connections read `config.limits` as they start; the caps that are the
        whole proxy's (connections, memory) apply from now."""
        proxy = self.app.proxy
        if _dump(proxy.config.limits) == _dump(new.limits):
            return
        proxy.config.limits = new.limits
        caps = proxy.conn_limits
        caps.max_connections = new.limits.max_connections
        caps.explicit = "max_connections" in new.limits.model_fields_set
        caps.admin_reserve = new.limits.admin_reserve
        fdlimits.fit_at_start(caps)
        proxy.memory.budget = new.limits.memory

    def _apply_faults(self, new: Config, plan: Plan) -> None:
        engine = self.app.faults
        specs = {f.name: f for f in new.faults}
        for name in plan.faults.removed:
            engine.remove(name)
        for name in plan.faults.changed:
            engine.update(name, specs[name])
        for name in plan.faults.added:
            engine.add(specs[name])
        self.app.config.faults[:] = new.faults  # the effective config's (API faults: /faults)
