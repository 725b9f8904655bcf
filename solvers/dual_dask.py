"""The dual method on Dask distributed: customers sharded across workers, prices broadcast.

Per dual iteration the client sends the prices (a few hundred floats) to
every shard and gathers, per shard, its per-chunk sums of customer optima and
its usage per cell (and per segment) — O(M·T) numbers, independent of n.
Shards are cut on multiples of the kernel chunk, so the gathered chunk sums
form the same array as in-process and L is the same number bit for bit; the
level bundle therefore takes the same steps, and the primal recovery (whose
orderings are canonical: by value, then customer index, then slot) merges
per-shard candidate lists into the very same plan.

Fault tolerance: a shard is a task whose source is known (a slice of the
client's problem, a Parquet file, or a generated block). If a worker dies,
the step is retried after the shard is rebuilt from its source; if that keeps
failing the solve stops with a clear error — it never returns a wrong plan.
"""

from __future__ import annotations

import pickle
import time
from dataclasses import dataclass

import numpy as np

from solvers import _dual_kernels as K
from solvers.dual_data import CHUNK, FILL_ROUNDS, DualData, cell_tops, cheapest_prefix, spend_of

RETRIES = 3


# --------------------------------------------------------------------------- worker side
@dataclass
class Shard:
    """Customers [offset, offset + n) with everything the kernels need."""

    u: np.ndarray
    limits: np.ndarray
    offset: int
    cell_ok: np.ndarray
    neg_ok: np.ndarray
    cost: np.ndarray
    gap: int
    slots: int
    ids: np.ndarray | None = None

    @property
    def n(self) -> int:
        return int(self.u.shape[0])


def build_shard(u, limits, offset, meta) -> Shard:
    return Shard(np.ascontiguousarray(u), np.ascontiguousarray(limits, dtype=np.int64), int(offset), **meta)


def load_parquet_shard(path: str, offset: int, meta: dict, channels, days, max_contacts: int) -> Shard:
    from formulations.partitioned import read_utilities

    ids, u = read_utilities(path, channels, days)
    shard = build_shard(u, np.array([max_contacts], dtype=np.int64), offset, meta)
    shard.ids = ids
    return shard


_NOSEG = np.zeros(1, dtype=np.int64)


def shard_max_u(s: Shard) -> np.ndarray:
    return K.max_positive_utility(s.u, s.cell_ok, CHUNK)


def shard_partial(s: Shard, price, cost_price, shift):
    return K.evaluate_dual(s.u, s.cell_ok, price, cost_price, s.limits, s.gap, CHUNK, _NOSEG, shift, s.neg_ok,
                           K.NO_CODES)


def shard_tops(s: Shard, price_cells, capacity):
    return cell_tops(s.u, price_cells, capacity)


def shard_choose(s: Shard, price, cost_price, shift):
    return K.choose_contacts(s.u, s.cell_ok, price, cost_price, s.limits, s.gap, s.slots, CHUNK, _NOSEG, shift,
                             s.neg_ok)


def shard_usage(s: Shard, codes):
    return K.code_usage(codes, s.cost, s.u.shape[1], s.u.shape[2])


def shard_lowest(s: Shard, codes, price, cost_price, excess):
    """Per overloaded cell, this shard's ``excess`` contacts cheapest to lose (as ``drop_overloaded`` ranks them).

    Returns (cell, cost, customer, slot, best cell with room or -1, the customer's codes).
    """
    T = s.u.shape[2]
    alt_value, alt_cell = K.relocations(codes, s.u, s.cell_ok, price, cost_price, s.cost, excess, T, s.gap,
                                        _NOSEG, np.zeros((1, s.u.shape[1])), s.neg_ok, CHUNK)
    rows, slot = np.nonzero(codes >= 0)
    code = codes[rows, slot].astype(np.int64)
    sel = excess[code] > 0
    rows, slot, code = rows[sel], slot[sel], code[sel]
    m, t = code // T, code % T
    alt = alt_value[rows, slot]
    lose = s.u[rows, m, t].astype(np.float64) - price[m, t] - cost_price[m] - np.where(alt > 0, alt, 0.0)
    target = np.where(alt > 0, alt_cell[rows, slot], -1)
    order = np.lexsort((slot, rows, lose, code))
    rows, slot, code, lose, target = rows[order], slot[order], code[order], lose[order], target[order]
    first = np.searchsorted(code, code, side="left")
    keep = (np.arange(code.size) - first) < excess[code]
    return code[keep], lose[keep], rows[keep] + s.offset, slot[keep], target[keep], codes[rows[keep]]


