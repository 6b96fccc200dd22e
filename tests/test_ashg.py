"""The additively separable hedonic game: Nash-stable partitions by best response (docs/method.md §5)."""

from __future__ import annotations

import numpy as np
import pytest

from hedonic_neurons.errors import InputError
from hedonic_neurons.game import (
    NashStable,
    is_individually_stable,
    is_nash_stable,
    nash_stable_partition,
)
from hedonic_neurons.game.ashg import _JOIN, _PAIR, _BestResponseState, _is_symmetric
from hedonic_neurons.partition import Partition
from tests.helpers import assert_close


# ---------------------------------------------------------------------------- slow references
def slow_utility(phi: np.ndarray, i: int, members: set[int]) -> float:
    return float(sum(phi[i, j] for j in members if j != i))


def slow_has_profitable_move(phi: np.ndarray, labels: np.ndarray, consent: bool, tol: float = 0.0) -> bool:
    """Loop over players and every target (other coalitions, a new singleton)."""
    coalitions = {int(c): {int(j) for j in np.flatnonzero(labels == c)} for c in np.unique(labels)}
    for i in range(labels.size):
        own = coalitions[int(labels[i])]
        u = slow_utility(phi, i, own)
        if len(own) > 1 and 0.0 - u > tol:  # a new singleton needs nobody's consent
            return True
        for c, members in coalitions.items():
            if c == labels[i]:
                continue
            if consent and any(phi[j, i] < 0 for j in members):
                continue
            if slow_utility(phi, i, members) - u > tol:
                return True
    return False


def slow_potential(phi: np.ndarray, labels: np.ndarray) -> float:
    n = labels.size
    return 0.5 * float(sum(phi[i, j] for i in range(n) for j in range(n) if i != j and labels[i] == labels[j]))


def random_int_game(rng: np.random.Generator, n: int, symmetric: bool = True) -> np.ndarray:
    """Integer valuations in -3..3 (many ties, negative values), random diagonal (ignored)."""
    phi = rng.integers(-3, 4, size=(n, n)).astype(np.float64)
    if symmetric:
        phi = np.triu(phi, 1)
        phi = phi + phi.T
    phi[np.diag_indices(n)] = rng.integers(-5, 6, size=n)
    return phi


# ---------------------------------------------------------------------------- stability by brute force
def test_nash_stable_by_brute_force_on_random_symmetric_games() -> None:
    rng = np.random.default_rng(11)
    for game in range(240):
        n = int(rng.integers(1, 13))
        phi = random_int_game(rng, n)
        order = ("random", "index")[game % 2]
        part = nash_stable_partition(phi, order=order, seed=game, tol=0.0)
        assert part.meta["converged"], game
        assert part.meta["symmetric"]
        assert not slow_has_profitable_move(phi, part.labels, consent=False), (game, phi, part.labels)
        assert is_nash_stable(phi, part, tol=0.0)
        assert is_individually_stable(phi, part, tol=0.0)
        assert_close(part.meta["potential"], slow_potential(phi, part.labels), rtol=0, atol=1e-12)


@pytest.mark.parametrize("consent", [False, True])
def test_stability_checks_match_loop_reference_on_arbitrary_partitions(consent: bool) -> None:
    rng = np.random.default_rng(5 + consent)
    check = is_individually_stable if consent else is_nash_stable
    seen = {True: 0, False: 0}
    for game in range(300):
        n = int(rng.integers(1, 10))
        phi = random_int_game(rng, n, symmetric=bool(game % 3))
        # small random partitions often are stable; bias towards few coalitions to get both answers
        labels = rng.integers(0, max(1, int(rng.integers(1, n + 1))), size=n)
        part = Partition.from_labels(labels)
        expected = not slow_has_profitable_move(phi, part.labels, consent=consent)
        assert check(phi, part, tol=0.0) == expected, (game, phi, part.labels)
        assert check(phi, part.labels, tol=0.0) == expected
        seen[expected] += 1
    assert seen[True] > 20 and seen[False] > 20, seen


def test_individual_stability_is_weaker_than_nash_stability() -> None:
    # 0 and 1 like each other; 2 likes 0 but 0 does not want 2: {0,1},{2} is IS, not NS
    phi = np.array([[0, 5, -1], [5, 0, 0], [3, 0, 0]], dtype=float)
    part = Partition.from_coalitions([[0, 1], [2]])
    assert not is_nash_stable(phi, part)
    assert is_individually_stable(phi, part)


