"""Valuations: exact PAS vs brute-force ablation through real models, second order, OCA, null."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

from hedonic_neurons.errors import InputError, LinearReadoutError
from hedonic_neurons.models.capture import capture
from hedonic_neurons.records import LayerRecord, Readout
from hedonic_neurons.valuations import (
    kernels,
    marginals,
    null_valuation,
    oca,
    pas,
    pas_brute_force,
    pas_pairs,
)
from tests.helpers import assert_close
from tests.tiny_models import FAMILIES, one_thread, random_batches, tiny_model


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    with one_thread():
        yield


def _record(family: str, lora_scale: float = 1.0, n: int = 16):
    model = tiny_model(family, dtype=torch.float64, intermediate=n, n_layers=3, lora_layers=(1,),
                       lora_scale=lora_scale)
    batches = random_batches(model, 1, 6, 6, seed=3, padding_side="left" if family != "bert" else "right")
    return model, batches, capture(model, batches, [1], progress=False, dtype=np.float64)[1]


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_exact_pas_equals_brute_force_on_all_pairs(family: str) -> None:
    model, batches, rec = _record(family)
    brute = pas_brute_force(model, batches, 1)
    exact = pas(rec, "exact")
    assert exact.values.shape == (16, 16) and exact.meta["method"] == "pas_exact"
    assert_close(exact.values, brute, rtol=1e-6, atol=1e-12)  # float32 storage of float64 results
    ii, jj = np.triu_indices(16, 1)
    assert_close(pas_pairs(rec, np.stack([ii, jj], 1)), brute[ii, jj], rtol=1e-6, atol=1e-13)
    assert np.abs(brute).max() > 1e-5  # not trivially zero


def _synthetic(n: int = 40, d: int = 24, N: int = 30, r: int = 3, norm: str = "rms", seed: int = 0,
               per_input: bool = False, scale: float = 1.0) -> LayerRecord:
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((d, n)) / np.sqrt(d)
    L, R = rng.standard_normal((d, r)) * 0.3 * scale, rng.standard_normal((r, n)) / np.sqrt(n)
    a_base = rng.standard_normal((N, n))
    a = a_base + scale * 0.5 * rng.standard_normal((N, n))
    y = rng.standard_normal((N, d)) + 0.5
    if per_input:
        ro = Readout(norm, rng.standard_normal((5, d)), rng.standard_normal(5), rng.uniform(0.5, 1.5, d),
                     rng.standard_normal(d) if norm == "layer" else None, eps=1e-5)
        ti = rng.integers(0, 5, N)
    else:
        ro = Readout(norm, rng.standard_normal(d), 0.3, rng.uniform(0.5, 1.5, d), None, eps=1e-5)
        ti = None
    return LayerRecord(layer=0, h=rng.standard_normal((N, d)), a=a, a_base=a_base, y=y, w_down=W + L @ R,
                       w_down_base=W, readout=ro, target_index=ti, delta_left=L, delta_right=R)


def _reference(rec: LayerRecord, i: int, j: int) -> float:
    f0 = rec.readout(rec.y, rec.target_index)
    return float(np.mean(f0 - rec.ablated_readout([i]) - rec.ablated_readout([j]) + rec.ablated_readout([i, j])))


@pytest.mark.parametrize("norm", ["rms", "layer"])
@pytest.mark.parametrize("per_input", [False, True])
def test_exact_matches_record_reference_and_backends_agree(norm: str, per_input: bool) -> None:
    rec = _synthetic(norm=norm, per_input=per_input)
    ref = np.zeros((40, 40))
    for i in range(40):
        for j in range(i + 1, 40):
            ref[i, j] = ref[j, i] = _reference(rec, i, j)
    torch_path = pas(rec, backend="torch", tile=7).values
    assert_close(torch_path, ref, rtol=1e-6, atol=1e-10)
    if kernels.HAVE_NUMBA:
        assert_close(pas(rec, backend="numba", tile=16).values, torch_path, rtol=1e-6, atol=1e-10)
    # no stored factors: recovered from w_down - w_down_base
    bare = LayerRecord(**{**rec.__dict__, "delta_left": None, "delta_right": None})
    assert_close(pas(bare).values, ref, rtol=1e-6, atol=1e-10)
    sub = [5, 1, 33]
    assert_close(pas(rec, players=sub).values, ref[np.ix_(sub, sub)], rtol=1e-6, atol=1e-10)
    psi = np.array([np.mean(rec.readout(rec.y, rec.target_index) - rec.ablated_readout([k])) for k in range(40)])
    assert_close(marginals(rec), psi, rtol=1e-9, atol=1e-12)
    assert_close(marginals(rec, players=sub), psi[sub], rtol=1e-9, atol=1e-12)


def test_exact_pas_is_exactly_symmetric() -> None:
    """Eq. 6 is symmetric in (i, j); a diagonal tile computes both orders, which at this size
    differ in the last bits (measured before the fix: 2e-5 of the entries, by up to 1e-11), and
    the games test φ for exact symmetry (Nash-stable dynamics lose their potential otherwise)."""
    rec = _synthetic(n=300, d=512, N=64)
    backends = ["torch", "numba"] if kernels.HAVE_NUMBA else ["torch"]
    for backend in backends:
        for tile in (1024, 128):
            v = pas(rec, backend=backend, tile=tile).values
            assert np.array_equal(v, v.T), (backend, tile)
    v = pas(rec, method="second_order", tile=128).values
    assert np.array_equal(v, v.T)


def test_mnist_identity_case() -> None:
    """W' = W = I, a = h, a_base = baseline 0: ablation zeroes residual coordinates (docs/method.md §1)."""
    rng = np.random.default_rng(1)
    N, d = 20, 12
    h = rng.standard_normal((N, d))
    ro = Readout("layer", rng.standard_normal((10, d)), np.zeros(10), np.ones(d), np.zeros(d), eps=1e-5)
    rec = LayerRecord(layer=0, h=h, a=h, a_base=np.zeros((N, d)), y=h, w_down=np.eye(d), w_down_base=np.eye(d),
                      readout=ro, target_index=rng.integers(0, 10, N))
    ref = np.array([[_reference(rec, i, j) if i != j else 0.0 for j in range(d)] for i in range(d)])
    assert_close(pas(rec).values, ref, rtol=1e-6, atol=1e-10)


