"""Hypothesis settings for the hostile-input tests.

``ci`` (the default) keeps the whole fuzz suite well under a minute: a modest number of examples
per reader, no deadline (a loaded CI machine must not turn slowness into a failure), derandomised
so a red run can be repeated exactly. ``deep`` is for a local hunt: ``HYPOTHESIS_PROFILE=deep``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=120,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "deep",
    max_examples=3000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
