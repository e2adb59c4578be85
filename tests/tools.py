"""External tools in tests: skip on a user's machine, fail under CI=true.

CI must never go green by skipping, so a missing tool there is an error.
"""

from __future__ import annotations

import os
import shutil

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_tool(name: str) -> str:
    """Return the path of an executable, or skip (fail under CI) if it is missing."""
    path = shutil.which(name)
    if path:
        return path
    reason = f"external tool {name!r} is not installed (see .ci/run for how CI installs it)"
    if in_ci():
        pytest.fail(reason + "; CI=true forbids skipping", pytrace=False)
    pytest.skip(reason)
    raise AssertionError("unreachable")


def require_tshark() -> str:
    """tshark for the decode agreement tests: skip when missing, fail under CI=true."""
    return require_tool("tshark")
