"""The hypothesis loop of `protoproxy fuzz`: draw, run through the proxy, shrink, record.

The runner knows no protocol. Each example runs `driver.execute(case, via)`
then `driver.probe(via)`; an `OracleFailure` is re-raised (as a per-oracle
subclass, so hypothesis keeps shrinking towards the same oracle) and the last
failing case seen is kept: hypothesis re-runs the minimal example last, so that
one is the shrunk case written to OUT/failures/.
"""

from __future__ import annotations

import socket
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis.errors import Flaky

from .driver import Case, Observation, Options, OracleFailure, Target
from .progress import Progress
from .replay import Failure, write_failure

#: examples in one hypothesis run when a --seconds budget slices the work
CHUNK = 200
#: the first round under --seconds, before the case rate is known
FIRST_TIMED_CHUNK = 20
#: --max-examples when neither it nor --seconds is given
DEFAULT_MAX_EXAMPLES = 1000
#: the stateful machine's share of the example budget
STATEFUL_SHARE = 0.25


class Unreachable(Exception):
    """The target does not accept a connection at the start: a usage error (exit 2)."""


class _Stop(Exception):
    """Internal: the time budget ran out inside a round."""


_FAILED: dict[str, type[OracleFailure]] = {}


def _failed_type(oracle: str) -> type[OracleFailure]:
    """One exception class per oracle: hypothesis tells bugs apart by type, so a
    shrink never trades a `decodes` failure for an `alive` one."""
    cls = _FAILED.get(oracle)
    if cls is None:
        cls = _FAILED[oracle] = type(f"OracleFailure_{oracle}", (OracleFailure,), {})
    return cls


def _reraise(exc: OracleFailure) -> OracleFailure:
    err = _failed_type(exc.oracle)(exc.oracle, exc.detail)
    return err


@dataclass
class RunSpec:
    """What one `protoproxy fuzz <driver>` run is asked to do."""

    driver: str
    driver_spec: str
    listener_protocol: str
    target: Target
    options: Options
    out: Path
    max_examples: int | None = None
    seconds: float | None = None
    seed: int = 0
    direct: bool = False
    keep_going: bool = False


@dataclass
class RunResult:
    """What the report shows."""

    spec: RunSpec
    via: Target
    cases: int = 0
    #: answers read and judged over all cases (a Kafka case may pipeline several)
    responses: int = 0
    elapsed_s: float = 0.0
    coverage: Counter[str] = field(default_factory=Counter)
    #: label -> the slowest response seen for it, ns
    slowest_ns: dict[str, int] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    rounds: int = 0
    stateful_cases: int = 0
    proxy: dict[str, float] = field(default_factory=dict)

    @property
    def cases_per_s(self) -> float:
        return self.cases / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def responses_per_s(self) -> float:
        return self.responses / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def slowest(self, n: int = 10) -> list[tuple[str, int]]:
        return sorted(self.slowest_ns.items(), key=lambda kv: -kv[1])[:n]


def check_reachable(target: Target, timeout: float = 5.0) -> None:
    try:
        with socket.create_connection((target.host, target.port), timeout=timeout):
            pass
    except OSError as exc:
        raise Unreachable(f"cannot reach {target}: {exc.strerror or exc}") from exc


def _settings(max_examples: int) -> settings:
    return settings(
        database=None,
        deadline=None,
        max_examples=max(1, max_examples),
        derandomize=False,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
        ],
        report_multiple_bugs=False,
        phases=[Phase.generate, Phase.shrink],
        print_blob=False,
    )


def round_seed(seed: int, n: int) -> int:
    """Round n's seed: reproducible from --seed, different per round."""
    return (seed * 1_000_003 + n) % (1 << 64)