def test_float_games_stable_within_rounding_tolerance() -> None:
    rng = np.random.default_rng(3)
    for seed in range(30):
        n = int(rng.integers(2, 60))
        a = rng.standard_normal((n, n))
        phi = a + a.T
        part = nash_stable_partition(phi, seed=seed)
        assert part.meta["converged"]
        assert is_nash_stable(phi, part)
        assert not slow_has_profitable_move(phi, part.labels, consent=False, tol=1e-9)


# ---------------------------------------------------------------------------- known answers, invariants
@pytest.mark.parametrize("order", ["random", "index"])
def test_planted_blocks_recovered_exactly(order: str) -> None:
    rng = np.random.default_rng(0)
    sizes = [7, 5, 5, 4, 3, 1]
    labels = np.repeat(np.arange(len(sizes)), sizes)
    perm = rng.permutation(labels.size)
    labels = labels[perm]
    same = labels[:, None] == labels[None, :]
    phi = np.where(same, 1.0, -1.0) + 0.2 * rng.standard_normal((labels.size, labels.size))
    phi = (phi + phi.T) / 2
    for seed in range(5):
        part = nash_stable_partition(phi, order=order, seed=seed)
        assert part == Partition.from_labels(labels), seed
        assert part.meta["converged"]


def test_seeded_determinism_and_meta() -> None:
    rng = np.random.default_rng(1)
    a = rng.standard_normal((80, 80))
    phi = a + a.T
    p1 = nash_stable_partition(phi, seed=7)
    p2 = nash_stable_partition(phi, seed=7)
    assert p1 == p2
    for key in ("sweeps", "moves", "converged", "potential", "symmetric"):
        assert p1.meta[key] == p2.meta[key]
    assert p1.meta["method"] == "nash_stable"
    assert p1.meta["params"]["seed"] == 7 and p1.meta["params"]["order"] == "random"
    assert p1.meta["sweeps"] >= 2 and p1.meta["moves"] >= 1
    g = nash_stable_partition(phi, seed=np.random.default_rng(7))
    assert g.meta["converged"]


def test_relabelling_players_relabels_the_result() -> None:
    rng = np.random.default_rng(2)
    for trial in range(10):
        n = int(rng.integers(5, 40))
        a = rng.standard_normal((n, n))
        phi = a + a.T  # continuous values: no ties
        sigma = rng.permutation(n)
        perm = rng.permutation(n)  # new player t is old player perm[t]
        inv = np.argsort(perm)
        p_old = nash_stable_partition(phi, order=sigma)
        p_new = nash_stable_partition(phi[np.ix_(perm, perm)], order=inv[sigma])
        assert Partition.from_labels(p_old.labels[perm]) == p_new, trial


def test_asymmetric_cycle_reports_non_convergence() -> None:
    # 0 wants to be with 1, 1 wants to be away from 0: 0 follows, 1 flees, forever
    phi = np.array([[0.0, 1.0], [-1.0, 0.0]])
    with pytest.warns(RuntimeWarning, match="did not converge"):
        part = nash_stable_partition(phi, order="index", max_sweeps=25)
    assert part.meta["converged"] is False
    assert part.meta["sweeps"] == 25
    assert part.meta["moves"] == 50
    assert part.meta["symmetric"] is False
    assert not is_nash_stable(phi, part)
    # embedded in a larger asymmetric game with the same cycle
    rng = np.random.default_rng(4)
    big = -np.abs(rng.standard_normal((6, 6)))
    big[:2, :2] = phi
    with pytest.warns(RuntimeWarning):
        assert not nash_stable_partition(big, max_sweeps=10).meta["converged"]


def test_asymmetric_game_that_converges() -> None:
    phi = np.array([[0, 2, -1], [1, 0, -3], [-1, -1, 0]], dtype=float)
    part = nash_stable_partition(phi)
    assert part.meta["converged"] and not part.meta["symmetric"]
    assert part == Partition.from_coalitions([[0, 1], [2]])


def test_warm_start_from_a_stable_partition_stays() -> None:
    rng = np.random.default_rng(8)
    a = rng.standard_normal((50, 50))
    phi = a + a.T
    part = nash_stable_partition(phi, seed=0)
    again = nash_stable_partition(phi, init=part, seed=3)
    assert again == part
    assert again.meta["sweeps"] == 1 and again.meta["moves"] == 0
    assert again.meta["params"]["init"] == "partition"
    # warm start from an arbitrary partition also ends Nash stable
    warm = nash_stable_partition(phi, init=Partition.from_labels(rng.integers(0, 4, 50)), seed=1)
    assert warm.meta["converged"] and is_nash_stable(phi, warm)