def test_second_order_error_shrinks_with_the_lora_update() -> None:
    errs = []
    for scale in (1.0, 0.1, 0.01):
        rec = _synthetic(scale=scale, seed=2)
        exact = pas(rec).values.astype(np.float64)
        approx = pas(rec, "second_order", error_pairs=1000)
        rel = np.linalg.norm(approx.values - exact) / np.linalg.norm(exact)
        errs.append(rel)
        assert approx.meta["second_order_error"]["n_pairs"] == 40 * 39 // 2
        assert approx.meta["second_order_error"]["rel_l2"] == pytest.approx(rel, rel=1e-3)
    assert errs[1] < errs[0] / 3 and errs[2] < errs[1] / 3
    assert errs[2] < 0.02  # documented: relative L2 error ~ O(|δ|) for small updates


def test_second_order_tracks_exact_on_a_real_model() -> None:
    _, _, rec_big = _record("llama", lora_scale=1.0)
    _, _, rec_small = _record("llama", lora_scale=0.05)
    e_big = pas(rec_big, "second_order").meta["second_order_error"]["rel_l2"]
    e_small = pas(rec_small, "second_order").meta["second_order_error"]["rel_l2"]
    assert e_small < e_big and e_small < 0.1


def test_linear_readout_is_refused() -> None:
    rec = _synthetic()
    lin = LayerRecord(**{**rec.__dict__, "readout": Readout("none", rec.readout.weight)})
    with pytest.raises(LinearReadoutError, match="identically zero"):
        pas(lin)
    with pytest.raises(LinearReadoutError):
        pas(lin, "second_order")


