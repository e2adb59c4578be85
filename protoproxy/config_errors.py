"""How a config mistake is worded, wherever the config came from.

The same entry can reach the proxy from the config file, from ``POST
/faults`` or ``POST /listeners``, and from a testbed scenario; a user who
pastes an entry from one into another must get the same sentence for the
same mistake. So pydantic's errors are turned into ``path: message`` in
this one module, and everything that validates config models calls it.

A path is ``faults[2].schedule.between[0]``: dots between keys, brackets
for list positions, and pydantic's names for validator wrappers left out.
`root` is where the validated mapping sits in a larger document
(``faults[2]`` for a scenario's third fault; empty for a request body,
whose paths start at its own keys).
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

#: a problem: (path into the config, what is wrong there); the path may be empty
Problem = tuple[str, str]

#: pydantic message prefixes that say nothing a reader needs
_PREFIXES = ("Value error, ", "Assertion failed, ")
#: pydantic error types whose own message is worded for programmers
_MESSAGES = {
    "extra_forbidden": "unknown key (not allowed here)",
    "missing": "is required",
}


class ConfigError(Exception):
    """A config that cannot be used; `problems` are ``(path, message)`` pairs."""

    def __init__(self, problems: list[Problem], source: str = "") -> None:
        self.problems = problems
        self.source = source
        lines = [format_problem(path, msg) for path, msg in problems]
        head = f"{source}: " if source else ""
        super().__init__(
            head + ("; ".join(lines) if len(lines) == 1 else "\n  " + "\n  ".join(lines))
        )


def join_path(root: str, path: str) -> str:
    """`path` below `root`: ``faults[1]`` + ``match.api`` or ``[0]``."""
    if not root or not path:
        return root or path
    return root + path if path.startswith("[") else f"{root}.{path}"


def loc_path(loc: tuple[int | str, ...]) -> str:
    """A pydantic error location as a config path."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif str(part).startswith(("function-", "function_")):
            continue  # pydantic's name for a BeforeValidator wrapper
        else:
            out += f".{part}" if out else str(part)
    return out


def error_message(err: dict[str, Any]) -> str:
    """A pydantic error's message, as the user should read it."""
    fixed = _MESSAGES.get(err["type"])
    if fixed is not None:
        return fixed
    msg = str(err["msg"])
    for prefix in _PREFIXES:
        msg = msg.removeprefix(prefix)
    return msg


def problems_of(exc: ValidationError, root: str = "") -> list[Problem]:
    """Every error in `exc` as a (path, message) pair, paths under `root`."""
    return [(join_path(root, loc_path(e["loc"])), error_message(e)) for e in exc.errors()]


def format_problem(path: str, message: str) -> str:
    """One problem as a line: ``path: message``, or the message alone at the top."""
    return f"{path}: {message}" if path else message


def format_errors(exc: ValidationError, root: str = "") -> list[str]:
    """Every error in `exc` as a ``path: message`` line (what the admin API answers)."""
    return [format_problem(path, msg) for path, msg in problems_of(exc, root)]
