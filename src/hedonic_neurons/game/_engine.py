"""The Top Covering loop shared by the exact and the PAC partitioners (docs/method.md §5).

The loop keeps a choice digraph over the remaining players R (row ``i`` of ``B`` lists
``B_i``, padded with ``-1``) and the set of its sink strongly connected components, and
emits them one round at a time. Recomputing all SCCs of R every round would cost
``O(k·|R|)`` per round and ``O(k·n²)`` overall, so the set of sink SCCs is maintained
incrementally:

* whether a set X is a sink SCC (strongly connected and closed under the edges) depends
  only on the out-edges of X's members, so a sink SCC none of whose members changed its
  ``B_i`` stays a sink SCC, and a *new* sink SCC must contain a player whose ``B_i``
  changed;
* hence after a round only the part of the graph reachable from the changed players
  (a forward-closed set, so its SCCs and sink SCCs are those of the whole graph) is
  re-examined with ``scipy.sparse.csgraph.connected_components(connection="strong")``.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from tqdm.auto import tqdm

__all__ = ["run_top_cover_loop", "strong_components"]


SMALL_GRAPH = 96


def strong_components(f: int, src: np.ndarray, dst: np.ndarray) -> tuple[int, np.ndarray]:
    """Strongly connected components of a digraph on ``0..f-1`` given as edge arrays.

    Uses ``scipy.sparse.csgraph.connected_components(connection="strong")``; graphs with
    at most ``SMALL_GRAPH`` nodes go through a pure-Python Tarjan instead, because the
    sparse-matrix construction dominates there (the loop runs once per round).

    Returns
    -------
    n_components : int
    labels : numpy.ndarray of int, shape (f,)
    """
    if f > SMALL_GRAPH:
        graph = sparse.csr_matrix((np.ones(src.size, dtype=np.int8), (src, dst)), shape=(f, f))
        n_comp, lab = connected_components(graph, directed=True, connection="strong")
        return int(n_comp), lab
    adj: list[list[int]] = [[] for _ in range(f)]
    for a, b in zip(src.tolist(), dst.tolist()):
        adj[a].append(b)
    index = [-1] * f
    low = [0] * f
    on_stack = [False] * f
    stack: list[int] = []
    lab_l = [-1] * f
    counter = 0
    n_comp = 0
    for root in range(f):
        if index[root] >= 0:
            continue
        work = [(root, 0)]
        while work:
            v, it = work.pop()
            if it == 0:
                index[v] = low[v] = counter
                counter += 1
                stack.append(v)
                on_stack[v] = True
            recurse = False
            for t in range(it, len(adj[v])):
                w = adj[v][t]
                if index[w] < 0:
                    work.append((v, t + 1))
                    work.append((w, 0))
                    recurse = True
                    break
                if on_stack[w]:
                    low[v] = min(low[v], index[w])
            if recurse:
                continue
            if low[v] == index[v]:
                while True:
                    w = stack.pop()
                    on_stack[w] = False
                    lab_l[w] = n_comp
                    if w == v:
                        break
                n_comp += 1
            if work:
                u = work[-1][0]
                low[u] = min(low[u], low[v])
    return n_comp, np.asarray(lab_l, dtype=np.int64)


class _SinkTracker:
    def __init__(self, B: np.ndarray) -> None:
        self.B = B
        n = B.shape[0]
        self.comp_of = np.full(n, -1, dtype=np.int64)
        self.members: list[np.ndarray] = []
        self.valid: list[bool] = []
        self.heap: list[tuple[int, int, int]] = []

    def invalidate(self, players: np.ndarray) -> None:
        if players.size == 0:
            return
        ids = np.unique(self.comp_of[players])
        for c in ids[ids >= 0].tolist():
            self.valid[c] = False
            self.comp_of[self.members[c]] = -1

    def discover(self, seeds: np.ndarray) -> None:
        """Push every sink SCC that contains one of ``seeds`` (alive players)."""
        if seeds.size == 0:
            return
        n = self.B.shape[0]
        B = self.B
        seen = np.zeros(n, dtype=bool)
        seen[seeds] = True
        frontier = seeds
        while frontier.size:
            nxt = B[frontier].ravel()
            nxt = nxt[nxt >= 0]
            nxt = nxt[~seen[nxt]]
            if nxt.size == 0:
                break
            nxt = np.unique(nxt)
            seen[nxt] = True
            frontier = nxt
        F = np.flatnonzero(seen)
        f = F.size
        loc = np.full(n, -1, dtype=np.int64)
        loc[F] = np.arange(f)
        BF = B[F]
        src = np.repeat(np.arange(f), BF.shape[1])
        dst = BF.ravel()
        keep = dst >= 0
        src, dst = src[keep], loc[dst[keep]]
        n_comp, lab = strong_components(f, src, dst)
        not_sink = np.zeros(n_comp, dtype=bool)
        cross = lab[src] != lab[dst]
        not_sink[lab[src[cross]]] = True
        has_seed = np.zeros(n_comp, dtype=bool)
        has_seed[lab[loc[seeds]]] = True
        wanted = ~not_sink & has_seed
        sel = wanted[lab]
        local = np.flatnonzero(sel)
        order = np.argsort(lab[local], kind="stable")
        local = local[order]
        bounds = np.flatnonzero(np.diff(lab[local])) + 1
        for grp in np.split(local, bounds) if local.size else []:
            mem = F[grp]  # F is sorted, grp ascending -> mem sorted
            cid = len(self.members)
            self.members.append(mem)
            self.valid.append(True)
            self.comp_of[mem] = cid
            heapq.heappush(self.heap, (int(mem.size), int(mem[0]), cid))

    def pop(self, emit: str) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        if emit == "smallest":
            while self.heap:
                _, _, cid = heapq.heappop(self.heap)
                if self.valid[cid]:
                    out.append(self.members[cid])
                    break
        else:
            valid = [(s, m, c) for s, m, c in self.heap if self.valid[c]]
            self.heap = []
            out = [self.members[c] for _, _, c in sorted(valid)]
        for mem in out:
            self.comp_of[mem] = -1
        return out


def run_top_cover_loop(
    B: np.ndarray,
    update: Callable[[np.ndarray, np.ndarray], np.ndarray],
    emit: str,
    progress: bool = False,
    desc: str = "top cover",
) -> tuple[np.ndarray, int]:
    """Run the Top Covering loop.

    Parameters
    ----------
    B : numpy.ndarray of int64, shape (n, kk)
        Initial choice edges ``B_i`` of every player (``-1`` padding). Modified in place.
    update : callable ``(removed, alive) -> changed``
        Called after each round with the players just removed and the alive mask; must
        rewrite the rows of ``B`` that change (pointing only at alive players) and return
        the alive players whose row changed.
    emit : {"smallest", "all"}
        Emit the smallest sink SCC per round (ties by lowest member), or all of them.
    progress : bool
        Show a tqdm bar of players assigned.
    desc : str
        Label of the bar.

    Returns
    -------
    labels : numpy.ndarray of int64, shape (n,)
        Coalition index of each player, in order of emission.
    n_rounds : int
    """
    n = B.shape[0]
    labels = np.full(n, -1, dtype=np.int64)
    alive = np.ones(n, dtype=bool)
    tracker = _SinkTracker(B)
    tracker.discover(np.arange(n))
    n_alive, next_label, rounds = n, 0, 0
    bar = tqdm(total=n, unit="player", desc=desc, disable=not progress, leave=False)
    while n_alive:
        emitted = tracker.pop(emit)
        if not emitted:  # pragma: no cover - every finite digraph has a sink SCC
            raise RuntimeError("top cover: no sink SCC among the remaining players (internal error).")
        for mem in emitted:
            labels[mem] = next_label
            next_label += 1
        removed = np.concatenate(emitted)
        alive[removed] = False
        n_alive -= removed.size
        rounds += 1
        bar.update(removed.size)
        if not n_alive:
            break
        changed = update(removed, alive)
        tracker.invalidate(changed)
        tracker.discover(changed)
    bar.close()
    return labels, rounds
