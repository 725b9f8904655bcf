"""The benchmark instance library: named, seeded instances generated from ``benchmarks/suites.toml``."""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from formulations.assignment import PlanningProblem
from formulations.errors import InputError

DEFAULT_SUITES = Path(__file__).resolve().parents[2] / "benchmarks" / "suites.toml"
CAPACITY_FACTORS = {"default": 1.0, "tight": 0.5, "loose": 3.0}


@dataclass(frozen=True)
class InstanceSpec:
    """How to generate one instance (see the comments in ``benchmarks/suites.toml``)."""

    name: str
    customers: int
    seed: int = 1
    budget: str | float = "binding"
    capacity: str = "default"
    max_contacts: int = 2
    min_gap_days: int = 2
    ineligible: float = 0.0
    dtype: str = "float32"

    def build(self) -> PlanningProblem:
        """Generate the problem (deterministic for a given spec)."""
        from optimizer.generate import capacity_for, default_budget, generate_problem

        dtype = {"float32": np.float32, "float64": np.float64}[self.dtype]
        if self.budget == "binding":
            budget = default_budget(self.customers)
        elif self.budget == "slack":
            budget = 10 * default_budget(self.customers)
        elif self.budget == "none":
            budget = None
        else:
            budget = float(self.budget)
        inst = generate_problem(self.customers, self.seed, budget=budget, max_contacts=self.max_contacts,
                                min_gap_days=self.min_gap_days, dtype=dtype)
        problem = inst.problem
        changes: dict = {}
        if self.capacity != "default":
            changes["capacity"] = np.floor(capacity_for(self.customers) * CAPACITY_FACTORS[self.capacity])
        if self.ineligible > 0:
            rng = np.random.default_rng([self.seed, 99])
            changes["eligible"] = rng.random((self.customers, problem.n_channels)) >= self.ineligible
        return problem.replace(**changes) if changes else problem

    def to_dict(self) -> dict:
        return asdict(self)


def load_library(path: str | Path | None = None) -> tuple[dict[str, InstanceSpec], dict[str, dict]]:
    """(instances by name, suites by name) from a suites TOML file."""
    p = Path(path) if path is not None else DEFAULT_SUITES
    if not p.exists():
        raise InputError("--suites", f"file {str(p)!r} does not exist")
    try:
        raw = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise InputError("--suites", f"{p}: {exc}") from None
    instances = {}
    for name, spec in raw.get("instance", {}).items():
        try:
            instances[name] = InstanceSpec(name=name, **spec)
        except TypeError as exc:
            raise InputError("--suites", f"instance {name!r}: {exc}") from None
        if instances[name].capacity not in CAPACITY_FACTORS:
            raise InputError("--suites", f"instance {name!r}: capacity must be one of {', '.join(CAPACITY_FACTORS)}")
    suites = raw.get("suite", {})
    for sname, suite in suites.items():
        missing = [i for i in suite.get("instances", []) if i not in instances]
        if missing:
            raise InputError("--suites", f"suite {sname!r} lists unknown instance(s) {', '.join(missing)}")
    return instances, suites


def suite_instances(suite: str, path: str | Path | None = None) -> list[InstanceSpec]:
    instances, suites = load_library(path)
    if suite not in suites:
        raise InputError("--suite", f"expected one of {', '.join(suites)}, got {suite!r}")
    return [instances[name] for name in suites[suite]["instances"]]


def get_instance(name: str, path: str | Path | None = None) -> InstanceSpec:
    instances, _ = load_library(path)
    if name not in instances:
        raise InputError("instance", f"expected one of {', '.join(sorted(instances))}, got {name!r}")
    return instances[name]
