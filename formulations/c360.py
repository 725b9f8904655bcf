r"""Customer 360: the maths behind events → identities → weekly features → masks.

This module holds the definitions the pipeline in :mod:`optimizer.c360`
implements in SQL (DuckDB), together with small NumPy / pure-Python
reference versions that the tests compare the SQL against. It imports no
solver and nothing from :mod:`optimizer`.

Canonical events
----------------
An event is :math:`e = (i_e, t_e, k_e, s_e, h_e, v_e)`: resolved customer,
timestamp, type :math:`k_e \in` ``EVENT_TYPES`` = {digital, call, branch},
subtype (page view, complaint call, ...), channel / touchpoint (web, app,
phone, branch) and a value (call seconds, branch amount, 1 for digital).

Time grid and data latency
--------------------------
Time is measured in days from the grid start :math:`s_0` (a Monday).
Periods have length :math:`\Delta` (7 days for ``granularity="week"``, 1 for
``"day"``); period :math:`p = 0..P-1` covers :math:`[p\Delta, (p+1)\Delta)`.
With a data latency of :math:`L \ge 0` days, the features of period *p*
are computed **as of** the cut-off

.. math:: c_p = (p + 1)\Delta - L,

i.e. an event is visible in period *p* iff :math:`t_e < c_p`. Equivalently
every event enters the grid in the bucket

.. math:: b(e) = \lfloor (t_e + L) / \Delta \rfloor,

the first period whose cut-off lies after it; events with
:math:`b(e) \ge P` are not visible yet (:func:`latency_bucket`).

Features of customer *i*, period *p* and event kind *k*
------------------------------------------------------
* count :math:`x_{ipk} = |\{e : i_e = i, k_e = k, b(e) = p\}|`;
* exponentially decayed activity, with decay :math:`\lambda \in (0, 1]` per period,

  .. math:: z_{ipk} = \lambda z_{i,p-1,k} + x_{ipk}, \qquad z_{i,-1,k} = 0,

  i.e. :math:`z_{ipk} = \sum_{q \le p} \lambda^{p-q} x_{iqk}`
  (:func:`decayed_activity`). SQL evaluates the closed form as
  :math:`\lambda^{p} \sum_{q \le p} \lambda^{-q} x_{iqk}` with a running
  window sum, which is exact in real arithmetic and accurate in floating
  point while :math:`\lambda^{-P}` stays far from overflow; we require
  :math:`P \ln(1/\lambda) \le 600` (:func:`check_decay`);
* recency :math:`r_{ipk} = c_p - \max\{t_e : i_e = i, k_e = k, t_e < c_p\}`
  in days (missing when there is no such event);
* last call outcome: the subtype of the latest visible call (ties broken by
  the larger subtype string, deterministically).

Identity resolution
-------------------
Records :math:`r = 1..R` (CRM master rows) carry name, e-mail, phone,
postcode, date of birth and card number.

Blocking
    Candidate pairs are the record pairs that share at least one blocking
    key (``BLOCKING_KEYS``): normalised phone, normalised e-mail,
    last name + postcode, first name + date of birth, card number. Keys are
    normalised by :func:`normalize_phone`, :func:`normalize_email`,
    :func:`normalize_name`, :func:`normalize_postcode`. A block with more
    than ``max_block`` records (an office switchboard, a placeholder
    e-mail) is skipped and counted, so the pair count stays near-linear.

Match model
    For a candidate pair :math:`(q, r)` with comparison vector
    :math:`\varphi(q, r) \in \mathbb{R}^d` (``MATCH_FEATURES``: Jaro-Winkler
    name similarities, exact-match and missing indicators),

    .. math:: \Pr(z_{qr} = 1 \mid \varphi) = \sigma(\alpha_0 + \alpha^\top \varphi),
              \qquad \sigma(s) = 1 / (1 + e^{-s}).

    :math:`\alpha` minimises the L2-penalised logistic loss on labelled pairs

    .. math:: \ell(\alpha) = \sum_j \big[\log(1 + e^{s_j}) - y_j s_j\big]
              + \tfrac{\rho}{2}\lVert\alpha\rVert_2^2, \qquad s_j = \alpha_0 + \alpha^\top\varphi_j

    (intercept not penalised; convex, solved by L-BFGS to a gradient norm
    tolerance; :func:`logistic_loss_grad`).

Default match rule (no labels)
    Without labelled pairs (hand-written raw files) the build uses a fixed,
    hand-set score in the spirit of Fellegi–Sunter: for each identifier *f*
    (e-mail, phone, card, date of birth, postcode) an agreement adds
    :math:`a_f`, a disagreement (both present, different) adds
    :math:`d_f \le 0`, a missing value adds nothing; each name adds
    :math:`w_n(\mathrm{sim} - 0.8)`; a base :math:`b` is added once
    (``DEFAULT_MATCH_WEIGHTS``):

    .. math:: s = b + \sum_f \big(a_f\,\mathrm{eq}_f + d_f\,(1 - \mathrm{eq}_f - \mathrm{miss}_f)\big)
              + w_n \big((\mathrm{first\_sim} - 0.8) + (\mathrm{last\_sim} - 0.8)\big),

    with a swapped day/month of birth counted as a (weaker) agreement. This
    is linear in φ, so it is the match model with the coefficients of
    :func:`default_match_coefficients` and :math:`\Pr = \sigma(s)`.

Clusters
    Records are clustered by the transitive closure of the pairs with
    :math:`\Pr \ge \theta` (union-find / connected components).

Quality
    With :math:`n_{ab}` the number of records in predicted cluster *a* and
    true identity *b*, the pairwise counts are
    :math:`TP = \sum_{ab} \binom{n_{ab}}{2}`,
    :math:`|\hat P| = \sum_a \binom{n_{a\cdot}}{2}`,
    :math:`|P| = \sum_b \binom{n_{\cdot b}}{2}`; precision
    :math:`TP/|\hat P|`, recall :math:`TP/|P|`, F1 their harmonic mean
    (:func:`pairwise_scores`).

Admissible actions (the planner's ``eligible`` mask)
----------------------------------------------------
For plan day :math:`d = 0..T-1` (dates :math:`D_d`, the week after the
grid) and channel *m* ∈ ``CONTACT_CHANNELS``:

.. math::

    e_{imd} = \text{consent}_{im} \wedge \text{reachable}_{im}
              \wedge [\text{remaining}_i > 0]
              \wedge \big(m \ne \text{call} \vee D_d - \text{date}(\tau_i) \ge g\big)

where consent is the latest CRM record's flag per channel (a
``do_not_contact`` flag on any record of the customer blocks everything),
reachable means an e-mail (email), a phone (sms, call) or an app device
seen (push) is known, :math:`\tau_i` is the last visible call (inbound or
outbound), *g* the cooling period in days, and
:math:`\text{remaining}_i = \max(0, K^{cap} - \#\{\text{contacts in } [c - W^{cap}, c)\})`
the contacts left under the rolling contact cap (:func:`cooling_allowed`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from formulations.errors import InputError

EVENT_TYPES = ("digital", "call", "branch")
CONTACT_CHANNELS = ("email", "push", "sms", "call", "branch")
GRANULARITY_DAYS = {"week": 7, "day": 1}
BLOCKING_KEYS = ("phone", "email", "last_postcode", "first_dob", "card")
MATCH_FEATURES = (
    "first_sim", "last_sim", "email_eq", "email_sim", "email_missing", "phone_eq", "phone_missing",
    "postcode_eq", "dob_eq", "dob_swapped", "dob_missing", "card_eq", "card_missing", "name_sim_x_dob_eq",
)
MAX_DECAY_EXPONENT = 600.0
# the default match rule (see "Default match rule"): agreement / disagreement weights per identifier
DEFAULT_MATCH_WEIGHTS = {
    "email": (5.0, -2.0),        # typos and changed addresses: disagreement is weak evidence
    "phone": (3.0, -1.0),        # households share a landline; a mobile vs a landline disagrees
    "card": (6.0, -3.0),
    "dob": (3.0, -5.0),          # a different birthday is strong evidence against (household partners)
    "dob_swapped": 2.0,          # day and month swapped: a weaker agreement
    "postcode": (1.5, 0.0),      # people move: no penalty
    "name": 10.0,                # per name: w_n (sim - 0.8), +2 identical, about -3 for unrelated names
    "base": -4.0,
}


# ---------------------------------------------------------------------------
# grid, latency, decay
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class GridSpec:
    """The feature grid: periods of ``period_days`` from ``start`` with latency ``latency_days``.

    Parameters
    ----------
    n_periods : int
        Number of periods P.
    granularity : str
        ``"week"`` (7-day periods) or ``"day"``.
    latency_days : float
        Data latency L >= 0 (features of period p use events before c_p = (p+1)Δ - L).
    decay : float
        λ in (0, 1] per period.
    """

    n_periods: int
    granularity: str = "week"
    latency_days: float = 0.0
    decay: float = 0.8

    def __post_init__(self) -> None:
        if self.granularity not in GRANULARITY_DAYS:
            raise InputError("granularity", f"expected 'week' or 'day', got {self.granularity!r}")
        if int(self.n_periods) != self.n_periods or self.n_periods < 1:
            raise InputError("n_periods", f"expected a positive integer, got {self.n_periods!r}")
        if not (math.isfinite(self.latency_days) and self.latency_days >= 0):
            raise InputError("latency_days", f"expected a number of days >= 0, got {self.latency_days!r}")
        check_decay(self.decay, self.n_periods)

    @property
    def period_days(self) -> int:
        return GRANULARITY_DAYS[self.granularity]

    def cutoffs(self) -> np.ndarray:
        """c_p in days from the grid start, p = 0..P-1."""
        return (np.arange(self.n_periods) + 1.0) * self.period_days - self.latency_days


def check_decay(decay: float, n_periods: int | None = None) -> float:
    """Validate λ in (0, 1]; with ``n_periods`` also P ln(1/λ) <= 600 (so the SQL closed form cannot overflow)."""
    try:
        lam = float(decay)
    except (TypeError, ValueError):
        raise InputError("decay", f"expected a number in (0, 1], got {decay!r}") from None
    if not (0.0 < lam <= 1.0):
        raise InputError("decay", f"expected a number in (0, 1], got {decay!r}")
    if n_periods is not None and n_periods * math.log(1.0 / lam) > MAX_DECAY_EXPONENT:
        raise InputError("decay", f"λ={lam} over {n_periods} periods underflows (need P·ln(1/λ) <= "
                                  f"{MAX_DECAY_EXPONENT:g}); use a larger decay or fewer periods")
    return lam


def latency_bucket(t_days: np.ndarray, period_days: float, latency_days: float) -> np.ndarray:
    """b(e) = floor((t_e + L) / Δ): the first period whose cut-off lies after the event."""
    return np.floor((np.asarray(t_days, dtype=np.float64) + latency_days) / period_days).astype(np.int64)


def decayed_activity(x: np.ndarray, decay: float) -> np.ndarray:
    """Reference recurrence z_p = λ z_{p-1} + x_p along the last axis (z_{-1} = 0)."""
    x = np.asarray(x, dtype=np.float64)
    z = np.empty_like(x)
    prev = np.zeros(x.shape[:-1])
    for p in range(x.shape[-1]):
        prev = decay * prev + x[..., p]
        z[..., p] = prev
    return z


def cooling_allowed(plan_day_offsets: np.ndarray, days_since_last_call_at_plan_start: np.ndarray,
                    gap_days: int) -> np.ndarray:
    """(n, T) mask: a call on plan day d is allowed iff (days since the last call on day d) >= g.

    ``days_since_last_call_at_plan_start`` is the calendar-day difference between the plan start
    and the last call date (NaN = never called).
    """
    since = np.asarray(days_since_last_call_at_plan_start, dtype=np.float64)[:, None]
    d = np.asarray(plan_day_offsets, dtype=np.float64)[None, :]
    return np.isnan(since) | (since + d >= gap_days)


# ---------------------------------------------------------------------------
# normalisation of blocking keys (reference versions of the SQL in optimizer.c360.identity)
# ---------------------------------------------------------------------------

def normalize_phone(raw: str | None) -> str | None:
    """Digits only; +44 / 0044 country prefix -> leading 0; valid iff 11 digits starting with 0."""
    if raw is None:
        return None
    digits = re.sub(r"[^0-9]", "", str(raw))
    if digits.startswith("0044"):
        digits = "0" + digits[4:]
    elif digits.startswith("44") and len(digits) == 12:
        digits = "0" + digits[2:]
    elif digits.startswith("440") and len(digits) == 13:   # +44 (0)7700 ...
        digits = digits[2:]
    return digits if len(digits) == 11 and digits.startswith("0") else None


def normalize_email(raw: str | None) -> str | None:
    """Lower-case, blanks trimmed; None unless it looks like ``local@domain`` (no blanks, one ``@``)."""
    if raw is None:
        return None
    s = str(raw).strip(" \t\n\r\f\v").lower()
    return s if re.fullmatch(r"[^@ \t\n\r\f\v]+@[^@ \t\n\r\f\v]+", s) else None


def normalize_name(raw: str | None) -> str | None:
    """Lower-case ASCII letters only (``"O'Neil "`` -> ``"oneil"``); None if empty."""
    if raw is None:
        return None
    s = re.sub(r"[^a-z]", "", str(raw).lower())
    return s or None


def normalize_postcode(raw: str | None) -> str | None:
    """Upper-case without blanks (space, tab, line breaks); None if empty."""
    if raw is None:
        return None
    s = re.sub(r"[ \t\n\r\f\v]", "", str(raw)).upper()
    return s or None


# ---------------------------------------------------------------------------
# the match model
# ---------------------------------------------------------------------------

def sigmoid(s: np.ndarray) -> np.ndarray:
    """σ(s) = 1 / (1 + e^{-s}), evaluated without overflow."""
    s = np.asarray(s, dtype=np.float64)
    out = np.empty_like(s)
    pos = s >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-s[pos]))
    e = np.exp(s[~pos])
    out[~pos] = e / (1.0 + e)
    return out


def logistic_loss_grad(params: np.ndarray, features: np.ndarray, labels: np.ndarray,
                       l2: float) -> tuple[float, np.ndarray]:
    """ℓ(α) and ∇ℓ(α) of the module docstring; ``params = [α_0, α_1..α_d]``."""
    intercept, coef = params[0], params[1:]
    s = intercept + features @ coef
    # log(1 + e^s) = logaddexp(0, s)
    loss = float(np.sum(np.logaddexp(0.0, s) - labels * s) + 0.5 * l2 * coef @ coef)
    resid = sigmoid(s) - labels
    grad = np.empty_like(params)
    grad[0] = resid.sum()
    grad[1:] = features.T @ resid + l2 * coef
    return loss, grad


def default_match_coefficients() -> tuple[float, np.ndarray]:
    """(α₀, α) over ``MATCH_FEATURES`` of the default match rule (module docstring).

    An agreement weight *a* and disagreement weight *d* give ``a - d`` on ``<f>_eq``, ``-d`` on
    ``<f>_missing`` and ``d`` in the intercept (disagree = 1 - eq - missing).
    """
    w = DEFAULT_MATCH_WEIGHTS
    coef = dict.fromkeys(MATCH_FEATURES, 0.0)
    intercept = w["base"]
    for f in ("email", "phone", "card", "dob"):
        agree, disagree = w[f]
        coef[f"{f}_eq"] = agree - disagree
        coef[f"{f}_missing"] = -disagree
        intercept += disagree
    coef["dob_swapped"] = w["dob_swapped"] - w["dob"][1]
    coef["postcode_eq"] = w["postcode"][0] - w["postcode"][1]
    intercept += w["postcode"][1]
    coef["first_sim"] = coef["last_sim"] = w["name"]
    intercept -= 2 * 0.8 * w["name"]
    return float(intercept), np.array([coef[f] for f in MATCH_FEATURES], dtype=np.float64)


def default_match_score(record_a: dict, record_b: dict, name_similarity) -> float:
    """Reference: the default rule's score s written field by field (tests compare it to αᵀφ).

    Records are dicts with normalised ``first, last, email, phone, postcode, dob, card`` (None =
    missing; ``dob`` a ``datetime.date``); ``name_similarity(x, y)`` the Jaro-Winkler similarity.
    """
    w = DEFAULT_MATCH_WEIGHTS
    s = w["base"]
    for f in ("email", "phone", "card", "postcode"):
        x, y = record_a.get(f), record_b.get(f)
        if x is not None and y is not None:
            s += w[f][0] if x == y else w[f][1]
    x, y = record_a.get("dob"), record_b.get("dob")
    if x is not None and y is not None:
        if x == y:
            s += w["dob"][0]
        elif x.year == y.year and x.month == y.day and x.day == y.month:
            s += w["dob_swapped"]
        else:
            s += w["dob"][1]
    for f in ("first", "last"):
        x, y = record_a.get(f), record_b.get(f)
        sim = name_similarity(x, y) if x is not None and y is not None else 0.0
        s += w["name"] * (sim - 0.8)
    return float(s)


# ---------------------------------------------------------------------------
# clustering quality
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class PairwiseScores:
    """Pairwise precision / recall / F1 of a clustering against the truth."""

    true_positive_pairs: int
    predicted_pairs: int
    true_pairs: int

    @property
    def precision(self) -> float:
        return self.true_positive_pairs / self.predicted_pairs if self.predicted_pairs else 1.0

    @property
    def recall(self) -> float:
        return self.true_positive_pairs / self.true_pairs if self.true_pairs else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r > 0 else 0.0


def _pairs(counts: np.ndarray) -> int:
    c = counts.astype(np.int64)
    return int((c * (c - 1) // 2).sum())


def pairwise_scores(predicted: np.ndarray, truth: np.ndarray) -> PairwiseScores:
    """Pairwise counts from two label vectors over the same records (integer labels)."""
    predicted = np.asarray(predicted, dtype=np.int64)
    truth = np.asarray(truth, dtype=np.int64)
    if predicted.shape != truth.shape:
        raise InputError("predicted", f"expected shape {truth.shape}, got {predicted.shape}")
    if predicted.size == 0:
        return PairwiseScores(0, 0, 0)
    _, pred_counts = np.unique(predicted, return_counts=True)
    _, true_counts = np.unique(truth, return_counts=True)
    joint = predicted * (int(truth.max()) + 1) + truth
    _, joint_counts = np.unique(joint, return_counts=True)
    return PairwiseScores(_pairs(joint_counts), _pairs(pred_counts), _pairs(true_counts))


def union_find_labels(n: int, pairs: Iterable[Sequence[int]]) -> np.ndarray:
    """Pure-Python union-find (path halving, union by size): label = smallest member of the cluster.

    The reference for the connected-components clustering of the pipeline.
    """
    parent = list(range(n))
    size = [1] * n

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a, b in pairs:
        ra, rb = find(int(a)), find(int(b))
        if ra == rb:
            continue
        if size[ra] < size[rb]:
            ra, rb = rb, ra
        parent[rb] = ra
        size[ra] += size[rb]
    roots = np.array([find(a) for a in range(n)], dtype=np.int64)
    smallest = {}
    for a in range(n):
        smallest.setdefault(int(roots[a]), a)
    return np.array([smallest[int(r)] for r in roots], dtype=np.int64)
