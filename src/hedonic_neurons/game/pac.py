"""PAC-Top-Cover (Sliwinski & Zick 2017; the paper's Algorithm 1), docs/method.md §5.

Same loop as exact Top Covering, but each remaining player's choice set is estimated
from sampled coalitions: ``B_i = top_i(T*_i)`` with ``T*_i`` the best coalition for ``i``
(by :func:`~hedonic_neurons.game.preference_key`) among the round's samples that lie
inside the remaining players R, or ``{i}`` (``B_i = ∅``, a singleton) when none does.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from .._validation import as_generator, check_positive_int, check_size_range
from ..errors import InputError
from ..partition import Partition, _default_meta
from ._engine import run_top_cover_loop
from ._sampling import all_coalitions, sample_coalitions
from .preferences import _key_columns, _lex_greater, _sample_tops, check_game_phi, check_k
from .top_cover import _check_emit, clamp_k

__all__ = ["SAMPLERS", "pac_top_cover", "sample_values"]

SAMPLERS = ("uniform", "top", "weighted", "exhaustive")
EXHAUSTIVE_MAX_N = 12


def sample_values(phi: np.ndarray, samples: np.ndarray, k: int, chunk: int = 32_768) -> np.ndarray:
    """``Φ(S) = (1/|S|) Σ_{i∈S} u_i(S)`` for every row of a padded sample array (App. B.2).

    Parameters
    ----------
    phi : numpy.ndarray, shape (n, n)
    samples : numpy.ndarray of int, shape (b, w)
        Sorted members padded with ``-1``.
    k : int

    Returns
    -------
    numpy.ndarray of float64, shape (b,)
    """
    out = np.zeros(samples.shape[0], dtype=np.float64)
    for s in range(0, samples.shape[0], chunk):
        S = samples[s : s + chunk]
        tops, vals = _sample_tops(phi, S, k)
        keys = _key_columns(tops, vals, np.zeros((S.shape[0], 1)), k)
        size = (S >= 0).sum(axis=1)
        out[s : s + chunk] = keys[..., 0].sum(axis=1) / np.maximum(size, 1)
    return out


class _PacState:
    """The round sample set W, its per-(sample, member) keys, and every player's best entry."""

    def __init__(
        self,
        phi: np.ndarray,
        k: int,
        m: int,
        omega: int,
        size_range: tuple[int, int],
        sampler: str,
        rng: np.random.Generator,
    ) -> None:
        self.phi, self.k, self.m, self.omega = phi, k, m, omega
        self.size_range, self.sampler, self.rng = size_range, sampler, rng
        n = phi.shape[0]
        self.n = n
        self.w = n if sampler == "exhaustive" else min(size_range[1], n)
        self.kk = max(min(k, self.w - 1), 0)
        self.reservoir = np.zeros((0, self.w), dtype=np.int64)
        self.rp = 0
        self.n_refresh = 0
        self.n_drawn = 0
        self.serial_next = 0
        self.best_slot = np.full(n, -1, dtype=np.int64)
        self.best_pos = np.full(n, -1, dtype=np.int64)
        all_players = np.arange(n)
        if sampler == "exhaustive":
            first = all_coalitions(all_players, 2)
        else:
            first = self._take(omega, np.ones(n, dtype=bool))
        cap = first.shape[0]
        self.bestkey = np.full((n, 2 * self.kk + 4), -np.inf)
        self.mem = np.full((cap, self.w), -1, dtype=np.int64)
        self.valid = np.zeros(cap, dtype=bool)
        self.serial = np.zeros(cap, dtype=np.int64)
        self.keys = np.zeros((cap, self.w, 2 * self.kk + 3), dtype=np.float64)
        self.tops = np.full((cap, self.w, self.kk), -1, dtype=np.int64)
        self.B = np.full((n, self.kk), -1, dtype=np.int64)
        # Inverted index player -> (slot, serial) of W: a CSR part rebuilt from W now and
        # then, plus an append buffer of entries placed since. Entries whose slot has been
        # dropped or reused (serial mismatch) are stale and filtered on read.
        self.buf_cap = max(1024, cap * self.w // 4)
        self.buf_player = np.zeros(self.buf_cap, dtype=np.int64)
        self.buf_slot = np.zeros(self.buf_cap, dtype=np.int64)
        self.buf_serial = np.zeros(self.buf_cap, dtype=np.int64)
        self.buf_fill = 0
        self._rebuild_index()
        self._refresh_B(self._place(np.arange(cap), first))

    # ------------------------------------------------------------------ reservoir
    def _refresh(self, alive: np.ndarray) -> None:
        """Redraw the reservoir from the remaining players (Algorithm 1, line 6).

        ``"uniform"``: the first reservoir holds ``m`` draws, later refills ``min(m, omega)``
        (see :func:`pac_top_cover`, Notes). ``"top"``/``"weighted"``: ``m`` candidates, of
        which ``omega`` are kept.
        """
        R = np.flatnonzero(alive)
        count = self.m if self.sampler != "uniform" or self.n_refresh == 0 else min(self.m, self.omega)
        cand = sample_coalitions(R, count, self.size_range, self.rng)
        self.n_drawn += cand.shape[0]
        if self.sampler in ("top", "weighted") and cand.shape[0]:
            val = sample_values(self.phi, cand, self.k)
            idx = np.arange(cand.shape[0])
            if self.sampler == "top":
                order = np.lexsort((idx, -val))
            else:
                # Efraimidis–Spirakis weighted sampling without replacement ∝ Φ(S):
                # key log(U)/Φ, largest first; Φ(S) = 0 gets key -inf (drawn last, in draw order).
                U = self.rng.random(cand.shape[0])
                with np.errstate(divide="ignore"):
                    key = np.where(val > 0, np.log(U) / np.where(val > 0, val, 1.0), -np.inf)
                order = np.lexsort((idx, -key))
            cand = cand[order[: self.omega]]
        if cand.shape[1] < self.w:
            cand = np.concatenate([cand, np.full((cand.shape[0], self.w - cand.shape[1]), -1)], axis=1)
        self.reservoir = cand
        self.rp = 0
        self.n_refresh += 1

    def _take(self, count: int, alive: np.ndarray) -> np.ndarray:
        """The next ``count`` reservoir samples inside R (Algorithm 1, lines 4–7)."""
        out: list[np.ndarray] = []
        need = count
        refreshed_empty = False
        while need > 0:
            if self.rp >= self.reservoir.shape[0]:
                if refreshed_empty:
                    break
                self._refresh(alive)
                refreshed_empty = self.reservoir.shape[0] == 0
                continue
            stop = min(self.reservoir.shape[0], self.rp + max(4 * need, 1024))
            chunk = self.reservoir[self.rp : stop]
            inside = ((chunk < 0) | alive[np.where(chunk >= 0, chunk, 0)]).all(axis=1)
            ok = np.flatnonzero(inside)
            if ok.size >= need:
                out.append(chunk[ok[:need]])
                self.rp += int(ok[need - 1]) + 1
                need = 0
            else:
                out.append(chunk[ok])
                need -= ok.size
                self.rp = stop
        return np.concatenate(out) if out else np.zeros((0, self.w), dtype=np.int64)

    # ------------------------------------------------------------------ W
    def _place(self, slots: np.ndarray, samples: np.ndarray) -> np.ndarray:
        """Put ``samples`` into W at ``slots``; returns players whose best entry improved."""
        slots = slots[: samples.shape[0]]
        if slots.size == 0:
            return np.zeros(0, dtype=np.int64)
        tops, vals = _sample_tops(self.phi, samples, self.k)
        size = (samples >= 0).sum(axis=1)
        keys = _key_columns(tops, vals, np.broadcast_to(size[:, None], samples.shape), self.k)
        self.mem[slots] = samples
        self.tops[slots] = tops[..., : self.kk]
        self.keys[slots] = keys
        self.valid[slots] = True
        self.serial[slots] = np.arange(self.serial_next, self.serial_next + slots.size)
        self.serial_next += slots.size
        r, c = np.nonzero(samples >= 0)
        sl = slots[r]
        who = samples[r, c]
        self._index_add(who, sl)
        return self._offer(who, sl, c, replace=False)

    # ------------------------------------------------------------------ index
    def _rebuild_index(self) -> None:
        r, c = np.nonzero((self.mem >= 0) & self.valid[:, None])
        who = self.mem[r, c]
        order = np.argsort(who, kind="stable")
        self.idx_ptr = np.zeros(self.n + 1, dtype=np.int64)
        np.cumsum(np.bincount(who, minlength=self.n), out=self.idx_ptr[1:])
        self.idx_slot = r[order]
        self.idx_serial = self.serial[self.idx_slot]
        self.buf_fill = 0

    def _index_add(self, who: np.ndarray, slot: np.ndarray) -> None:
        if self.buf_fill + who.size > self.buf_cap:
            self._rebuild_index()  # W already holds the new samples, so they are indexed
            return
        f = self.buf_fill
        self.buf_player[f : f + who.size] = who
        self.buf_slot[f : f + who.size] = slot
        self.buf_serial[f : f + who.size] = self.serial[slot]
        self.buf_fill += who.size

    def _entries_of(self, players: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Valid ``(player, slot)`` entries of W for ``players`` (unique ids)."""
        starts, stops = self.idx_ptr[players], self.idx_ptr[players + 1]
        counts = stops - starts
        total = int(counts.sum())
        offs = np.repeat(starts - np.cumsum(counts) + counts, counts) + np.arange(total)
        who = np.repeat(players, counts)
        slot, ser = self.idx_slot[offs], self.idx_serial[offs]
        if self.buf_fill:
            want = np.zeros(self.n, dtype=bool)
            want[players] = True
            bsel = np.flatnonzero(want[self.buf_player[: self.buf_fill]])
            who = np.concatenate([who, self.buf_player[bsel]])
            slot = np.concatenate([slot, self.buf_slot[bsel]])
            ser = np.concatenate([ser, self.buf_serial[bsel]])
        ok = self.valid[slot] & (self.serial[slot] == ser)
        return who[ok], slot[ok]

    def _offer(self, who: np.ndarray, slot: np.ndarray, pos: np.ndarray, *, replace: bool) -> np.ndarray:
        """Per player, keep the best of the offered entries and (unless ``replace``) the current best."""
        if who.size == 0:
            return who
        K = np.concatenate([self.keys[slot, pos], -self.serial[slot, None].astype(np.float64)], axis=1)
        cols = [K[:, c] for c in range(K.shape[1] - 1, -1, -1)]
        cols.append(who.astype(np.float64))
        order = np.lexsort(cols)
        who_s = who[order]
        last = order[np.flatnonzero(np.r_[who_s[1:] != who_s[:-1], True])]
        p, K = who[last], K[last]
        if not replace:
            better = _lex_greater(K, self.bestkey[p])
            last, p, K = last[better], p[better], K[better]
        self.bestkey[p] = K
        self.best_slot[p] = slot[last]
        self.best_pos[p] = pos[last]
        return p

    def _drop(self, slots: np.ndarray, alive: np.ndarray) -> np.ndarray:
        """Remove ``slots`` from W; recompute the players whose best entry was dropped."""
        if slots.size == 0:
            return np.zeros(0, dtype=np.int64)
        self.valid[slots] = False
        dropped = np.zeros(self.valid.size, dtype=bool)
        dropped[slots] = True
        bs = self.best_slot
        lost = np.flatnonzero(alive & (bs >= 0) & dropped[np.where(bs >= 0, bs, 0)])
        self.bestkey[lost] = -np.inf
        self.best_slot[lost] = -1
        self.best_pos[lost] = -1
        who, slot = self._entries_of(lost)
        if who.size:
            pos = np.argmax(self.mem[slot] == who[:, None], axis=1)
            self._offer(who, slot, pos, replace=True)
        return lost

    def _refresh_B(self, players: np.ndarray) -> np.ndarray:
        """Rewrite ``B`` rows of ``players`` from their best entries; returns those that changed."""
        players = np.unique(players)
        if players.size == 0:
            return players
        old = self.B[players].copy()
        bs, bp = self.best_slot[players], self.best_pos[players]
        has = bs >= 0
        rows = np.full((players.size, self.kk), -1, dtype=np.int64)
        rows[has] = self.tops[bs[has], bp[has]]
        self.B[players] = rows
        return players[(old != rows).any(axis=1)]

    def update(self, removed: np.ndarray, alive: np.ndarray) -> np.ndarray:
        """After a round: drop samples meeting the removed players, top up W, update bests."""
        _, slots = self._entries_of(np.unique(removed))
        slots = np.unique(slots)
        touched = [self._drop(slots, alive)]
        if self.sampler != "exhaustive" and slots.size:
            new = self._take(slots.size, alive)
            touched.append(self._place(slots, new))
        return self._refresh_B(np.concatenate(touched))


#: Largest working memory (bytes) :func:`pac_top_cover` will try to allocate for its
#: reservoir and coalition store; larger ``m``/``omega`` are refused before allocation.
PAC_MAX_BYTES = 1 << 36


def _check_reservoir_bytes(n: int, k: int, m: int, omega: int, size_max: int) -> None:
    """Refuse ``m``/``omega`` whose reservoir and store would exceed :data:`PAC_MAX_BYTES`."""
    w = max(min(size_max, n), 1)
    need = 8 * w * (m + omega * (2 * k + 5))  # reservoir (m, w) + keys (omega, w, 2k+3) + tops/mem
    if need > PAC_MAX_BYTES:
        raise InputError(
            f"m, omega: m={m} draws and omega={omega} kept coalitions of up to {w} players need about "
            f"{need / 2**30:.0f} GiB; expected at most {PAC_MAX_BYTES / 2**30:.0f} GiB (lower m or omega)."
        )


def pac_top_cover(
    phi: Any,
    k: int = 3,
    m: int = 800_000,
    omega: int = 80_000,
    size_range: tuple[int, int] = (2, 10),
    sampler: Literal["uniform", "top", "weighted", "exhaustive"] = "uniform",
    emit: Literal["smallest", "all"] = "smallest",
    seed: int | np.random.Generator = 0,
    *,
    progress: bool = False,
) -> Partition:
    """PAC-Top-Cover: Top Covering with choice sets estimated from sampled coalitions.

    Implements the paper's Algorithm 1 (docs/method.md §5): in each round every remaining player
    ``i`` takes ``T*_i``, its best coalition by :func:`preference_key` among the round's
    sample set W (coalitions inside the remaining players R), and points at
    ``B_i = top_i(T*_i)``; with no sample containing ``i`` (or no positive partner in
    ``T*_i``), ``B_i = ∅`` and ``i`` is a singleton sink. A sink SCC of the digraph
    ``i -> B_i`` is emitted and removed; repeat until R is empty. (Algorithm 1's closure
    check, line 19, holds for every sink SCC by definition.)

    Parameters
    ----------
    phi : array_like or SynergyMatrix, shape (n, n)
        Pairwise valuations (asymmetric allowed, diagonal ignored).
    k : int
        Number of top partners (paper: 3).
    m : int
        Reservoir size: coalitions drawn per reservoir refresh (paper: 8·10⁵).
    omega : int
        Coalitions per round, ω (paper: 8·10⁴).
    size_range : (int, int)
        ``(k_min, k_max)`` of the sampled coalition sizes (paper: (2, 10)); sizes are
        clipped to ``|R|`` when fewer players remain.
    sampler : {"uniform", "top", "weighted", "exhaustive"}
        How a reservoir is filled from the remaining players R:

        * ``"uniform"`` — the paper's D (§3.3): ``m`` draws, size uniform in the range,
          members uniform in R; kept in draw order.
        * ``"top"`` — ``m`` draws from D, keep the ω with largest Φ(S) (paper §4), in
          order of decreasing Φ (ties by draw order).
        * ``"weighted"`` — ``m`` draws from D, keep ω of them drawn without replacement with
          probability ∝ Φ(S) (App. B.2; Efraimidis–Spirakis keys ``log(U)/Φ``, in key
          order). Φ(S) ≥ 0 always (only positive valuations enter a utility); coalitions
          with Φ(S) = 0 get weight zero and are used only when fewer than ω candidates
          have Φ > 0 (then in draw order).
        * ``"exhaustive"`` — W is every coalition of R with at least 2 members (``m``,
          ``omega`` and ``size_range`` are ignored); ``T*_i = ch_i(R)``, so the result
          equals :func:`top_cover`. Only for ``n <= 12``.
    emit : {"smallest", "all"}
        Per round, emit the smallest sink SCC (ties by lowest member), or all of them.
    seed : int or numpy.random.Generator
        Seeds every draw (one ``numpy.random.Generator`` for sizes, members and the
        weighted sampler's keys, consumed in a fixed order); the same seed gives the same
        partition.
    progress : bool
        Show a progress bar (players assigned).

    Returns
    -------
    Partition
        ``meta``: ``method="pac_top_cover"``, ``params`` (all arguments), ``n_rounds``,
        ``n_samples_drawn``, ``n_reservoir_refreshes``, provenance.

    Notes
    -----
    **Sample reuse (our specification of Algorithm 1, lines 2–7).** Every round uses ω
    coalitions inside R, as in Algorithm 1. The first round takes the first ω of the
    reservoir. After a round's coalition(s) are emitted, the samples of W that meet them
    are dropped and only those are replaced, by the next reservoir samples lying inside R
    (reservoir samples that meet a removed player are discarded as the scan passes them);
    the rest of W is carried into the next round. When the reservoir runs dry it is
    redrawn from R itself (a stale sample lies inside R with probability ≈ (|R|/n)^|T|,
    so filtering an old reservoir would starve). With ``"uniform"`` the first reservoir
    holds ``m`` draws and later refills ``min(m, ω)`` draws from the current R: W loses
    only a few samples per round, so a refill of ``m`` would mostly go stale before it is
    used. (``"top"``/``"weighted"`` refills always score ``m`` candidates.) Draws are
    i.i.d., so when few players remain W holds repeated coalitions. Taking ω fresh
    samples every round (the literal reading) would cost ω·(number of rounds) draws —
    about 10¹⁰ coalitions at n = 14336 with thousands of rounds — whereas carrying W over
    costs draws proportional to the samples lost (about ``ω·E|T|·ln n`` over a run that
    emits singletons one by one).

    **Tie-breaks.** Equal preference keys: the sample that entered W first wins (equal
    keys have equal ``top_i``, so this never changes ``B_i``). Within ``top_i``: larger
    ``phi[i, j]`` first, ties by smaller ``j``. Among sink SCCs: smallest size, then
    lowest member.

    Raises
    ------
    InputError
        On a malformed ``phi``, ``k < 1``, ``m``/``omega`` < 1, a bad ``size_range``, an
        unknown ``sampler``/``emit``, a bad seed, or ``sampler="exhaustive"`` with n > 12.
    """
    arr = check_game_phi(phi)
    k = check_k(k)
    m = check_positive_int(m, "m")
    omega = check_positive_int(omega, "omega")
    lo, hi = check_size_range(size_range, "size_range")
    if sampler not in SAMPLERS:
        raise InputError(f"sampler: expected one of {SAMPLERS}, got {sampler!r}.")
    _check_emit(emit)
    seed_meta = seed if not isinstance(seed, np.random.Generator) else "generator"
    rng = as_generator(seed)
    n = arr.shape[0]
    if omega > m:
        raise InputError(f"omega: expected 1 <= omega <= m (omega coalitions are taken from m draws), "
                         f"got omega={omega}, m={m}.")
    if sampler != "exhaustive":
        _check_reservoir_bytes(n, clamp_k(k, n), m, omega, hi)
    if sampler == "exhaustive" and n > EXHAUSTIVE_MAX_N:
        raise InputError(
            f"sampler: 'exhaustive' enumerates all 2^n coalitions and is limited to n <= "
            f"{EXHAUSTIVE_MAX_N}, got n = {n}; use 'uniform', 'top' or 'weighted'."
        )
    meta = _default_meta(
        "pac_top_cover", k=k, m=m, omega=omega, size_range=[lo, hi], sampler=sampler, emit=emit, seed=seed_meta
    )
    if n == 0:
        return Partition.from_labels(np.zeros(0, dtype=np.int64), {**meta, "n_rounds": 0})
    state = _PacState(arr, clamp_k(k, n), m, omega, (lo, hi), sampler, rng)
    labels, rounds = run_top_cover_loop(state.B, state.update, emit, progress, "pac_top_cover")
    meta.update(n_rounds=rounds, n_samples_drawn=state.n_drawn, n_reservoir_refreshes=state.n_refresh)
    return Partition.from_labels(labels, meta)
