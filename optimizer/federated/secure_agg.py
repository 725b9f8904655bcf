"""Secure aggregation by pairwise additive masks in fixed point modulo 2^b.

The arithmetic is specified in :mod:`formulations.federated`. This module
simulates the protocol in one process, keeping the roles apart:

* :class:`SecureAggregationRound` holds each pair's seed (what the clients
  would agree on by Diffie–Hellman); the server object never reads them except
  through :meth:`SecureAggregationRound.reveal_seeds`, which refuses below quorum.
* :meth:`SecureAggregationRound.mask` is what client *i* sends: its fixed-point
  words plus the signed sum of its pairwise masks, mod 2^b.
* :meth:`SecureAggregationRound.aggregate` is the server: sum what arrived,
  remove the masks shared with dropped clients from the survivors' revealed
  seeds, return the exact fixed-point sum (or raise :class:`QuorumError`).

Not simulated: Shamir sharing of seeds and the self-masks of Bonawitz et al.
(2017), which matter when a client reported as dropped arrives later.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from formulations.errors import InputError
from formulations.federated import decode_fixed_point, encode_fixed_point


class QuorumError(RuntimeError):
    """Fewer survivors than the quorum: the round aborts, no seed is revealed."""


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def _prg_many(seeds: np.ndarray, size: int, modulus_bits: int) -> np.ndarray:
    """Expand pairwise seeds into uniform words mod 2^b, shape (len(seeds), size).

    Counter-mode SplitMix64 (word k of seed s = mix(s + (k + 1)·φ)), vectorised over all
    pairs at once. A simulation PRG: statistically uniform, not cryptographic — a deployment
    would use AES-CTR or ChaCha20 keyed by the agreed secret.
    """
    s = np.asarray(seeds, dtype=np.uint64).reshape(-1, 1)
    k = np.arange(1, size + 1, dtype=np.uint64).reshape(1, -1)
    with np.errstate(over="ignore"):
        z = s + k * _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
        z = z ^ (z >> np.uint64(31))
    return z if modulus_bits == 64 else (z >> np.uint64(32)).astype(np.uint32)


def _prg(seed: int, size: int, modulus_bits: int) -> np.ndarray:
    """Words of one seed (see :func:`_prg_many`)."""
    return _prg_many(np.array([seed], dtype=np.uint64), size, modulus_bits)[0]


@dataclass
class SecureAggregationRound:
    """One round of pairwise-masked aggregation among ``n_clients`` clients.

    Parameters
    ----------
    n_clients : int
        Clients that start the round (indices 0..n-1).
    dim : int
        Length of every update vector.
    quorum : int
        Minimum number of survivors; below it :meth:`aggregate` aborts.
    frac_bits : int
        Fixed-point fractional bits F.
    modulus_bits : {32, 64}
        Word size b; arithmetic is mod 2^b.
    random_state : int or numpy.random.Generator
        Source of the pairwise seeds.
    """

    n_clients: int
    dim: int
    quorum: int
    frac_bits: int = 24
    modulus_bits: int = 64
    random_state: int | np.random.Generator | None = None
    revealed_: list = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        if self.modulus_bits not in (32, 64):
            raise InputError("modulus_bits", f"expected 32 or 64, got {self.modulus_bits}")
        if not (1 <= self.quorum <= self.n_clients):
            raise InputError("quorum", f"expected 1 <= quorum <= {self.n_clients}, got {self.quorum}")
        if not (0 <= self.frac_bits < self.modulus_bits - 1):
            raise InputError("frac_bits", f"expected 0 <= frac_bits < {self.modulus_bits - 1}, got {self.frac_bits}")
        rng = np.random.default_rng(self.random_state)
        n = self.n_clients
        # seeds[i, j] = seeds[j, i] = s_ij (the pair's shared secret); diagonal unused
        upper = rng.integers(0, 2**64 - 1, size=(n, n), dtype=np.uint64, endpoint=True)
        self._seeds = np.triu(upper, 1) + np.triu(upper, 1).T
        self.dtype = np.uint64 if self.modulus_bits == 64 else np.uint32

    # -- client side ---------------------------------------------------------------------------
    def encode(self, x: np.ndarray) -> np.ndarray:
        """Fixed-point words of a float vector (what the client would send unmasked)."""
        return encode_fixed_point(x, self.frac_bits, self.modulus_bits)

    def pair_mask(self, i: int, j: int) -> np.ndarray:
        """Mask PRG(s_ij) as added by ``min(i, j)`` and subtracted by ``max(i, j)``."""
        return _prg(int(self._seeds[i, j]), self.dim, self.modulus_bits)

    def mask(self, i: int, x: np.ndarray) -> np.ndarray:
        """Client ``i``'s masked words y_i = enc(x_i) + Σ_{j>i} PRG(s_ij) − Σ_{j<i} PRG(s_ij) mod 2^b."""
        y = self.encode(x)
        if y.shape != (self.dim,):
            raise InputError("update", f"expected shape ({self.dim},), got {y.shape}")
        others = np.arange(self.n_clients)
        plus, minus = others[others > i], others[others < i]
        # unsigned arithmetic (sums included) wraps mod 2^b
        if plus.size:
            y = y + _prg_many(self._seeds[i, plus], self.dim, self.modulus_bits).sum(axis=0, dtype=self.dtype)
        if minus.size:
            y = y - _prg_many(self._seeds[i, minus], self.dim, self.modulus_bits).sum(axis=0, dtype=self.dtype)
        return y

    # -- dropout recovery ----------------------------------------------------------------------
    def reveal_seeds(self, survivors: list[int], dropped: list[int]) -> dict[tuple[int, int], int]:
        """Survivors reveal their seeds with the dropped clients — only at or above quorum."""
        if len(survivors) < self.quorum:
            raise QuorumError(f"{len(survivors)} survivors < quorum {self.quorum}: round aborted, nothing revealed")
        seeds = {(i, j): int(self._seeds[i, j]) for i in survivors for j in dropped}
        self.revealed_.append(seeds)
        return seeds

    # -- server side ---------------------------------------------------------------------------
    def aggregate(self, masked: dict[int, np.ndarray]) -> np.ndarray:
        """Exact fixed-point sum of the survivors' inputs, mod 2^b.

        Parameters
        ----------
        masked : dict
            ``client index -> masked words`` for the clients whose message arrived.

        Raises
        ------
        QuorumError
            If fewer than ``quorum`` messages arrived (before any seed is revealed).
        """
        survivors = sorted(masked)
        if len(survivors) < self.quorum:
            raise QuorumError(f"{len(survivors)} survivors < quorum {self.quorum}: round aborted, nothing revealed")
        total = np.zeros(self.dim, dtype=self.dtype)
        for i in survivors:
            total = total + masked[i]
        dropped = [j for j in range(self.n_clients) if j not in masked]
        if dropped:
            revealed = self.reveal_seeds(survivors, dropped)
            pairs = np.array(list(revealed.keys()), dtype=np.int64).reshape(-1, 2)
            seeds = np.array(list(revealed.values()), dtype=np.uint64)
            added = pairs[:, 1] > pairs[:, 0]        # survivor i added PRG(s_ij) when j > i: subtract it
            for sel, sign in ((added, -1), (~added, 1)):
                for chunk in np.array_split(np.flatnonzero(sel), max(1, int(sel.sum() * self.dim // 2**22) + 1)):
                    if chunk.size:
                        m = _prg_many(seeds[chunk], self.dim, self.modulus_bits).sum(axis=0, dtype=self.dtype)
                        total = total - m if sign < 0 else total + m
        return total

    def decode(self, words: np.ndarray) -> np.ndarray:
        """Float vector of aggregated fixed-point words."""
        return decode_fixed_point(words, self.frac_bits, self.modulus_bits)


def secure_sum(updates: list[np.ndarray], arrived: list[bool] | np.ndarray, quorum: int,
               frac_bits: int = 24, modulus_bits: int = 64,
               random_state: int | np.random.Generator | None = None) -> np.ndarray:
    """Float sum of the arrived updates through one masked round (convenience wrapper)."""
    rnd = SecureAggregationRound(len(updates), int(np.asarray(updates[0]).size), quorum, frac_bits,
                                 modulus_bits, random_state)
    masked = {i: rnd.mask(i, u) for i, u in enumerate(updates) if arrived[i]}
    return rnd.decode(rnd.aggregate(masked))


__all__ = ["SecureAggregationRound", "QuorumError", "secure_sum"]
