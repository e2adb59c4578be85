"""The hypothesis profiles of tests/conftest.py: CI draws the same examples every
run (a failure reproduces), and HYPOTHESIS_PROFILE=deep still selects the long run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]


def _drawn(profile: str) -> list[bytes]:
    seen: list[bytes] = []

    @settings(settings.get_profile(profile), max_examples=30)
    @given(st.binary(max_size=64))
    def record(data: bytes) -> None:
        seen.append(data)

    record()
    return seen


def test_the_ci_profile_draws_the_same_examples_every_run() -> None:
    assert _drawn("ci") == _drawn("ci")
    assert settings.get_profile("ci").database is None


def test_the_profile_follows_hypothesis_profile() -> None:
    code = "import tests.conftest; from hypothesis import settings; print(settings().max_examples)"
    for profile, examples in (("deep", "5000"), ("ci", "60")):
        env = {**os.environ, "HYPOTHESIS_PROFILE": profile}
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert out.stdout.strip() == examples, out.stderr
