"""Shared pytest fixtures."""

from __future__ import annotations

import pytest

from formulations.assignment import PlanningProblem
from tests.weekly_helpers import random_problem


@pytest.fixture
def small_problem() -> PlanningProblem:
    return random_problem(0)
