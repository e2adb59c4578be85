"""Shared test setup: hypothesis profiles and external-tool requirements."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# CI-sized by default; HYPOTHESIS_PROFILE=deep for long fuzzing runs.
# ci is derandomized: every run draws the same examples, so a CI failure fails
# again on any checkout, and a red CI never depends on the day's dice (nor on a
# local .hypothesis database, hence database=None). deep explores at random
# instead; print_blob gives the @reproduce_failure line for what it finds.
settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "deep",
    max_examples=5000,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("dev", max_examples=20, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