def test_float32_input_matches_float64() -> None:
    rng = np.random.default_rng(9)
    phi = random_int_game(rng, 40)
    p64 = nash_stable_partition(phi, seed=2, tol=0.0)
    p32 = nash_stable_partition(phi.astype(np.float32), seed=2, tol=0.0)
    assert p64 == p32


def test_tie_breaks_documented() -> None:
    # 2 is indifferent between joining {0} and {1} (both 1): the smaller member wins
    phi = np.array([[0, -1, 1], [-1, 0, 1], [1, 1, 0]], dtype=float)
    part = nash_stable_partition(phi, order=[2, 0, 1])
    assert part == Partition.from_coalitions([[0, 2], [1]])
    # zero gain: staying wins, so all-zero valuations leave everyone alone
    zero = nash_stable_partition(np.zeros((4, 4)))
    assert zero.n_coalitions == 4 and zero.meta["moves"] == 0


# ---------------------------------------------------------------------------- the incremental state
def _check_state(state: _BestResponseState, phi: np.ndarray) -> None:
    n = phi.shape[0]
    for c in range(state.top):
        members = np.flatnonzero(state.slot == c)
        if members.size == 0:
            assert state.size[c] == 0 and np.all(state.col(c) == -np.inf)
            continue
        assert members.size >= 2 and state.size[c] == members.size
        assert state.rep[c] == members.min()
        assert_close(state.col(c), phi[:, members].sum(axis=1), rtol=0, atol=1e-12, msg=f"column {c}")
    assert np.array_equal(state.alone, state.slot < 0)
    assert np.array_equal(state.alone_idx, np.flatnonzero(state.slot < 0))
    labels = state.labels()
    for i in range(n):
        members = {int(j) for j in np.flatnonzero(labels == labels[i])}
        assert_close(state.utility(i), slow_utility(phi, i, members), rtol=0, atol=1e-12)


@pytest.mark.parametrize("symmetric", [True, False])
def test_incremental_sums_equal_recomputation_after_every_move(symmetric: bool) -> None:
    rng = np.random.default_rng(21 + symmetric)
    for game in range(40):
        n = int(rng.integers(2, 11))
        phi = rng.standard_normal((n, n)) if game % 2 else random_int_game(rng, n, symmetric)
        if symmetric:
            phi = (phi + phi.T) / 2
        state = _BestResponseState(phi, _is_symmetric(phi))
        for _ in range(60):
            i = int(rng.integers(n))
            if rng.random() < 0.5:
                step = state.best_response(i, 0.0)
                if step is None:
                    continue
                kind, target = step[0], step[1]
            else:  # an arbitrary move, to exercise every branch
                own = int(state.slot[i])
                options = [(_JOIN, c) for c in range(state.top) if state.size[c] > 0 and c != own]
                options += [(_PAIR, int(j)) for j in np.flatnonzero(state.alone) if j != i]
                options += [(2, i)] if own >= 0 else []
                if not options:
                    continue
                kind, target = options[int(rng.integers(len(options)))]
            state.move(i, kind, target)
            _check_state(state, phi)
            if rng.random() < 0.2:
                state.compact()
                _check_state(state, phi)


def test_warm_start_state_matches_recomputation() -> None:
    rng = np.random.default_rng(6)
    phi = rng.standard_normal((12, 12))
    labels = Partition.from_labels(rng.integers(0, 4, 12)).labels
    state = _BestResponseState(phi, False, labels)
    _check_state(state, phi)


def test_potential_rises_by_exactly_the_movers_gain() -> None:
    rng = np.random.default_rng(13)
    for game in range(40):
        n = int(rng.integers(2, 12))
        phi = random_int_game(rng, n) if game % 2 else rng.standard_normal((n, n))
        phi = np.triu(phi, 1) + np.triu(phi, 1).T + np.diag(np.diag(phi))
        state = _BestResponseState(phi, True)
        before = slow_potential(phi, state.labels())
        for _sweep in range(20):
            moved = False
            for i in rng.permutation(n).tolist():
                step = state.best_response(i, 0.0)
                if step is None:
                    continue
                state.move(i, step[0], step[1])
                after = slow_potential(phi, state.labels())
                assert step[2] > 0
                assert_close(after - before, step[2], rtol=0, atol=1e-10, msg=f"game {game}")
                before, moved = after, True
            if not moved:
                break
        assert not moved