def test_oca_equals_direct_cosine_times_pearson_and_constant_is_zero() -> None:
    rec = _synthetic(n=12)
    a = rec.a.copy()
    a[:, 4] = 2.5  # constant neuron
    rec = LayerRecord(**{**rec.__dict__, "a": a})
    phi = oca(rec, dtype=torch.float64).values
    W = rec.w_down
    ref = np.zeros((12, 12))
    for i in range(12):
        for j in range(12):
            if i == j:
                continue
            cos = W[:, i] @ W[:, j] / (np.linalg.norm(W[:, i]) * np.linalg.norm(W[:, j]))
            rho = 0.0 if 4 in (i, j) else np.corrcoef(a[:, i], a[:, j])[0, 1]
            ref[i, j] = (1 - abs(cos)) * rho
    assert np.isfinite(phi).all()
    assert_close(phi, ref, rtol=1e-5, atol=1e-6)
    assert np.all(phi[4] == 0) and np.all(phi[:, 4] == 0)
    with pytest.raises(InputError, match="weights"):
        oca(rec, weights=np.ones((3, 5)))


def test_null_valuation_is_seeded_and_symmetric() -> None:
    a, b, c = null_valuation(30, 1), null_valuation(30, 1), null_valuation(30, 2)
    np.testing.assert_array_equal(a.values, b.values)
    assert not np.array_equal(a.values, c.values)
    np.testing.assert_array_equal(a.values, a.values.T)
    assert a.meta["method"] == "null" and np.all(np.diag(a.values) == 0)


@pytest.mark.parametrize("norm", ["rms", "layer"])
def test_second_order_equals_autograd_hessian_term(norm: str) -> None:
    """The GEMM form equals mean_x δ_i^T H(y) δ_j with H from torch.autograd (slow reference)."""
    from hedonic_neurons.models.readout import apply_readout

    rec = _synthetic(n=9, d=10, N=6, norm=norm, seed=4)
    so = pas(rec, "second_order", error_pairs=0).values
    ref = np.zeros((9, 9))
    deltas = rec.delta(np.arange(9))  # (N, n, d)
    for x in range(rec.n_inputs):
        y = torch.tensor(rec.y[x], dtype=torch.float64)
        H = torch.autograd.functional.hessian(lambda v: apply_readout(rec.readout, v[None])[0], y).numpy()
        ref += deltas[x] @ H @ deltas[x].T
    ref /= rec.n_inputs
    np.fill_diagonal(ref, 0.0)
    assert_close(so, ref, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("norm", ["rms", "layer", "none"])
def test_first_order_product_matches_autograd(norm: str) -> None:
    """The released code's quantity, checked against autograd attributions (it is not PAS)."""
    from hedonic_neurons.models.readout import apply_readout
    from hedonic_neurons.valuations import first_order_product

    rec = _synthetic(n=7, d=9, N=5, norm="rms", seed=6)
    if norm != "rms":
        ro = rec.readout
        rec = LayerRecord(**{**rec.__dict__, "readout": Readout(norm, ro.weight, ro.bias, ro.gamma, None, ro.eps)})
    attr = np.zeros((5, 7))
    for x in range(5):
        a = torch.tensor(rec.a[x], dtype=torch.float64, requires_grad=True)
        y = torch.tensor(rec.y[x], dtype=torch.float64) + torch.tensor(rec.w_down) @ (a - a.detach())
        apply_readout(rec.readout, y[None])[0].backward()
        attr[x] = (a.grad * a).detach().numpy()
    ref = -(attr.T @ attr) / 5
    np.fill_diagonal(ref, 0.0)
    fo = first_order_product(rec)
    assert fo.meta["method"] == "first_order_product"
    assert_close(fo.values, ref, rtol=1e-5, atol=1e-8)
