"""Load shapes as a pure function of elapsed time, so they are testable without importing Locust.

    constant  `users` from the start to the end
    step      `users` reached in STEPS equal steps, one every duration/STEPS seconds
    ramp      linear from 1 user to `users` over the first RAMP_FRACTION of the duration, then held

`load/locustfile.py` turns this into a Locust `LoadTestShape` for step and ramp.
"""

from __future__ import annotations

import math

SHAPES = ("constant", "step", "ramp")
STEPS = 4
# The last part of a ramp holds the peak, so the peak is measured, not only touched.
RAMP_FRACTION = 0.75


def target_users(shape: str, elapsed_s: float, users: int, duration_s: float) -> int | None:
    """The user count wanted `elapsed_s` into the run, or None once the run is over."""
    if shape not in SHAPES:
        raise ValueError(f"unknown load shape {shape!r} (choose from {', '.join(SHAPES)})")
    if elapsed_s >= duration_s:
        return None
    if shape == "constant":
        return users
    if shape == "step":
        step = min(int(elapsed_s // (duration_s / STEPS)) + 1, STEPS)
        return max(1, math.ceil(users * step / STEPS))
    ramp_s = duration_s * RAMP_FRACTION
    return max(1, min(users, math.ceil(users * elapsed_s / ramp_s)))
