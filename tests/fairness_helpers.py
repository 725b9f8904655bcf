"""An instance whose unconstrained optimum is unfair (segment 0 loves the scarce channel)."""

from __future__ import annotations

import numpy as np

from tests.weekly_helpers import random_problem


def unfair_problem(seed: int = 1, n: int = 300, **fairness):
    base = random_problem(seed, n=n, T=5, K=2, gap=1)
    u = base.utility.copy()
    seg = np.arange(n) % 3
    u[seg == 0, 1, :] += 2.5           # segment 0 values channel 1 much more
    fairness.setdefault("segment", np.array(["north", "south", "west"])[seg])
    return base.replace(utility=u, **fairness)