def shard_paid_prefix(s: Shard, codes, price, need, budget):
    who, slot, ratio, paid = K.paid_entries(codes, s.u, price, s.cost, s.u.shape[2], _NOSEG,
                                            np.zeros((1, s.u.shape[1])))
    if ratio.size == 0:
        return ratio, who, slot, paid
    order = cheapest_prefix(ratio, who, slot, paid, need, budget)
    return ratio[order], who[order] + s.offset, slot[order], paid[order]


def shard_drop(s: Shard, codes, customers, slots):
    codes = codes.copy()
    mine = (customers >= s.offset) & (customers < s.offset + s.n)
    codes[customers[mine] - s.offset, slots[mine]] = -1
    return codes


def shard_additions(s: Shard, codes, price, cost_price, leftover, budget_left):
    best_code, best_r = K.best_additions(s.u, s.cell_ok, price, cost_price, s.cost, s.limits, s.gap, codes, leftover,
                                         budget_left, CHUNK, _NOSEG, np.zeros((1, s.u.shape[1])), s.neg_ok)
    cand = np.flatnonzero(best_code >= 0)
    return cand + s.offset, best_code[cand], best_r[cand]


def shard_swaps(s: Shard, codes, price, cost_price, leftover, budget_left):
    best_slot, best_code, gain = K.best_swaps(s.u, s.cell_ok, price, cost_price, s.cost, s.gap, codes, leftover,
                                              budget_left, CHUNK, _NOSEG, np.zeros((1, s.u.shape[1])))
    cand = np.flatnonzero(best_slot >= 0)
    return cand + s.offset, best_slot[cand], codes[cand, best_slot[cand]].astype(np.int64), best_code[cand], gain[cand]


def shard_apply(s: Shard, codes, customers, slots, new_codes):
    """Set codes; ``slots`` < 0 means the first free slot (an addition)."""
    codes = codes.copy()
    mine = (customers >= s.offset) & (customers < s.offset + s.n)
    customers, slots, new_codes = customers[mine], slots[mine], new_codes[mine]
    local = customers - s.offset
    for i, q, c in zip(local.tolist(), slots.tolist(), new_codes.tolist()):
        if q < 0:
            q = int(np.flatnonzero(codes[i] < 0)[0])
        codes[i, q] = c
    return codes


def shard_indices(s: Shard, codes):
    idx, values = K.codes_to_indices(codes, s.u, s.u.shape[2])
    idx[:, 0] += s.offset
    return idx, values


def shard_contacted(s: Shard, customers):
    """(ids, utility rows) of the given global customers that live in this shard."""
    local = customers[(customers >= s.offset) & (customers < s.offset + s.n)] - s.offset
    ids = s.ids[local] if s.ids is not None else (local + s.offset).astype(str)
    return ids, s.u[local]


def shard_rows(s: Shard, rows):
    local = rows[(rows >= s.offset) & (rows < s.offset + s.n)] - s.offset
    lim = s.limits if s.limits.shape[0] == 1 else s.limits[local]
    return s.u[local], lim


# --------------------------------------------------------------------------- coordinator
@dataclass
class ShardSource:
    """Where a shard comes from, so it can be rebuilt after a worker failure."""

    offset: int
    n: int
    kind: str                 # "memory" or "parquet"
    u: np.ndarray | None = None
    limits: np.ndarray | None = None
    path: str | None = None


