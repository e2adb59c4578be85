"""`protoproxy fuzz kafka|grpc|http2 --target HOST:PORT` and `protoproxy fuzz --replay FILE`.

Registered as the ``fuzz`` entry point of ``protoproxy.commands``. One subcommand
per driver in `registry.DRIVERS` at the time the parser is built: a test or
plugin adds its own with `registry.register(name, "module:Class", protocol)`.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import registry
from .driver import Options, OracleFailure, Target


def _target(text: str) -> Target:
    try:
        return Target.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--target ")) from exc


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from exc
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: want at least 1")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from exc
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: want more than 0")
    return value


def _seed(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from exc


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", type=_target, required=True, help="HOST:PORT of your server")
    p.add_argument("--out", type=Path, default=Path("fuzz-out"), help="report folder")
    p.add_argument(
        "--max-examples",
        type=_positive_int,
        default=None,
        help="cases to run (default 1000 when --seconds is not given either)",
    )
    p.add_argument("--seconds", type=_positive_float, default=None, help="time budget")
    p.add_argument("--seed", type=_seed, default=None, help="seed (default: random, printed)")
    p.add_argument(
        "--deadline", type=_positive_float, default=5.0, help="seconds a response may take"
    )
    p.add_argument(
        "--allow-status",
        action="append",
        default=[],
        metavar="STATUS[,STATUS]",
        help="a server error status to accept (repeatable)",
    )
    p.add_argument("--direct", action="store_true", help="send to the target, not via the proxy")
    p.add_argument(
        "--keep-going", action="store_true", help="after a failure, look for different ones"
    )
    p.add_argument("--no-stateful", action="store_true", help="skip the driver's state machine")
    p.add_argument("--progress", action="store_true", help="draw the progress bar even off a tty")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")


def _split(values: list[str]) -> tuple[str, ...]:
    return tuple(v.strip() for item in values for v in item.split(",") if v.strip())


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "fuzz",
        help="fuzz your server through the proxy (kafka, grpc, http2), or replay a failure",
    )
    p.add_argument("--replay", type=Path, metavar="FILE", help="re-run a failures/NNNN.json")
    p.add_argument(
        "--target",
        dest="replay_target",
        type=_target,
        default=None,
        help="with --replay: send to this HOST:PORT instead of the file's",
    )
    p.add_argument("--quiet", dest="replay_quiet", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=run, fuzz_driver=None, _fuzz_parser=p)
    drivers = p.add_subparsers(dest="fuzz_driver", metavar="{" + ",".join(registry.DRIVERS) + "}")
    for name in registry.DRIVERS:
        d = drivers.add_parser(name, help=f"fuzz a {name} server")
        _common(d)
        if name == "kafka":
            d.add_argument(
                "--api", action="append", default=[], help="API names to fuzz: Produce,Metadata"
            )
        if name == "grpc":
            d.add_argument(
                "--proto", action="append", default=[], help="a .proto file (repeatable)"
            )
            d.add_argument(
                "-I", "--import-path", action="append", default=[], help="proto import folder"
            )
            d.add_argument("--method", default=None, help="only this pkg.Service/Method")
        d.set_defaults(func=run, _fuzz_parser=d)


def _options(args: argparse.Namespace) -> Options:
    return Options(
        deadline_s=args.deadline,
        allow_status=frozenset(_split(args.allow_status)),
        api=_split(getattr(args, "api", [])),
        proto=tuple(getattr(args, "proto", [])),
        import_paths=tuple(getattr(args, "import_path", [])),
        method=getattr(args, "method", None),
        stateful=not args.no_stateful,
    )


@contextlib.contextmanager
def _via(protocol: str, target: Target, direct: bool) -> Iterator[tuple[Target, Any]]:
    """The proxy in front of `target` (or none under --direct)."""
    if direct:
        yield target, None
        return
    from .front import Front

    with Front(protocol, target) as front:
        yield front.via, front


def _usage(args: argparse.Namespace, message: str) -> int:
    parser = getattr(args, "_fuzz_parser", None)
    prog = parser.prog if parser is not None else "protoproxy fuzz"
    print(f"{prog}: error: {message}", file=sys.stderr)
    return 2


def _build(args: argparse.Namespace, spec: str, options: Options) -> Any:
    cls = registry.load(spec)
    return cls(options)


def run(args: argparse.Namespace) -> int:
    if args.replay is not None:
        if args.fuzz_driver is not None:
            return _usage(args, "--replay takes no subcommand (use --target to redirect)")
        return replay(args)
    if args.fuzz_driver is None:
        return _usage(args, "name a protocol (kafka, grpc, http2) or give --replay FILE")
    return fuzz(args)


def fuzz(args: argparse.Namespace) -> int:
    from .progress import Progress

    name = args.fuzz_driver
    spec = registry.DRIVERS[name]
    options = _options(args)
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "big")
    try:
        driver = _build(args, spec, options)
    except registry.DriverMissing as exc:
        return _usage(args, f"{name}: {exc}")
    except (ValueError, OSError) as exc:
        return _usage(args, f"{name}: {exc}")
    protocol = registry.listener_protocol(name, type(driver))
    progress = Progress.choose(args.progress, args.quiet)
    with _quiet_proxy(args.quiet):
        return _run_driver(args, name, spec, options, seed, driver, protocol, progress)


@contextlib.contextmanager
def _quiet_proxy(quiet: bool) -> Iterator[None]:
    """--quiet: the in-process proxy's connection warnings (a case that ends one,
    the shutdown) stay out of stderr; the report has the counts. Restored after,
    as tests call `main` in their own process."""
    logger = logging.getLogger("protoproxy")
    level = logger.level
    if quiet:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _run_driver(
    args: argparse.Namespace,
    name: str,
    spec: str,
    options: Options,
    seed: int,
    driver: Any,
    protocol: str,
    progress: Any,
) -> int:
    from .report import write_reports
    from .runner import Runner, RunSpec, Unreachable, check_reachable

    try:
        check_reachable(args.target)
        if not args.quiet:
            print(f"fuzz {name}: target {args.target}, seed {seed}", file=sys.stderr)
        with _via(protocol, args.target, args.direct) as (via, front):
            run_spec = RunSpec(
                driver=name,
                driver_spec=spec,
                listener_protocol=protocol,
                target=args.target,
                options=options,
                out=args.out,
                max_examples=args.max_examples,
                seconds=args.seconds,
                seed=seed,
                direct=args.direct,
                keep_going=args.keep_going,
            )
            try:
                result = Runner(run_spec, driver, via, progress).run()
            finally:
                driver.close()  # its connections end before the proxy does
            if front is not None:
                result.proxy = front.stats()
    except Unreachable as exc:
        return _usage(args, str(exc))
    finally:
        driver.close()
    paths = write_reports(args.out, result)
    print(
        f"fuzz {name}: {result.cases} cases in {result.elapsed_s:.1f}s "
        f"({result.cases_per_s:.0f}/s), {len(result.coverage)} labels, "
        f"{len(result.failures)} failures; report {paths['html']}",
        file=sys.stderr,
    )
    for f in result.failures:
        print(f"  {f.oracle} on {f.case.label}: {f.detail} -> {f.file}", file=sys.stderr)
    return 1 if result.failures else 0


def replay(args: argparse.Namespace) -> int:
    from .replay import read_failure
    from .runner import Unreachable, check_reachable

    try:
        failure = read_failure(args.replay)
    except (OSError, ValueError, KeyError) as exc:
        return _usage(args, f"--replay {args.replay}: {exc}")
    target = args.replay_target or Target.parse(failure.target)
    if failure.driver not in registry.DRIVERS:
        registry.register(failure.driver, failure.driver_spec, failure.listener_protocol)
    try:
        driver = _build(args, failure.driver_spec, failure.options)
    except (registry.DriverMissing, ValueError, OSError) as exc:
        return _usage(args, f"--replay {args.replay}: {exc}")
    try:
        check_reachable(target)
        with _via(failure.listener_protocol, target, failure.direct) as (via, _front):
            try:
                try:
                    driver.execute(failure.case, via)
                    driver.probe(via)
                finally:
                    driver.close()  # its connections end before the proxy does
            except OracleFailure as exc:
                print(
                    f"replay {args.replay}: still fails: {exc.oracle}: {exc.detail}",
                    file=sys.stderr,
                )
                return 1
            except OSError as exc:
                print(f"replay {args.replay}: still fails: alive: {exc}", file=sys.stderr)
                return 1
    except Unreachable as exc:
        return _usage(args, str(exc))
    finally:
        driver.close()
    print(
        f"replay {args.replay}: no longer fails ({failure.oracle} on {failure.case.label})",
        file=sys.stderr,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m protoproxy.fuzz.cli ...`, same as `protoproxy fuzz ...`."""
    parser = argparse.ArgumentParser(prog="protoproxy")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