# ---------------------------------------------------------------------------- estimator and errors
def test_estimator_matches_function() -> None:
    rng = np.random.default_rng(10)
    a = rng.standard_normal((30, 30))
    phi = a + a.T
    est = NashStable(order="index", random_state=4).fit(phi)
    ref = nash_stable_partition(phi, order="index", seed=4)
    assert est.partition_ == ref
    assert np.array_equal(est.labels_, ref.labels)
    assert len(est.coalitions_) == ref.n_coalitions
    assert np.array_equal(NashStable(order="index", random_state=4).fit_predict(phi), ref.labels)
    assert est.is_nash_stable(phi) and est.is_individually_stable(phi)
    params = est.get_params()
    assert params == {"init": "singletons", "order": "index", "max_sweeps": 200, "tol": None, "random_state": 4}
    assert est.set_params(max_sweeps=3).max_sweeps == 3
    with pytest.raises(InputError, match="unknown parameter"):
        est.set_params(k=3)
    with pytest.raises(InputError, match="top-responsive"):
        est.blocking_rate(phi)
    with pytest.raises(InputError, match="call fit"):
        _ = NashStable().labels_


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"order": "sorted"}, "order: expected"),
        ({"order": [0, 1, 1]}, "order: expected"),
        ({"order": [0, 1]}, "order: expected"),
        ({"init": "random"}, "init: expected"),
        ({"init": Partition.from_labels([0, 0])}, "partition: covers 2 players"),
        ({"max_sweeps": 0}, "max_sweeps"),
        ({"tol": -1.0}, "tol: expected"),
        ({"tol": float("nan")}, "tol: expected"),
        ({"seed": None}, "seed"),
    ],
)
def test_bad_arguments_raise_early(kwargs: dict, match: str) -> None:
    with pytest.raises(InputError, match=match):
        nash_stable_partition(np.zeros((3, 3)), **kwargs)


def test_bad_phi_and_partition() -> None:
    with pytest.raises(InputError, match="square"):
        nash_stable_partition(np.zeros((3, 4)))
    with pytest.raises(InputError, match="finite"):
        nash_stable_partition(np.array([[0, np.nan], [1, 0]]))
    with pytest.raises(InputError, match="covers 2 players"):
        is_nash_stable(np.zeros((3, 3)), Partition.from_labels([0, 1]))
    with pytest.raises(InputError, match="covers 2 players"):
        is_individually_stable(np.zeros((3, 3)), [0, 1])


def test_edge_sizes() -> None:
    assert nash_stable_partition(np.zeros((0, 0))).n_players == 0
    one = nash_stable_partition(np.array([[5.0]]))
    assert one.n_coalitions == 1 and one.meta["converged"]
    assert is_nash_stable(np.array([[5.0]]), one)


def test_tie_between_new_singleton_and_joining_a_lone_player() -> None:
    # 0 (in {0,1}, utility -1) values leaving and joining {2} both at 0: the new singleton
    # counts as member 0 < 2, so it wins; then nobody gains by moving
    phi = np.array([[0, -1, 0], [-1, 0, -1], [0, -1, 0]], dtype=float)
    start = Partition.from_coalitions([[0, 1], [2]])
    part = nash_stable_partition(phi, init=start, order="index")
    assert part == Partition.from_coalitions([[0], [1], [2]])
    assert part.meta["moves"] == 1


def test_cli_partition_method_nash(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from hedonic_neurons.cli.main import main

    rng = np.random.default_rng(12)
    a = rng.standard_normal((30, 30))
    phi = a + a.T
    path, out = tmp_path / "phi.npy", tmp_path / "part.json"
    np.save(path, phi)
    assert main(["partition", str(path), "--method", "nash", "--seed", "3", "--out", str(out)]) == 0
    part = Partition.from_json(out)
    assert part == nash_stable_partition(phi, seed=3)
    assert part.meta["method"] == "nash_stable" and part.meta["converged"]
    assert "blocking_rate" not in part.meta
    assert "30 players" in capsys.readouterr().out


def test_accepts_a_synergy_matrix() -> None:
    from hedonic_neurons.valuations import null_valuation

    sm = null_valuation(40, seed=1)
    part = nash_stable_partition(sm, seed=0)
    assert part == nash_stable_partition(np.asarray(sm.values), seed=0)
    assert is_nash_stable(sm, part) and is_individually_stable(sm, part)
