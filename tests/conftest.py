"""Shared test setup: hypothesis profiles and external-tool requirements."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# CI-sized by default; HYPOTHESIS_PROFILE=deep for long fuzzing runs.
settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "deep",
    max_examples=5000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("dev", max_examples=20, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