class Runner:
    """Runs one `RunSpec` with a built driver, sending to `via`."""

    def __init__(
        self, spec: RunSpec, driver: Any, via: Target, progress: Progress | None = None
    ) -> None:
        self.spec = spec
        self.driver = driver
        self.via = via
        self.progress = progress if progress is not None else Progress("quiet")
        self.result = RunResult(spec, via)
        self._t0 = 0.0
        self._known: set[tuple[str, str]] = set()
        self._last: tuple[Case, OracleFailure] | None = None

    # -- one example -------------------------------------------------------

    def _over_time(self) -> bool:
        s = self.spec.seconds
        return s is not None and time.monotonic() - self._t0 >= s

    def _budget_left(self) -> int | None:
        if self.spec.max_examples is None:
            return None
        return self.spec.max_examples - self.result.cases

    def observe(self, obs: Observation | None, label: str) -> None:
        """Count one case: its label's coverage and its slowest response."""
        r = self.result
        r.cases += 1
        key = obs.label if obs is not None and obs.label else label
        r.coverage[key] += 1
        if obs is not None:
            r.responses += obs.responses
        if obs is not None and obs.latency_ns > r.slowest_ns.get(key, -1):
            r.slowest_ns[key] = obs.latency_ns
        self._tick()

    def _tick(self) -> None:
        r = self.result
        elapsed = time.monotonic() - self._t0
        if self.spec.seconds is not None:
            frac = elapsed / self.spec.seconds if self.spec.seconds else 1.0
        else:
            frac = r.cases / max(1, self.spec.max_examples or DEFAULT_MAX_EXAMPLES)
        self.progress.update(r.cases, len(r.failures), len(r.coverage), elapsed, frac)

    def run_case(self, case: Case) -> None:
        """Execute and probe one case; raise the per-oracle failure for hypothesis."""
        obs: Observation | None = None
        try:
            try:
                obs = self.driver.execute(case, self.via)
                self.driver.probe(self.via)
            except OSError as exc:  # a driver that let a socket error out: the target is gone
                raise OracleFailure("alive", f"{type(exc).__name__}: {exc}") from exc
        except OracleFailure as exc:
            self.observe(obs, case.label)
            key = (exc.oracle, case.label)
            if self.spec.keep_going and key in self._known:
                return  # already written: look for other bugs
            self._last = (case, exc)
            raise _reraise(exc) from exc
        self.observe(obs, case.label)

    # -- rounds ------------------------------------------------------------

    def _record(self, seed: int, stateful: bool, flaky: bool) -> Failure | None:
        if self._last is None:
            return None
        case, exc = self._last
        self._last = None
        self._known.add((exc.oracle, case.label))
        s = self.spec
        failure = Failure(
            driver=s.driver,
            driver_spec=s.driver_spec,
            listener_protocol=s.listener_protocol,
            target=str(s.target),
            direct=s.direct,
            options=s.options,
            seed=seed,
            oracle=exc.oracle,
            detail=exc.detail,
            case=case,
            stateful=stateful,
            flaky=flaky,
        )
        path = write_failure(s.out, failure)
        self.result.failures.append(failure)
        self.progress.note(f"fuzz: {exc.oracle} failed on {case.label}: {exc.detail} -> {path}")
        return failure

    def _hypothesis(self, fn: Callable[[], None], seed: int, stateful: bool) -> Failure | None:
        """Run one hypothesis test; a failure (shrunk) is written and returned."""
        try:
            fn()
        except _Stop:
            return None
        except Flaky:
            return self._record(seed, stateful, flaky=True)
        except OracleFailure:
            return self._record(seed, stateful, flaky=False)
        return None

    def _round(self, n: int, examples: int) -> Failure | None:
        seed = round_seed(self.spec.seed, n)
        strategy = self.driver.strategy()

        @hypothesis_seed(seed)
        @_settings(examples)
        @given(strategy)
        def test(case: Case) -> None:
            if self._last is None and (self._over_time() or self._budget_exhausted()):
                return  # the rest of the round draws but sends nothing (shrinks still run)
            self.run_case(case)

        return self._hypothesis(test, seed, stateful=False)

    def _timed_chunk(self) -> int:
        """A round's size under --seconds: what the rate so far fits in the time left.

        A hypothesis run cannot be cut short without counting as a failure, and
        past the deadline it still draws (sending nothing) to the end of its
        round; drawing is most of a case's cost, so a fixed 200-case round
        overran a 60 s budget by seconds. The first round is small to learn the rate.
        """
        assert self.spec.seconds is not None
        elapsed = time.monotonic() - self._t0
        if self.result.cases == 0 or elapsed <= 0:
            return FIRST_TIMED_CHUNK
        rate = self.result.cases / elapsed
        left = self.spec.seconds - elapsed
        return max(1, min(CHUNK, int(rate * left) + 1))

    def _budget_exhausted(self) -> bool:
        left = self._budget_left()
        return left is not None and left <= 0

    def _stateful_round(self, n: int, examples: int) -> Failure | None:
        factory = getattr(self.driver, "state_machine", None)
        if factory is None or not self.spec.options.stateful:
            return None
        machine = factory(self.via)
        if machine is None:
            return None
        runner = self
        seed = round_seed(self.spec.seed, 10_000 + n)
        holder: dict[str, Any] = {}

        class Captured(machine):  # type: ignore[misc, valid-type]
            """Remembers the last instance: hypothesis replays the minimal run last."""

            def __init__(self) -> None:
                super().__init__()
                holder["last"] = self

            def teardown(self) -> None:
                case = getattr(self, "case", None)
                if case is not None:
                    runner.result.stateful_cases += 1
                    runner.observe(None, case.label)
                super().teardown()

        from hypothesis import stateful as hs

        get_test = getattr(hs, "get_state_machine_test", None)

        def run() -> None:
            try:
                if get_test is not None:
                    test = get_test(Captured, settings=_settings(examples))
                    hypothesis_seed(seed)(test)
                    test()
                else:
                    hs.run_state_machine_as_test(Captured, settings=_settings(examples))
            except OracleFailure as exc:
                last = holder.get("last")
                case = getattr(last, "case", None)
                if case is not None:
                    self._last = (case, exc)
                raise

        return self._hypothesis(run, seed, stateful=True)

    def run(self) -> RunResult:
        s = self.spec
        self._t0 = time.monotonic()
        budget = s.max_examples
        if budget is None and s.seconds is None:
            budget = s.max_examples = DEFAULT_MAX_EXAMPLES
        n = 0
        prepare = getattr(self.driver, "prepare", None)
        if prepare is not None:
            # A driver whose strategy depends on the target (Kafka: what ApiVersions
            # advertises) learns it here, before the first draw.
            try:
                prepare(self.via)
            except OSError as exc:
                raise Unreachable(f"cannot prepare against {self.via}: {exc}") from exc
        # A driver may have a machine for some targets only (Kafka: one that
        # speaks every API its steps use): otherwise the whole budget is plain.
        factory = getattr(self.driver, "state_machine", None)
        has_machine = s.options.stateful and factory is not None and factory(self.via) is not None
        try:
            while True:
                left = self._budget_left()
                if (left is not None and left <= 0) or self._over_time():
                    break
                chunk = self._timed_chunk() if s.seconds is not None else (left or CHUNK)
                if left is not None:
                    chunk = min(chunk, left)
                plain = chunk
                if has_machine:
                    plain = max(1, int(chunk * (1 - STATEFUL_SHARE)))
                before = self.result.cases
                found = self._round(n, plain)
                if found is None and has_machine and not self._over_time():
                    found = self._stateful_round(n, max(1, chunk - plain))
                self.result.rounds += 1
                n += 1
                if found is not None and not s.keep_going:
                    break
                if found is None and (s.seconds is None or self.result.cases == before):
                    break  # the example budget is spent, or the strategy is exhausted
        finally:
            self.result.elapsed_s = time.monotonic() - self._t0
            self.progress.finish()
        return self.result
