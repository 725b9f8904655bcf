"""Per-component latency histograms, counters and gauges in Prometheus text format (no client library)."""

from __future__ import annotations

import bisect
from collections import defaultdict

import numpy as np

BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
COMPONENTS = ("feat", "candidates", "score", "select", "total")


class LatencyHistogram:
    """Cumulative histogram (Prometheus buckets) + a ring buffer of recent values for quantiles."""

    def __init__(self, window: int = 10_000) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.total = 0.0
        self.n = 0
        self._ring = np.zeros(window)
        self._window = window

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.total += seconds
        self._ring[self.n % self._window] = seconds
        self.n += 1

    def quantile(self, q: float) -> float:
        k = min(self.n, self._window)
        return float(np.quantile(self._ring[:k], q)) if k else float("nan")


class Metrics:
    """All service metrics; :meth:`render` gives the ``/metrics`` text."""

    def __init__(self, budget_seconds: float) -> None:
        self.budget = float(budget_seconds)
        self.latency = {c: LatencyHistogram() for c in COMPONENTS}
        self.decisions: dict[tuple[str, str], int] = defaultdict(int)
        self.events: dict[str, int] = defaultdict(int)
        self.http_errors: dict[int, int] = defaultdict(int)
        self.gauges: dict[str, float] = {}

    def observe_decision(self, mode: str, reason: str, timings: dict[str, float]) -> None:
        self.decisions[(mode, reason)] += 1
        for c, t in timings.items():
            self.latency[c].observe(t)

    def render(self) -> str:
        out = ["# HELP contactplan_decide_latency_seconds Per-component decision latency "
               "(feat + candidates + score + select <= total).",
               "# TYPE contactplan_decide_latency_seconds histogram"]
        for c, h in self.latency.items():
            cum = 0
            for le, n in zip(BUCKETS + (float("inf"),), h.counts):
                cum += n
                label = "+Inf" if le == float("inf") else repr(le)
                out.append(f'contactplan_decide_latency_seconds_bucket{{component="{c}",le="{label}"}} {cum}')
            out.append(f'contactplan_decide_latency_seconds_sum{{component="{c}"}} {h.total:.9f}')
            out.append(f'contactplan_decide_latency_seconds_count{{component="{c}"}} {h.n}')
        out += ["# HELP contactplan_decide_latency_p95_seconds p95 over the last 10,000 decisions (SLO95).",
                "# TYPE contactplan_decide_latency_p95_seconds gauge"]
        for c, h in self.latency.items():
            if h.n:
                out.append(f'contactplan_decide_latency_p95_seconds{{component="{c}"}} {h.quantile(0.95):.9f}')
        total = self.latency["total"]
        out += ["# HELP contactplan_latency_budget_seconds The latency budget L.",
                "# TYPE contactplan_latency_budget_seconds gauge",
                f"contactplan_latency_budget_seconds {self.budget:.6f}",
                "# HELP contactplan_slo95_met 1 if the p95 in-process decision latency is within the budget.",
                "# TYPE contactplan_slo95_met gauge",
                f"contactplan_slo95_met {int(total.n > 0 and total.quantile(0.95) <= self.budget)}",
                "# HELP contactplan_decisions_total Decisions by mode and reason.",
                "# TYPE contactplan_decisions_total counter"]
        for (mode, reason), n in sorted(self.decisions.items()):
            out.append(f'contactplan_decisions_total{{mode="{mode}",reason="{reason}"}} {n}')
        out += ["# HELP contactplan_events_total Ingested events by result.", "# TYPE contactplan_events_total counter"]
        for result, n in sorted(self.events.items()):
            out.append(f'contactplan_events_total{{result="{result}"}} {n}')
        out += ["# HELP contactplan_http_client_errors_total Rejected requests by status.",
                "# TYPE contactplan_http_client_errors_total counter"]
        for status, n in sorted(self.http_errors.items()):
            out.append(f'contactplan_http_client_errors_total{{status="{status}"}} {n}')
        for name, value in sorted(self.gauges.items()):
            metric, _, label = name.partition("|")
            out.append(f"contactplan_{metric}{label} {value:.9g}")
        return "\n".join(out) + "\n"
