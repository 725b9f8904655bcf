"""``DiscreteMDP``: the user-facing discounted MDP (QuantEcon ``DiscreteDP`` arguments).

The maths and the stopping rules are in :mod:`formulations.mdp`; the solvers
in :mod:`solvers.dp`. Switching from QuantEcon is a change of import::

    from optimizer import DiscreteMDP
    mdp = DiscreteMDP(R, Q, beta)                       # R (n, m), Q (n, m, n)
    mdp = DiscreteMDP(R, Q, beta, s_indices, a_indices)  # R (L,), Q (L, n) dense or sparse
    res = mdp.solve("mpi", epsilon=1e-6)
    res.v, res.sigma, res.num_iter, res.converged, res.error_bound
"""

from __future__ import annotations

from typing import Any

import numpy as np

from formulations.errors import InputError
from formulations.mdp import MDPModel, make_mdp_model, q_values
from solvers import dp as dp_solvers
from solvers.dp import DPResult, Operators


class DiscreteMDP:
    """A finite discounted MDP, validated once at construction.

    Parameters
    ----------
    R : array_like (n, m) or (L,)
        Rewards. In the product form ``-inf`` marks an inadmissible action.
    Q : array_like (n, m, n), (L, n) or scipy sparse (L, n)
        Transition probabilities (rows >= 0, summing to 1).
    beta : float
        Discount factor in [0, 1).
    s_indices, a_indices : array_like (L,) of int, optional
        State and action of each row in the state-action form.

    Raises
    ------
    InputError
        For rows of Q not summing to one, beta outside [0, 1), states
        without an admissible action, NaN rewards, bad shapes or indices.

    Examples
    --------
    Puterman (2005), §3.1, as in QuantEcon's documentation:

    >>> mdp = DiscreteMDP([[5, 10], [-1, -np.inf]], [[(0.5, 0.5), (0, 1)], [(0, 1), (0.5, 0.5)]], 0.95)
    >>> res = mdp.solve("pi")
    >>> res.sigma, np.round(res.v, 8)
    (array([0, 0]), array([ -8.57142857, -20.        ]))
    """

    def __init__(self, R: Any, Q: Any, beta: float, s_indices: Any = None, a_indices: Any = None) -> None:
        self.model = make_mdp_model(R, Q, beta, s_indices, a_indices)

    @classmethod
    def from_model(cls, model: MDPModel) -> "DiscreteMDP":
        """Wrap an already validated :class:`formulations.mdp.MDPModel` (e.g. from a builder)."""
        if not isinstance(model, MDPModel):
            raise InputError("model", f"expected an MDPModel, got {type(model).__name__}")
        obj = cls.__new__(cls)
        obj.model = model
        return obj

    # ------------------------------------------------------------ sizes
    @property
    def beta(self) -> float:
        return self.model.beta

    @property
    def num_states(self) -> int:
        return self.model.num_states

    @property
    def num_actions(self) -> int:
        return self.model.num_actions

    @property
    def num_sa_pairs(self) -> int:
        return self.model.num_sa_pairs

    # ---------------------------------------------------------- solving
    def solve(self, method: str = "mpi", epsilon: float = 1e-6, max_iter: int | None = None, v_init: Any = None,
              k: int = 20, stop: str = "span", eliminate: bool = True, adaptive: bool = True,
              threads: int | None = None) -> DPResult:
        """Solve for an epsilon-optimal policy.

        Parameters
        ----------
        method : str
            ``"vi"`` (value iteration), ``"pi"`` (policy iteration) or
            ``"mpi"`` (modified policy iteration); QuantEcon's long names work too.
        epsilon : float
            The returned policy is epsilon-optimal when ``converged`` (VI, MPI).
        max_iter : int, optional
            Iteration cap (default 10,000 for VI/MPI, 1,000 for PI). Hitting it
            gives ``converged=False`` with valid bounds.
        v_init : array_like (n,), optional
            Starting values (default: QuantEcon's, max_a r(s, a) for VI/PI and
            min r / (1 - beta) for MPI).
        k : int
            MPI: at most k partial evaluation steps per iteration.
        stop : {"span", "norm"}
            VI stopping rule: McQueen–Porteus span rule (default) or the
            sup-norm rule ``||v_{k+1} - v_k|| < eps (1 - beta) / (2 beta)``
            (QuantEcon's rule and iterates).
        eliminate : bool
            Drop provably non-optimal actions on the way (MacQueen's test).
        adaptive : bool
            MPI: stop a partial evaluation once its steps only shift a constant.
        threads : int, optional
            1 for serial kernels; None lets large passes use numba's threads.

        Returns
        -------
        DPResult
        """
        return dp_solvers.solve_mdp(self.model, method, epsilon, max_iter, v_init, k=k, stop=stop,
                                    eliminate=eliminate, adaptive=adaptive, threads=threads)

    def backward_induction(self, horizon: int, v_term: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """Finite-horizon values (T+1, n) and policies (T, n) (QuantEcon's ``backward_induction``)."""
        return dp_solvers.backward_induction(self.model, horizon, v_term)

    # -------------------------------------------------------- operators
    def _v(self, v: Any) -> np.ndarray:
        arr = np.ascontiguousarray(np.asarray(v, dtype=np.float64).ravel())
        if arr.shape != (self.num_states,):
            raise InputError("v", f"expected {self.num_states} values, got shape {np.shape(v)}")
        return arr

    def bellman_operator(self, v: Any) -> np.ndarray:
        """Tv."""
        ops = Operators(self.model)
        return ops.bellman(self._v(v), np.empty(self.num_states))

    def compute_greedy(self, v: Any) -> np.ndarray:
        """The v-greedy policy (lowest action on ties)."""
        ops = Operators(self.model)
        ops.bellman(self._v(v), np.empty(self.num_states))
        return self.model.actions[ops.best_pairs()].astype(np.int64)

    def q_table(self, v: Any) -> np.ndarray:
        """(n, m) table r(s, a) + beta E[v(s')], ``-inf`` for inadmissible actions."""
        q = q_values(self.model, self._v(v))
        table = np.full((self.num_states, self.num_actions), -np.inf)
        table[self.model.states, self.model.actions] = q
        return table

    def policy_pairs(self, sigma: Any) -> np.ndarray:
        """Pair indices of a policy given as actions (n,); InputError for inadmissible actions."""
        sig = np.asarray(sigma)
        if sig.shape != (self.num_states,) or sig.dtype.kind not in "iu":
            raise InputError("sigma", f"expected {self.num_states} integer actions, got shape {sig.shape}")
        if sig.min() < 0 or sig.max() >= self.num_actions:
            raise InputError("sigma", f"expected actions in [0, {self.num_actions})")
        pairs = self.model.pair_index()[np.arange(self.num_states), sig]
        if (pairs < 0).any():
            s = int(np.flatnonzero(pairs < 0)[0])
            raise InputError("sigma", f"action {int(sig[s])} is not admissible in state {s}")
        return pairs

    def evaluate_policy(self, sigma: Any) -> np.ndarray:
        """v_sigma by the matrix-free Krylov solver (residual checked, sparse direct fall-back)."""
        v, _ = Operators(self.model).evaluate(self.policy_pairs(sigma))
        return v

    def __repr__(self) -> str:
        return (f"DiscreteMDP(states={self.num_states}, actions={self.num_actions}, pairs={self.num_sa_pairs}, "
                f"beta={self.beta})")
