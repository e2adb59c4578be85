"""The `protoproxy` command: run, check, and subcommands found through entry points."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import sys
from collections.abc import Callable
from importlib.metadata import entry_points

from . import config as config_mod
from .proxy import install_uvloop

ENTRY_POINT_GROUP = "protoproxy.commands"


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def admin_token(value: str | None) -> str | None:
    """``--admin-token``: ``auto`` makes a fresh random token, anything else is the token."""
    if value == "auto":
        return secrets.token_urlsafe(32)
    return value


def announce_token(token: str) -> None:
    """The one place a generated token is shown: stderr, never a log record (the
    log redactor would scrub it there; it must not reach log files anyway)."""
    print(f"admin token: {token}", file=sys.stderr, flush=True)


def _load_checked(
    path: str, files_prefix: str, token: str | None = None
) -> config_mod.Config | None:
    """The config at `path`, with the files it names checked; None once the reason is
    on stderr (`files_prefix` leads a file problem's report: `check` reports them bare)."""
    try:
        cfg = config_mod.load(path, admin_token=token)
    except config_mod.ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None
    problems = config_mod.check_files(cfg)
    if problems:
        print(f"{files_prefix}{config_mod.ConfigError(problems, path)}", file=sys.stderr)
        return None
    return cfg


def cmd_check(args: argparse.Namespace) -> int:
    cfg = _load_checked(args.config, "")
    if cfg is None:
        return 2
    print(
        f"{args.config}: OK ({len(cfg.listeners)} listeners, {len(cfg.upstreams)} upstreams, "
        f"{len(cfg.faults)} faults)"
    )
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    token = admin_token(args.admin_token)
    cfg = _load_checked(args.config, "error: ", token)
    if cfg is None:
        return 2
    if args.admin_token == "auto" and token is not None and cfg.admin.enabled:
        announce_token(token)
    install_uvloop()
    from .admin.server import AdminSecurityError
    from .app import App

    try:
        asyncio.run(App(cfg, args.config, token).serve_forever())
    except AdminSecurityError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def add_admin_token_flag(parser: argparse.ArgumentParser) -> None:
    """``--admin-token auto|TOKEN``, shared by `run` and plugin commands (testbed)."""
    parser.add_argument(
        "--admin-token",
        metavar="auto|TOKEN",
        default=None,
        help="require this bearer token on the admin API (replaces admin.token); "
        "'auto' generates one and prints it on stderr. A literal TOKEN is visible "
        "to other local users in the process list: prefer auto or the config file",
    )


def _plugin_commands() -> dict[str, Callable[[argparse._SubParsersAction], None]]:
    found = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found[ep.name] = ep.load
    return found  # type: ignore[return-value]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="protoproxy",
        description="A protocol-analysis proxy for Kafka, gRPC/HTTP2, HTTP/1.1 and TCP.",
    )
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="run the proxy from a config file")
    p_run.add_argument("config")
    add_admin_token_flag(p_run)
    p_run.set_defaults(func=cmd_run)
    p_check = sub.add_parser("check", help="validate a config file and exit")
    p_check.add_argument("config")
    p_check.set_defaults(func=cmd_check)
    for _name, loader in sorted(_plugin_commands().items()):
        register = loader()
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.log_level)
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:
        # The reader stopped reading (`protoproxy decode x.pcap | head`): that is
        # not an error of ours. Point stdout at devnull so the exit flush is quiet.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