class ShardLost(RuntimeError):
    pass


def accept_additions(order, code, leftover, cost, budget_left, T):
    """Coordinator half of ``greedy_add``: capacity and budget (customer checks were done on the shards)."""
    accepted = np.zeros(order.size, dtype=bool)
    for k, j in enumerate(order.tolist()):
        m, t = divmod(int(code[j]), T)
        if leftover[m, t] <= 0 or cost[m] > budget_left:
            continue
        accepted[k] = True
        leftover[m, t] -= 1
        budget_left -= cost[m]
    return accepted, budget_left


def accept_swaps(order, old, new, leftover, cost, budget_left, T):
    """Coordinator half of ``apply_swaps``."""
    accepted = np.zeros(order.size, dtype=bool)
    for k, j in enumerate(order.tolist()):
        mb, tb = divmod(int(new[j]), T)
        ma, ta = divmod(int(old[j]), T)
        if leftover[mb, tb] <= 0:
            continue
        delta = cost[mb] - cost[ma]
        if delta > budget_left:
            continue
        accepted[k] = True
        leftover[mb, tb] -= 1
        leftover[ma, ta] += 1
        budget_left -= delta
    return accepted, budget_left


class ShardedDual(DualData):
    """:class:`DualData` whose customers live on Dask workers (same prices, same plan)."""

    def __init__(self, client, sources: list[ShardSource], *, M: int, T: int, gap: int, cost, capacity, budget,
                 limit_max: int, cell_ok, neg_ok, problem=None) -> None:
        self.client = client
        self.sources = sources
        self.problem = problem
        self.u = None
        self.seg = np.zeros(1, dtype=np.int64)
        self.shard_meta = {"cell_ok": np.ascontiguousarray(cell_ok), "neg_ok": np.ascontiguousarray(neg_ok),
                           "cost": np.ascontiguousarray(cost, dtype=np.float64), "gap": int(gap),
                           "slots": max(1, min(int(limit_max), -(-T // int(gap)), T))}
        self.parquet_args = None
        self.bytes_sent: list[int] = []
        self.bytes_received: list[int] = []
        self._reload()
        max_u = np.max(np.stack(self._run(shard_max_u)), axis=0)
        self._setup(n=sum(src.n for src in sources), M=M, T=T, gap=gap, cost=cost, capacity=capacity, budget=budget,
                    limit_max=limit_max, cell_ok=cell_ok, neg_ok=neg_ok, max_u=max_u, fair=None)

    # ---------------------------------------------------------------- plumbing
    def _reload(self) -> None:
        futures = []
        for src in self.sources:
            if src.kind == "memory":
                shard = build_shard(src.u, src.limits, src.offset, self.shard_meta)
                futures.append(self.client.scatter(shard, hash=False))
            else:
                channels, days, kmax = self.parquet_args
                futures.append(self.client.submit(load_parquet_shard, src.path, src.offset, self.shard_meta, channels,
                                                  days, kmax, pure=False))
        self.futures = futures

    def _submit(self, fn, *args, per_shard=None, on=None):
        on = self.futures if on is None else on
        out = []
        for i, fut in enumerate(on):
            extra = () if per_shard is None else tuple(a[i] for a in per_shard)
            shard = self.futures[i]
            if on is self.futures:
                out.append(self.client.submit(fn, shard, *args, pure=False))
            else:
                out.append(self.client.submit(fn, shard, fut, *extra, *args, pure=False))
        return out

    def _gather(self, futures):
        try:
            return self.client.gather(futures)
        except Exception as exc:  # KilledWorker, CancelledError, lost data, closed comms ...
            raise ShardLost(f"{type(exc).__name__}: {exc}") from exc

    def _gather_columns(self, futures) -> list[np.ndarray]:
        """Gather per-shard tuples of arrays and concatenate them column by column (shard order)."""
        return [np.concatenate(column) for column in zip(*self._gather(futures))]

    def _run(self, fn, *args):
        last = None
        for _ in range(RETRIES):
            try:
                self.bytes_sent.append(len(pickle.dumps(args)) * len(self.futures))
                out = self._gather(self._submit(fn, *args))
                self.bytes_received.append(len(pickle.dumps(out)))
                return out
            except ShardLost as exc:
                last = exc
                time.sleep(0.5)
                self._reload()
        raise RuntimeError(f"the distributed solve lost its workers {RETRIES} times ({last}); no plan returned")

    # ---------------------------------------------------------------- dual values
    def partial(self, y: np.ndarray):
        price, mu = self.prices(y)
        parts = self._run(shard_partial, price, mu * self.cost, self.shift(y))
        return (np.concatenate([p[0] for p in parts]), sum(p[1] for p in parts),
                sum(p[2] for p in parts))

    def clearing_start(self) -> np.ndarray:
        """:meth:`DualData.clearing_start` from each shard's largest utilities per cell (same prices)."""
        return self._clearing_coords(self._run(shard_tops, self.price_cells, self.capacity))

    def subsample(self, size: int, seed: int) -> DualData:
        """The same random rows as :meth:`DualData.subsample`, fetched from the shards."""
        rng = np.random.default_rng(seed)
        rows = np.sort(rng.choice(self.n, size=size, replace=False))
        parts = self._run(shard_rows, rows)
        sub = object.__new__(DualData)
        sub.__dict__.update({k: v for k, v in self.__dict__.items() if k not in ("client", "futures", "sources")})
        sub.u = np.ascontiguousarray(np.concatenate([p[0] for p in parts]))
        lim = [p[1] for p in parts]
        sub.limits = lim[0] if all(x.shape[0] == 1 for x in lim) else np.ascontiguousarray(
            np.concatenate([np.broadcast_to(x, (len(p[0]),)) for x, p in zip(lim, parts)]))
        share = size / self.n
        sub.n = size
        sub.capacity = self.capacity * share
        sub.budget = None if self.budget is None else self.budget * share
        sub._start_sample()
        return sub

    def supports_master(self) -> bool:
        return False    # the master LP reads every customer's choices; shards keep theirs on the workers

    def empty_plan(self):
        return np.zeros((0, 3), dtype=np.int64), 0.0

    # ---------------------------------------------------------------- recovery
    def recover(self, y: np.ndarray, rounds: int = FILL_ROUNDS, lazy: bool = False):
        """As :meth:`DualData.recover`; always returns index rows (``lazy`` is accepted and ignored)."""
        last = None
        for _ in range(RETRIES):
            try:
                return self._recover(y, rounds)
            except ShardLost as exc:
                last = exc
                time.sleep(0.5)
                self._reload()
        raise RuntimeError(f"the distributed recovery lost its workers {RETRIES} times ({last}); no plan returned")

    def _stats(self, codes_f):
        stats = self._gather(self._submit(shard_usage, on=codes_f))
        usage = sum(s[0] for s in stats)
        return usage, spend_of(usage, self.cost, self.M, self.T)

    def _recover(self, y: np.ndarray, rounds: int):
        price, mu = self.prices(y)
        cost_price = mu * self.cost
        T, M = self.T, self.M
        zero_shift = np.zeros((1, M))
        cap = np.floor(self.capacity).ravel().astype(np.int64)
        codes_f = self._submit(shard_choose, price, cost_price, zero_shift)
        usage, spend = self._stats(codes_f)
        excess = usage - cap
        if (excess > 0).any():
            code, lose, who, slot, target, their_codes = self._gather_columns(
                self._submit(shard_lowest, price, cost_price, excess, on=codes_f))
            order = np.lexsort((slot, who, lose, code))
            first = np.searchsorted(code[order], code[order], side="left")
            pick = order[(np.arange(code.size) - first) < excess[code[order]]]
            pick = pick[np.lexsort((slot[pick], who[pick], code[pick]))]     # applied by cell, customer, slot
            # the moves and drops, in drop_overloaded's order, on the picked customers' rows
            local, at = np.unique(who, return_index=True)
            rows = their_codes[at].copy()
            index = np.searchsorted(local, who[pick])
            K.relocate_or_drop(rows, index, slot[pick], target[pick], np.maximum(-excess, 0), T, self.gap)
            codes_f = self._submit(shard_apply, who[pick], slot[pick], rows[index, slot[pick]].astype(np.int64),
                                   on=codes_f)
            usage, spend = self._stats(codes_f)
        budget = np.inf if self.budget is None else float(self.budget)
        if spend > budget:
            need = spend - budget
            ratio, who, slot, paid = self._gather_columns(
                self._submit(shard_paid_prefix, price, need, budget, on=codes_f))
            pick = cheapest_prefix(ratio, who, slot, paid, need, budget)
            codes_f = self._submit(shard_drop, who[pick], slot[pick], on=codes_f)
            usage, spend = self._stats(codes_f)
        leftover = (cap - usage).reshape(M, T)
        budget_left = max(budget - spend, 0.0)
        for _ in range(rounds):
            who, code, r = self._gather_columns(
                self._submit(shard_additions, price, cost_price, leftover.copy(), budget_left, on=codes_f))
            added = 0
            if who.size:
                order = np.lexsort((who, -r))
                ok, budget_left = accept_additions(order, code, leftover, self.cost, budget_left, T)
                acc = order[ok]
                added = int(acc.size)
                if added:
                    codes_f = self._submit(shard_apply, who[acc], np.full(acc.size, -1), code[acc], on=codes_f)
            who, slot, old, new, gain = self._gather_columns(
                self._submit(shard_swaps, price, cost_price, leftover.copy(), budget_left, on=codes_f))
            swapped = 0
            if who.size:
                order = np.lexsort((who, -gain))
                ok, budget_left = accept_swaps(order, old, new, leftover, self.cost, budget_left, T)
                acc = order[ok]
                swapped = int(acc.size)
                if swapped:
                    codes_f = self._submit(shard_apply, who[acc], slot[acc], new[acc], on=codes_f)
            if added == 0 and swapped == 0:
                break
        parts = self._gather(self._submit(shard_indices, on=codes_f))
        idx = np.concatenate([p[0] for p in parts]) if parts else np.zeros((0, 3), np.int64)
        values = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0)
        return idx, float(np.sum(values))


def shard_sources(problem, n_shards: int) -> list[ShardSource]:
    """Cut an in-memory problem into ``n_shards`` contiguous shards on chunk boundaries."""
    n = problem.n_customers
    chunks = -(-n // CHUNK)
    per = max(1, -(-chunks // max(1, n_shards)))
    limits = problem.contact_limits()
    scalar = np.ndim(problem.max_contacts) == 0
    out = []
    for start in range(0, n, per * CHUNK):
        stop = min(n, start + per * CHUNK)
        lim = np.array([int(problem.max_contacts)], dtype=np.int64) if scalar else limits[start:stop]
        out.append(ShardSource(start, stop - start, "memory", u=problem.utility[start:stop], limits=lim))
    return out


def connect(cluster):
    """A ``dask.distributed.Client`` from a Client, a scheduler address, or an int (LocalCluster workers)."""
    from distributed import Client, LocalCluster

    if isinstance(cluster, Client):
        return cluster, False
    if isinstance(cluster, int):
        local = LocalCluster(n_workers=cluster, threads_per_worker=1, processes=True, dashboard_address=None)
        return Client(local), True
    return Client(cluster), True


def solve(problem, options, cluster, n_shards: int | None = None):
    """``method="dual"`` with the customers sharded across the cluster's workers.

    ``problem`` is a :class:`~formulations.assignment.PlanningProblem` (shards
    are slices scattered to the workers) or a
    :class:`~formulations.partitioned.PartitionedProblem` (each worker reads
    its Parquet files). Fairness rows and penalties are not supported yet.
    """
    from formulations.errors import InputError
    from solvers.base import Stopwatch
    from solvers.dual import run

    sw = Stopwatch()
    client, owned = connect(cluster)
    try:
        workers = max(1, len(client.scheduler_info().get("workers", {})))
        if getattr(problem, "is_partitioned", False):
            data = _partitioned_data(client, problem)
        else:
            if problem.segment is not None and problem.has_fairness:
                raise InputError("cluster", "segment bounds and fairness penalties are not supported on a cluster yet")
            sources = shard_sources(problem, n_shards or workers)
            data = ShardedDual(client, sources, M=problem.n_channels, T=problem.n_days, gap=problem.min_gap_days,
                               cost=problem.cost, capacity=problem.capacity, budget=problem.budget,
                               limit_max=int(problem.contact_limits().max()), cell_ok=problem.cell_allowed(),
                               neg_ok=problem.negative_ok(), problem=problem)
        result = run(data, options, sw, budget_given=data.budget is not None)
        subproblem = None
        if getattr(problem, "is_partitioned", False):
            # the plan refers to the contacted customers only: fetch their rows from the shards
            idx = result.assignment_indices
            who = np.unique(idx[:, 0]) if idx.size else np.zeros(0, dtype=np.int64)
            parts = data._run(shard_contacted, who)
            ids = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, dtype=object)
            rows = np.concatenate([p[1] for p in parts]) if parts else np.zeros((0, data.M, data.T), np.float32)
            if rows.shape[0] == 0:
                rows = np.full((1, data.M, data.T), -np.inf, dtype=np.float32)
                ids = np.array(["(none)"])
            subproblem = problem.subproblem(ids, rows)
            result.assignment_indices = np.column_stack([np.searchsorted(who, idx[:, 0]), idx[:, 1], idx[:, 2]]) \
                if idx.size else idx
        result.info["bytes_sent_per_evaluation"] = int(np.median(data.bytes_sent)) if data.bytes_sent else 0
        result.info["bytes_received_per_evaluation"] = int(np.median(data.bytes_received)) if data.bytes_received else 0
        result.info["shards"] = len(data.sources)
        result.info["workers"] = workers
        result.message += f" on {len(data.sources)} shards / {workers} workers"
        return result, subproblem
    finally:
        if owned:
            cluster_obj = getattr(client, "cluster", None)
            client.close()
            if cluster_obj is not None:
                cluster_obj.close()


def _partitioned_data(client, problem) -> ShardedDual:
    meta = problem.dual_meta()
    data = object.__new__(ShardedDual)
    data.client = client
    data.sources = problem.shard_sources()
    data.problem = None
    data.u = None
    data.seg = np.zeros(1, dtype=np.int64)
    data.shard_meta = {"cell_ok": meta["cell_ok"], "neg_ok": meta["neg_ok"], "cost": meta["cost"],
                       "gap": int(meta["gap"]), "slots": max(1, min(meta["limit_max"], -(-meta["T"] // meta["gap"]),
                                                                  meta["T"]))}
    data.parquet_args = (list(problem.channel_names), list(problem.day_labels), int(problem.max_contacts))
    data.bytes_sent, data.bytes_received = [], []
    data._reload()
    max_u = np.max(np.stack(data._run(shard_max_u)), axis=0)
    data._setup(n=problem.n_customers, M=meta["M"], T=meta["T"], gap=meta["gap"], cost=meta["cost"],
                capacity=meta["capacity"], budget=meta["budget"], limit_max=meta["limit_max"], cell_ok=meta["cell_ok"],
                neg_ok=meta["neg_ok"], max_u=max_u, fair=None)
    return data
