r"""The contact-fatigue MDP of one customer (or one segment of alike customers).

A contact today changes tomorrow's response: it tires the customer
(fatigue), may lift engagement when answered, and starts a cooling period
on its channel class. The builder turns parameters into a finite
:class:`formulations.mdp.MDPModel` (sparse state-action form).

State
    :math:`s = (e, d_1, \dots, d_C, f)`: engagement level
    :math:`e \in \{0..E-1\}`; for each channel class *c* (e.g. digital,
    call) the periods since the last contact in that class
    :math:`d_c \in \{1..D\}` (*D* means "D or more", the state of a customer
    never contacted); fatigue :math:`f \in \{0..F-1\}`.
    :math:`n = E \cdot D^C \cdot F` states, indexed with *e* slowest, then
    :math:`d_1..d_C`, then *f*.

Actions
    :math:`a = 0`: no contact; :math:`a = m + 1`: contact through channel
    :math:`m \in \{0..M-1\}` of class :math:`c(m)`.

Admissible actions
    No contact is always admissible. Channel *m* is admissible iff the
    customer consented to it and the class is out of its cooling period:
    :math:`d_{c(m)} \ge \text{cooling}_{c(m)}` (cooling 1 = no restriction,
    2 = not in two consecutive periods, ...).

Response and reward
    :math:`p(s, m) = \operatorname{logistic}(\alpha_m + \eta_e + \phi_f)` with
    channel base logits :math:`\alpha`, engagement logits :math:`\eta` and
    fatigue logits :math:`\phi` (typically decreasing in *f*);
    :math:`r(s, 0) = 0` and :math:`r(s, m+1) = p(s, m)\,\text{value}_m - \text{cost}_m`.

Dynamics (independent components)
    * recency: the contacted class restarts, :math:`d'_{c(m)} = 1`; every
      other class ages, :math:`d'_c = \min(d_c + 1, D)`;
    * engagement: after a response (probability *p*) it rises one level
      with probability ``engagement_up``; without a response (or without a
      contact) it falls one level with probability ``engagement_decay``;
    * fatigue: a contact raises it one level with probability
      ``fatigue_up``; a period without contact lowers it one level with
      probability ``fatigue_recovery``.

    Levels are clipped to their ranges (clipped outcomes merge), so every
    pair has at most 9 successors and rows sum to one exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import scipy.sparse as sp

from formulations.errors import InputError
from formulations.mdp import MDPModel, check_beta, make_mdp_model


def _vector(field: str, value: Any, length: int, *, lo: float | None = None, hi: float | None = None,
            integer: bool = False) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(length, float(arr))
    if arr.shape != (length,):
        raise InputError(field, f"expected a number or an array of shape ({length},), got shape {arr.shape}")
    bad = ~np.isfinite(arr)
    if lo is not None:
        bad |= arr < lo
    if hi is not None:
        bad |= arr > hi
    if integer:
        bad |= arr != np.round(arr)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        rng = f" in [{lo}, {hi}]" if lo is not None and hi is not None else (f" >= {lo}" if lo is not None else "")
        kind = "integers" if integer else "finite numbers"
        raise InputError(field, f"expected {kind}{rng}, got {arr[i]!r} at index {i}")
    return arr.astype(np.int64) if integer else arr


def _probability(field: str, value: Any) -> float:
    try:
        p = float(value)
    except (TypeError, ValueError):
        raise InputError(field, f"expected a probability in [0, 1], got {value!r}") from None
    if not np.isfinite(p) or p < 0 or p > 1:
        raise InputError(field, f"expected a probability in [0, 1], got {value!r}")
    return p


@dataclass(frozen=True, eq=False)
class ContactMDPParams:
    """Parameters of the contact-fatigue MDP (see the module docstring).

    Parameters
    ----------
    base_logit : array_like (M,)
        Response logit of each channel for a fresh, average customer.
    value, cost : float or array_like (M,)
        Value of a response and cost of a contact per channel.
    channel_class : array_like of int (M,), optional
        Class of each channel (default: all in class 0).
    cooling : int or array_like (C,)
        Periods a class must rest before the next contact (1 = none).
    engagement_logit : array_like (E,)
        Logit shift per engagement level.
    fatigue_logit : array_like (F,)
        Logit shift per fatigue level (use decreasing values).
    max_days : int
        D, the cap of the periods-since-contact counters.
    engagement_up, engagement_decay, fatigue_up, fatigue_recovery : float
        Transition probabilities.
    consent : array_like of bool (M,), optional
        Channels the customer agreed to (default: all).
    beta : float
        Discount factor per period.
    channel_names : sequence of str, optional
    """

    base_logit: Any
    value: Any = 1.0
    cost: Any = 0.0
    channel_class: Any = None
    cooling: Any = 1
    engagement_logit: Any = (-1.0, -0.5, 0.0, 0.5, 1.0)
    fatigue_logit: Any = (0.0, -0.6, -1.2, -1.8)
    max_days: int = 5
    engagement_up: float = 0.5
    engagement_decay: float = 0.1
    fatigue_up: float = 1.0
    fatigue_recovery: float = 0.3
    consent: Any = None
    beta: float = 0.95
    channel_names: Sequence[str] | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        base = np.asarray(self.base_logit, dtype=np.float64)
        if base.ndim != 1 or base.size == 0:
            raise InputError("base_logit", f"expected a 1-d array with one logit per channel, got shape {base.shape}")
        M = base.size
        set_(self, "base_logit", _vector("base_logit", base, M))
        set_(self, "value", _vector("value", self.value, M, lo=0.0))
        set_(self, "cost", _vector("cost", self.cost, M, lo=0.0))
        cls = np.zeros(M, dtype=np.int64) if self.channel_class is None else _vector(
            "channel_class", self.channel_class, M, lo=0, integer=True)
        set_(self, "channel_class", cls)
        C = int(cls.max()) + 1
        if np.setdiff1d(np.arange(C), cls).size:
            raise InputError("channel_class", f"expected classes numbered 0..{C - 1} without gaps, got {cls.tolist()}")
        set_(self, "max_days", int(_vector("max_days", self.max_days, 1, lo=1, integer=True)[0]))
        set_(self, "cooling", _vector("cooling", self.cooling, C, lo=1, hi=self.max_days, integer=True))
        eng = np.asarray(self.engagement_logit, dtype=np.float64).ravel()
        fat = np.asarray(self.fatigue_logit, dtype=np.float64).ravel()
        if eng.size == 0:
            raise InputError("engagement_logit", "expected at least one engagement level")
        if fat.size == 0:
            raise InputError("fatigue_logit", "expected at least one fatigue level")
        set_(self, "engagement_logit", _vector("engagement_logit", eng, eng.size))
        set_(self, "fatigue_logit", _vector("fatigue_logit", fat, fat.size))
        for name in ("engagement_up", "engagement_decay", "fatigue_up", "fatigue_recovery"):
            set_(self, name, _probability(name, getattr(self, name)))
        consent = np.ones(M, dtype=bool) if self.consent is None else np.asarray(self.consent)
        if consent.shape != (M,) or consent.dtype != np.bool_:
            raise InputError("consent", f"expected a boolean array of shape ({M},), got {consent.dtype} "
                                        f"{consent.shape}")
        set_(self, "consent", consent)
        set_(self, "beta", check_beta(self.beta))
        names = [f"ch{m}" for m in range(M)] if self.channel_names is None else list(self.channel_names)
        if len(names) != M:
            raise InputError("channel_names", f"expected {M} names, got {len(names)}")
        set_(self, "channel_names", tuple(names))

    @property
    def n_channels(self) -> int:
        return int(self.base_logit.size)

    @property
    def n_classes(self) -> int:
        return int(self.channel_class.max()) + 1

    @property
    def n_states(self) -> int:
        return int(self.engagement_logit.size * self.max_days ** self.n_classes * self.fatigue_logit.size)


@dataclass(frozen=True, eq=False)
class ContactMDP:
    """A built contact-fatigue MDP.

    Attributes
    ----------
    params : ContactMDPParams
    model : MDPModel
        Actions ``0`` (no contact) and ``m + 1`` (channel m).
    engagement, fatigue : ndarray (n,) int64
        Levels of each state.
    days : ndarray (n, C) int64
        Periods since the last contact per class (1..D).
    response : ndarray (L,)
        Response probability of each pair (0 for no contact).
    channel_of_action : ndarray (M + 1,) int64
        ``-1`` for no contact, else the channel.
    """

    params: ContactMDPParams
    model: MDPModel
    engagement: np.ndarray = field(repr=False)
    days: np.ndarray = field(repr=False)
    fatigue: np.ndarray = field(repr=False)
    response: np.ndarray = field(repr=False)
    channel_of_action: np.ndarray = field(repr=False)

    def state_index(self, engagement: Any, days: Any, fatigue: Any) -> np.ndarray:
        """State indices of (engagement, days (.., C), fatigue) arrays."""
        p = self.params
        e = np.asarray(engagement, dtype=np.int64)
        d = np.asarray(days, dtype=np.int64).reshape(e.shape + (p.n_classes,)) if np.ndim(days) else \
            np.full(e.shape + (p.n_classes,), int(days))
        f = np.asarray(fatigue, dtype=np.int64)
        E, F, D = p.engagement_logit.size, p.fatigue_logit.size, p.max_days
        if (e < 0).any() or (e >= E).any():
            raise InputError("engagement", f"expected levels in [0, {E})")
        if (f < 0).any() or (f >= F).any():
            raise InputError("fatigue", f"expected levels in [0, {F})")
        if (d < 1).any() or (d > D).any():
            raise InputError("days", f"expected periods since contact in [1, {D}]")
        code = np.zeros(e.shape, dtype=np.int64)
        for c in range(p.n_classes):
            code = code * D + (d[..., c] - 1)
        return (e * D ** p.n_classes + code) * F + f

    def response_score(self) -> np.ndarray:
        """Myopic score p(s, m) * value_m of each pair (0 for no contact)."""
        ch = self.channel_of_action[self.model.actions]
        value = np.where(ch >= 0, self.params.value[np.maximum(ch, 0)], 0.0)
        return self.response * value


def build_contact_mdp(params: ContactMDPParams) -> ContactMDP:
    """Enumerate states and admissible pairs and return the validated model."""
    if not isinstance(params, ContactMDPParams):
        raise InputError("params", f"expected ContactMDPParams, got {type(params).__name__}")
    p = params
    E, F, D, C, M = p.engagement_logit.size, p.fatigue_logit.size, p.max_days, p.n_classes, p.n_channels
    n = p.n_states
    idx = np.arange(n)
    f = idx % F
    rest = idx // F
    days = np.empty((n, C), dtype=np.int64)
    for c in range(C - 1, -1, -1):
        days[:, c] = rest % D + 1
        rest //= D
    e = rest

    def index(e_, days_, f_):
        code = np.zeros(e_.shape, dtype=np.int64)
        for c in range(C):
            code = code * D + (days_[:, c] - 1)
        return (e_ * D ** C + code) * F + f_

    s_list, a_list, r_list, resp_list = [], [], [], []
    rows, cols, probs = [], [], []
    pair = 0
    for a in range(M + 1):
        if a == 0:
            ok = np.ones(n, dtype=bool)
        else:
            m = a - 1
            cls = p.channel_class[m]
            ok = np.full(n, bool(p.consent[m])) & (days[:, cls] >= p.cooling[cls])
        st = idx[ok]
        k = st.size
        if k == 0:
            continue
        es, fs, ds = e[st], f[st], days[st]
        nd = np.minimum(ds + 1, D)
        if a == 0:
            resp = np.zeros(k)
            reward = np.zeros(k)
            e_up, e_down = np.zeros(k), np.full(k, p.engagement_decay)
            f_up, f_down = np.zeros(k), np.full(k, p.fatigue_recovery)
        else:
            nd[:, cls] = 1
            logit = p.base_logit[m] + p.engagement_logit[es] + p.fatigue_logit[fs]
            resp = 1.0 / (1.0 + np.exp(-logit))
            reward = resp * p.value[m] - p.cost[m]
            e_up, e_down = resp * p.engagement_up, (1.0 - resp) * p.engagement_decay
            f_up, f_down = np.full(k, p.fatigue_up), np.zeros(k)
        base_next = index(np.zeros(k, dtype=np.int64), nd, np.zeros(k, dtype=np.int64))
        pair_ids = pair + np.arange(k)
        for de, pe in ((-1, e_down), (0, 1.0 - e_up - e_down), (1, e_up)):
            en = np.clip(es + de, 0, E - 1)
            for df, pf in ((-1, f_down), (0, 1.0 - f_up - f_down), (1, f_up)):
                fn = np.clip(fs + df, 0, F - 1)
                prob = pe * pf
                keep = prob > 0
                rows.append(pair_ids[keep])
                cols.append(base_next[keep] + en[keep] * D ** C * F + fn[keep])
                probs.append(prob[keep])
        s_list.append(st)
        a_list.append(np.full(k, a))
        r_list.append(reward)
        resp_list.append(resp)
        pair += k
    L = pair
    Q = sp.csr_matrix((np.concatenate(probs), (np.concatenate(rows), np.concatenate(cols))), shape=(L, n))
    Q.sum_duplicates()
    s_idx, a_idx = np.concatenate(s_list), np.concatenate(a_list)
    model = make_mdp_model(np.concatenate(r_list), Q, p.beta, s_idx, a_idx)
    order = np.lexsort((a_idx, s_idx))
    response = np.concatenate(resp_list)[order]
    channel_of_action = np.arange(-1, M, dtype=np.int64)
    return ContactMDP(p, model, e.astype(np.int64), days, f.astype(np.int64), response, channel_of_action)
