"""PuzzleMix: the energy against the reference's, the exact and local solvers
against brute force, the transport against the reference's, and the layer
(exact lam, pairing, gradients, compiled steps, hostile inputs)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from conftest import BACKEND, in_tf_data, source_of, tagged_images, to_np
from hypothesis import given, settings
from hypothesis import strategies as st
from puzzle_oracles import brute_force_np, energy_np

from keras_sumix._keras_compat import DynamicBackend
from keras_sumix.layers import puzzle_mix as pm
from keras_sumix.layers.puzzle_mix import PuzzleMix
from keras_sumix.layers.saliency_mix import spectral_residual

OPS = DynamicBackend()
N = 4  # one batch size throughout: each new shape compiles under JAX


def _t(x):
    return OPS.convert_to_tensor(np.asarray(x))


_COMPILED = {}


def _run(fn, *arrays, **static):
    """`fn(OPS, *arrays, **static)`, compiled under JAX (eager JAX compiles
    every small op at every new shape; one compilation is cheaper)."""
    if BACKEND != "jax":
        return fn(OPS, *(_t(a) for a in arrays), **static)
    import jax

    key = (fn, tuple(sorted(static.items())))
    if key not in _COMPILED:
        _COMPILED[key] = jax.jit(lambda *a: fn(OPS, *a, **static))
    return _COMPILED[key](*(_t(a) for a in arrays))


def _terms(rng, side, n_labels, n=N, negative=False):
    """Random energies: unary in [0, 1), edge weights in [0, 0.5) (or
    [-0.1, 0.4): the exact solver does not need them submodular)."""
    unary = rng.random((n, side, side, n_labels)).astype("float32")
    low = -0.1 if negative else 0.0
    w_v = rng.uniform(low, low + 0.5, (n, side - 1, side)).astype("float32")
    w_h = rng.uniform(low, low + 0.5, (n, side, side - 1)).astype("float32")
    return unary, w_v, w_h


def _smooth_images(rng, n, h, w, c=3):
    """Images in [0, 1] with structure (cumulated noise), not white noise."""
    x = np.cumsum(np.cumsum(rng.random((n, h, w, c)), 1), 2)
    x -= x.min(axis=(1, 2, 3), keepdims=True)
    return (x / x.max(axis=(1, 2, 3), keepdims=True)).astype("float32")


def _blobs(rng, n, h, w):
    """One Gaussian saliency blob per image."""
    yy, xx = np.mgrid[:h, :w]
    cy, cx = rng.integers(0, h, n), rng.integers(0, w, n)
    d = (yy - cy[:, None, None]) ** 2 + (xx - cx[:, None, None]) ** 2
    return np.exp(-d / (0.05 * h * w)).astype("float32")


# --------------------------------------------------------------------------- #
# The energy: the reference's, term by term
# --------------------------------------------------------------------------- #
def _reference_terms(x, grad, perm, side, lam, beta, gamma, eta, neigh, n_labels):
    """A NumPy transcription of the reference's `mixup_graph` (up to the
    graph cut) and `graphcut_multi`'s unary / edge costs, before their
    int32 quantisation. x: (N, C, H, W) in [0, 1]; returns per sample
    (unary (B, B, n), w_v, w_h)."""

    def avg_pool(a, k):  # (..., H, W) -> (..., H/k, W/k)
        *lead, h, w = a.shape
        return a.reshape(*lead, h // k, k, w // k, k).mean(axis=(-3, -1))

    def neigh_penalty(in1, in2, k):
        pw_x = (in1[:, :, :-1, :] - in2[:, :, 1:, :])[:, :, k - 1 :: k, :]
        pw_y = (in1[:, :, :, :-1] - in2[:, :, :, 1:])[:, :, :, k - 1 :: k]
        pw_x = np.abs(pw_x).mean(1)
        pw_y = np.abs(pw_y).mean(1)
        pw_x = pw_x.reshape(*pw_x.shape[:2], -1, k).mean(-1)
        pw_y = pw_y.reshape(pw_y.shape[0], -1, k, pw_y.shape[-1]).mean(-2)
        return pw_x, pw_y

    n, _, _, width = x.shape
    block = width // side
    neigh = min(neigh, block)
    beta = beta / side / 16
    pool = avg_pool(grad, block)
    unary1 = pool / pool.reshape(n, -1).sum(1)[:, None, None]
    unary2 = unary1[perm].copy()
    unary1 = unary1.copy()
    in1 = avg_pool(x, neigh)
    in2 = in1[perm]
    k = block // neigh
    pw = {}
    for a, ia in ((0, in2), (1, in1)):
        for b, ib in ((0, in2), (1, in1)):
            px, py = neigh_penalty(ia, ib, k)
            pw[a, b] = (beta * gamma * px, beta * gamma * py)
    x_, y_ = 0, 1
    unary2[:, :-1, :] += (pw[1, 0][x_] + pw[1, 1][x_]) / 2
    unary1[:, :-1, :] += (pw[0, 1][x_] + pw[0, 0][x_]) / 2
    unary2[:, 1:, :] += (pw[0, 1][x_] + pw[1, 1][x_]) / 2
    unary1[:, 1:, :] += (pw[1, 0][x_] + pw[0, 0][x_]) / 2
    unary2[:, :, :-1] += (pw[1, 0][y_] + pw[1, 1][y_]) / 2
    unary1[:, :, :-1] += (pw[0, 1][y_] + pw[0, 0][y_]) / 2
    unary2[:, :, 1:] += (pw[0, 1][y_] + pw[1, 1][y_]) / 2
    unary1[:, :, 1:] += (pw[1, 0][y_] + pw[0, 0][y_]) / 2
    d_x = (pw[1, 0][x_] + pw[0, 1][x_] - pw[1, 1][x_] - pw[0, 0][x_]) / 2
    d_y = (pw[1, 0][y_] + pw[0, 1][y_] - pw[1, 1][y_] - pw[0, 0][y_]) / 2
    eps = 1e-8
    priors = {
        2: [lam, 1 - lam],
        3: [lam**2, 2 * lam * (1 - lam), (1 - lam) ** 2],
        4: [lam**3, 3 * lam**2 * (1 - lam), 3 * lam * (1 - lam) ** 2, (1 - lam) ** 3],
    }
    prior = eta * -np.log(np.array(priors[n_labels]) + eps) / side**2
    out = []
    for i in range(n):
        # graphcut_multi(unary2[i], unary1[i], ...): label j at level j/(n-1)
        u1, u2 = unary2[i], unary1[i]
        levels = np.linspace(0, 1, n_labels)
        unary = np.stack(
            [(1 - t) * u1 + t * u2 + prior[j] for j, t in enumerate(levels)], -1
        )
        out.append((unary, d_x[i] + beta, d_y[i] + beta))
    return out


def test_energy_terms_are_the_references():
    for side, neigh, n_labels in [(2, 4, 3), (8, 4, 2), (4, 2, 4)]:
        _check_energy_terms(side, neigh, n_labels)


def _check_energy_terms(side, neigh, n_labels):
    rng = np.random.default_rng(side + n_labels)
    x = _smooth_images(rng, N, 32, 32)
    grad = rng.random((N, 32, 32)).astype("float32")
    perm = np.roll(np.arange(N), 1)
    lam = 0.3
    expected = _reference_terms(
        np.transpose(x, (0, 3, 1, 2)), grad, perm, side, lam, 1.2, 0.5, 0.2, neigh,
        n_labels,
    )  # fmt: skip
    layout = pm.grid_layout(32, 32, side, neigh, 32)

    def terms(ops, x, grad, perm, lam):
        own = pm._pool(ops, x, 32 // layout.neigh[0], 32 // layout.neigh[1])
        partner = ops.numpy.take(own, perm, axis=0)
        vertical, horizontal = pm.smoothness_tables(ops, own, partner, side)
        sal = pm._normalised(ops, pm._pool(ops, grad, side, side))
        return pm.energy_terms(
            ops, sal, ops.numpy.take(sal, perm, axis=0), vertical, horizontal,
            lam, n_labels, 1.2, 0.5, 0.2,
        )  # fmt: skip

    unary, w_v, w_h = _run(terms, x, grad, perm, np.full((1,), lam, "float32"))
    for i, (u, v, h) in enumerate(expected):
        np.testing.assert_allclose(to_np(unary)[i], u, atol=1e-6)
        np.testing.assert_allclose(to_np(w_v)[i], v, atol=1e-7)
        np.testing.assert_allclose(to_np(w_h)[i], h, atol=1e-7)


def test_energy_matches_numpy():
    rng = np.random.default_rng(0)
    unary, w_v, w_h = _terms(rng, 4, 3)
    labels = rng.integers(0, 3, (N, 4, 4)).astype("int32")
    got = to_np(_run(pm.energy, unary, w_v, w_h, labels))
    np.testing.assert_allclose(got, energy_np(unary, w_v, w_h, labels), rtol=1e-6)


# --------------------------------------------------------------------------- #
# Solvers
# --------------------------------------------------------------------------- #
# float32 energies of O(1): the exact solver's minimum agrees with the
# float64 brute-force minimum to rounding.
EXACT_TOL = 1e-5


@settings(max_examples=4)
@given(
    seed=st.integers(0, 2**16),
    case=st.sampled_from([(2, 2), (2, 3), (2, 4), (4, 2)]),
    negative=st.booleans(),
)
def test_exact_solver_matches_brute_force(seed, case, negative):
    side, n_labels = case
    unary, w_v, w_h = _terms(
        np.random.default_rng(seed), side, n_labels, negative=negative
    )
    labels = to_np(_run(pm.solve_exact, unary, w_v, w_h))
    assert labels.dtype == np.int32 and labels.shape == (N, side, side)
    for i in range(N):
        _, best = brute_force_np(unary[i], w_v[i], w_h[i])
        got = energy_np(unary[i], w_v[i], w_h[i], labels[i])
        assert got <= best + EXACT_TOL


def test_exact_solver_on_the_references_energy():
    """2x2 grids, 3 labels, energies built from images and saliency."""
    rng = np.random.default_rng(5)
    x = _smooth_images(rng, N, 16, 16)
    sal = pm._normalised(OPS, pm._pool(OPS, _t(_blobs(rng, N, 16, 16)), 2, 2))
    own = pm._pool(OPS, _t(x), 4, 4)
    perm = _t(np.roll(np.arange(N), 1).astype("int32"))
    v, h = pm.smoothness_tables(OPS, own, OPS.numpy.take(own, perm, axis=0), 2)
    for lam in (0.1, 0.5, 0.9):
        unary, w_v, w_h = pm.energy_terms(
            OPS, sal, OPS.numpy.take(sal, perm, axis=0), v, h,
            _t(np.full((1,), lam, "float32")), 3, 1.2, 0.5, 0.2,
        )  # fmt: skip
        unary, w_v, w_h = to_np(unary), to_np(w_v), to_np(w_h)
        labels = to_np(_run(pm.solve_exact, unary, w_v, w_h))
        for i in range(N):
            _, best = brute_force_np(unary[i], w_v[i], w_h[i])
            got = energy_np(unary[i], w_v[i], w_h[i], labels[i])
            assert got <= best + 1e-7


# The local search's largest gap to the exact minimum on random energies
# like these, over 200 cases per grid in benchmarks/puzzle_energy.py: 7.8%
# (2x2, 4 labels), 5.4% (4x4, 3 labels), 10.0% (4x4, 4), 7.9% (8x8, 4); on
# the reference's own energy at most 0.3%. The test allows 15%.
LOCAL_MAX_GAP = 0.15


@settings(max_examples=3)
@given(
    seed=st.integers(0, 2**16),
    case=st.sampled_from([(2, 3), (4, 3), (8, 4)]),
)
def test_local_search_never_raises_the_energy(seed, case):
    side, n_labels = case
    unary, w_v, w_h = _terms(np.random.default_rng(seed), side, n_labels)
    labels, energies = _run(
        pm.solve_local, unary, w_v, w_h, sweeps=4, return_energies=True
    )
    energies = to_np(energies)
    assert energies.shape == (5, N)
    # Recomputed in float64: each sweep keeps or lowers every sample's energy.
    assert np.all(np.diff(energies, axis=0) <= 1e-6 * np.abs(energies[:-1]) + 1e-7)
    final = energy_np(unary, w_v, w_h, to_np(labels))
    np.testing.assert_allclose(final, energies[-1], rtol=1e-5)
    if side**2 * np.log(n_labels) < 11:  # 2x2: compare with brute force
        for i in range(N):
            _, best = brute_force_np(unary[i], w_v[i], w_h[i])
            assert best - 1e-6 <= final[i] <= best * (1 + LOCAL_MAX_GAP) + 1e-6
    elif n_labels**side <= pm.EXACT_STATES:
        exact = energy_np(unary, w_v, w_h, to_np(_run(pm.solve_exact, unary, w_v, w_h)))
        assert np.all(final >= exact - EXACT_TOL)
        assert np.all(final <= exact * (1 + LOCAL_MAX_GAP) + 1e-6)


def test_auto_solver_picks_exact_up_to_the_state_limit():
    rng = np.random.default_rng(1)
    unary, w_v, w_h = _terms(rng, 2, 3)
    exact = to_np(_run(pm.solve_exact, unary, w_v, w_h))
    auto = to_np(_run(pm.solve_labels, unary, w_v, w_h))
    np.testing.assert_array_equal(auto, exact)


# --------------------------------------------------------------------------- #
# Transport
# --------------------------------------------------------------------------- #
def _reference_transport(keep, sal, eps, side):
    """NumPy transcription of the reference's `mask_transport`: returns
    plan_win (N, K, K), [source, destination]."""
    k = side * side
    cost = (
        eps * pm.cost_matrix(side, side)[None]
        - sal[:, :, None] * (keep > 0).astype("float32")[:, None, :]
    )
    for _ in range(side):
        plan = np.eye(k, dtype="float32")[cost.argmin(-1)]
        col_best = (plan * cost).argmin(-2)  # per destination
        win = np.transpose(np.eye(k, dtype="float32")[col_best], (0, 2, 1)) * plan
        cost = cost + (plan - win)
    return win


@settings(max_examples=6)
@given(seed=st.integers(0, 2**16), side=st.sampled_from([2, 4, 8]))
def test_transport_is_a_permutation_and_the_references_where_it_is_one(seed, side):
    rng = np.random.default_rng(seed)
    keep = rng.choice([0.0, 0.5, 1.0], (N, side * side)).astype("float32")
    sal = rng.random((N, side * side)).astype("float32") ** 3
    sal /= sal.sum(axis=1, keepdims=True)
    order = to_np(_run(pm.transport_order, keep, sal, eps=0.8, grid=(side, side)))
    assert order.dtype == np.int32
    win = _reference_transport(keep, sal, 0.8, side)
    for i in range(N):
        assert sorted(order[i].tolist()) == list(range(side * side))
        filled = win[i].sum(0) > 0
        # Wherever the reference places a cell, it is the same cell.
        np.testing.assert_array_equal(order[i][filled], win[i].argmax(0)[filled])


def test_cost_matrix_is_the_references_on_square_grids():
    c = pm.cost_matrix(4, 4)
    i1, j1 = np.divmod(np.arange(16), 4)
    expected = ((i1[:, None] - i1) ** 2 + (j1[:, None] - j1) ** 2) / 9.0
    np.testing.assert_allclose(c, expected, rtol=1e-6)


# --------------------------------------------------------------------------- #
# The layer
# --------------------------------------------------------------------------- #
def _derangement(perm):
    assert perm.dtype == np.int32
    assert sorted(perm.tolist()) == list(range(len(perm)))
    if len(perm) >= 2:
        assert np.all(perm != np.arange(len(perm)))


def _tagged_mixer(**kwargs):
    # Tagged pixel values reach 5000: scale the smoothness term to them.
    return PuzzleMix(value_range=(0.0, 5000.0), **kwargs)


def _pair(seed, h=16, w=16):
    rng = np.random.default_rng(seed)
    return _smooth_images(rng, N, h, w), _blobs(rng, N, h, w)


def _check_sources(mixer, params, h=16, w=16):
    """Apply the drawn mix to tagged images (application is linear and
    carries the transport): hard-mask pixels come from the image or its
    partner, as the mask says."""
    tags = tagged_images(N, h, w)
    result = mixer.apply(tags, params)
    mask = to_np(result.mask)[..., 0]
    perm = to_np(result.permutation)
    src = source_of(to_np(result.images))
    assert np.all((src == np.arange(N)[:, None, None])[mask == 1.0])
    assert np.all((src == perm[:, None, None])[mask == 0.0])


@settings(max_examples=3)
@given(seed=st.integers(0, 2**16))
def test_lam_is_the_mask_mean_and_pixels_come_from_the_pair(seed):
    x, sal = _pair(seed)
    n_labels = 3
    mixer = PuzzleMix(seed=seed)
    params = mixer.draw(x, saliency=sal)
    result = mixer.apply(x, params)
    mask, lam = to_np(result.mask), to_np(result.lam)
    assert mask.dtype == np.float32 and mask.shape == (N, 16, 16, 1)
    assert lam.dtype == np.float32 and lam.shape == (N,)
    np.testing.assert_allclose(lam, mask.mean(axis=(1, 2, 3)), rtol=1e-6, atol=1e-7)
    assert np.all(np.isin(mask, pm.mask_levels(n_labels)))
    _derangement(to_np(result.permutation))
    _check_sources(mixer, params)


def test_transport_moves_whole_blocks():
    """With t_size=-1, each image's blocks are permuted: every block of the
    transported image is a block of the original, unchanged."""
    x = tagged_images(N, 16, 16, seed=1)
    sal = _blobs(np.random.default_rng(1), N, 16, 16)
    mixer = _tagged_mixer(seed=2, t_size=-1, block_num=(2, 3))  # 4x4 blocks
    params = mixer.draw(x, saliency=sal)
    assert int(to_np(params["grid"])) == 4
    moved = to_np(mixer.apply(x, params, partner=np.zeros_like(x)).images)
    mask = to_np(params["block_mask"])  # (N, 4, 4): the common grid
    own_order = to_np(params["own_order"])
    for i in range(N):
        assert sorted(own_order[i].tolist()) == list(range(16))
        blocks = x[i].reshape(4, 4, 4, 4, 3).transpose(0, 2, 1, 3, 4).reshape(16, -1)
        out = moved[i].reshape(4, 4, 4, 4, 3).transpose(0, 2, 1, 3, 4).reshape(16, -1)
        keep = mask[i].reshape(-1)
        for j in np.flatnonzero(keep > 0):
            np.testing.assert_allclose(out[j], keep[j] * blocks[own_order[i, j]])
    # Without transport the orders are the identity.
    still = _tagged_mixer(seed=2, transport=False).draw(x, saliency=sal)
    k = to_np(still["own_order"]).shape[1]
    np.testing.assert_array_equal(
        to_np(still["own_order"]), np.tile(np.arange(k), (N, 1))
    )


def test_salient_blocks_are_kept():
    """Image saliency in the top-left block, its partner's in the bottom
    right: the mask keeps the first and takes the second."""
    x = _smooth_images(np.random.default_rng(0), N, 16, 16)
    sal = np.full((N, 16, 16), 1e-3, "float32")
    sal[:, :8, :8] = 1.0
    mixer = PuzzleMix(seed=0, block_num=2, n_labels=2, transport=False)
    bottom_right = np.full((N, 16, 16), 1e-3, "float32")
    bottom_right[:, 8:, 8:] = 1.0
    top_left = (np.arange(N) % 2 == 0)[:, None, None]
    params = mixer.draw(x, saliency=np.where(top_left, sal, bottom_right))
    perm = to_np(params["permutation"])
    mask = to_np(params["block_mask"])  # (N, 2, 2)
    checked = 0
    for i in range(N):
        own_tl, partner_tl = i % 2 == 0, perm[i] % 2 == 0
        if own_tl != partner_tl:
            kept, taken = ((0, 0), (1, 1)) if own_tl else ((1, 1), (0, 0))
            assert mask[i][kept] == 1.0 and mask[i][taken] == 0.0
            checked += 1
    assert checked
    _check_sources(mixer, mixer.draw(x, saliency=sal))  # 2 labels: hard masks


def test_prior_pulls_toward_lam():
    """No saliency, no smoothness: the kept share is the prior's choice."""
    x = _smooth_images(np.random.default_rng(0), N, 16, 16)
    sal = np.ones((N, 16, 16), "float32")
    mixer = PuzzleMix(alpha=1.0, beta=0.0, gamma=0.0, n_labels=2, seed=4)
    params = mixer.draw(x, saliency=sal)
    lam = to_np(params["lam"])
    mask = to_np(params["block_mask"])
    expected = (lam > 0.5).astype("float32")
    np.testing.assert_array_equal(mask.mean(axis=(1, 2)), expected)


def test_draw_then_apply_is_mix():
    x = _smooth_images(np.random.default_rng(3), N, 16, 16)
    sal = _blobs(np.random.default_rng(3), N, 16, 16)
    mixed = PuzzleMix(seed=7).mix(x, saliency=sal)
    mixer = PuzzleMix(seed=7)
    again = mixer.apply(x, mixer.draw(x, saliency=sal))
    np.testing.assert_allclose(to_np(again.images), to_np(mixed.images), rtol=1e-6)
    np.testing.assert_array_equal(to_np(again.lam), to_np(mixed.lam))


def test_compiled_draws_are_bounded_and_hold_no_layer():
    """Layers of the same settings share the compiled draw (eager JAX), from
    a cache of bounded size that keeps no user layer alive."""
    import gc
    import weakref

    from keras_sumix.layers.puzzle_mix import layer

    x, sal = _pair(4)
    mixer = PuzzleMix(seed=0)
    mixer.mix(x, saliency=sal)
    alive = weakref.ref(mixer)
    del mixer
    gc.collect()
    assert alive() is None
    for cache in (layer._compiled_draw, layer._compiled_apply):
        assert cache.cache_info().maxsize is not None


def test_saliency_fallback_is_the_spectral_residual():
    x = _smooth_images(np.random.default_rng(2), N, 16, 16)
    fallback = PuzzleMix(seed=5, block_num=2).mix(x)
    maps = _run(lambda ops, images: spectral_residual(images, 64, backend=ops), x)
    given_maps = PuzzleMix(seed=5, block_num=2).mix(x, saliency=maps)
    np.testing.assert_allclose(to_np(fallback.images), to_np(given_maps.images))
    np.testing.assert_array_equal(to_np(fallback.lam), to_np(given_maps.lam))


def test_saliency_of_another_size_is_pooled():
    x = _smooth_images(np.random.default_rng(2), N, 16, 16)
    result = PuzzleMix(seed=5, block_num=2).mix(
        x, saliency=np.random.default_rng(0).random((N, 12, 20))
    )
    np.testing.assert_allclose(
        to_np(result.lam), to_np(result.mask).mean(axis=(1, 2, 3)), rtol=1e-6
    )


def test_no_gradient_reaches_the_mask():
    x = _smooth_images(np.random.default_rng(0), N, 16, 16)
    sal = _blobs(np.random.default_rng(0), N, 16, 16)
    mixer = PuzzleMix(seed=0, block_num=2)
    if BACKEND == "jax":
        import jax

        def mask_sum(images, saliency):
            return keras.ops.sum(mixer.mix(images, saliency=saliency, seed=0).mask)

        g_img, g_sal = jax.jit(jax.grad(mask_sum, argnums=(0, 1)))(x, sal)
        assert np.all(np.asarray(g_img) == 0) and np.all(np.asarray(g_sal) == 0)
    elif BACKEND == "tensorflow":
        import tensorflow as tf

        xi, si = tf.constant(x), tf.constant(sal)
        with tf.GradientTape(persistent=True) as tape:
            tape.watch([xi, si])
            result = mixer.mix(xi, saliency=si)
            total = tf.reduce_sum(result.mask)
            images = tf.reduce_sum(result.images)
        assert tape.gradient(total, xi) is None and tape.gradient(total, si) is None
        assert tape.gradient(images, xi) is not None  # the pixels do flow
    else:
        import torch

        xi = torch.tensor(x, requires_grad=True)
        si = torch.tensor(sal, requires_grad=True)
        result = mixer.mix(xi, saliency=si)
        assert not result.mask.requires_grad
        assert not result.lam.requires_grad
        assert result.images.requires_grad


def _compiled(fn):
    if BACKEND == "tensorflow":
        import tensorflow as tf

        return tf.function(fn, jit_compile=True)
    if BACKEND == "jax":
        import jax

        return jax.jit(fn)
    import torch

    return torch.compile(fn)


def _stateless_mix(layer):
    def fn(state, images, saliency):
        mapping = list(zip(layer.non_trainable_variables, state, strict=True))
        with keras.StatelessScope(state_mapping=mapping) as scope:
            result = layer.mix(images, saliency=saliency)
        new = [scope.get_current_value(v) for v in layer.non_trainable_variables]
        return (result.images, result.lam, result.mask, result.permutation), new

    return fn


def _check_compiled(block_num):
    layer = PuzzleMix(seed=0, block_num=block_num)
    x = keras.ops.convert_to_tensor(_smooth_images(np.random.default_rng(0), N, 16, 16))
    sal = keras.ops.convert_to_tensor(_blobs(np.random.default_rng(0), N, 16, 16))
    layer.build(x.shape)
    state = [v.value for v in layer.non_trainable_variables]
    fn = _compiled(_stateless_mix(layer))
    draws = set()
    for _ in range(4):
        (_, lam, mask, perm), state = fn(state, x, sal)
        np.testing.assert_allclose(
            to_np(lam), to_np(mask).mean(axis=(1, 2, 3)), rtol=1e-6, atol=1e-7
        )
        _derangement(to_np(perm))
        draws.add(tuple(np.round(to_np(lam), 4)))
    assert len(draws) > 1  # the stream advances


@pytest.mark.skipif(BACKEND == "torch", reason="torch.compile: the slow test")
def test_inside_compiled_function():
    _check_compiled((1, 3))  # 2 or 4 blocks: a random switch inside the step


@pytest.mark.slow
def test_inside_compiled_function_default_grids():
    _check_compiled(4)


@in_tf_data
def test_inside_tf_data():
    import tensorflow as tf

    x = _smooth_images(np.random.default_rng(0), 8, 16, 16)
    y = np.arange(8) % 3
    mixer = PuzzleMix(seed=0, block_num=2, num_classes=3)
    ds = (
        tf.data.Dataset.from_tensor_slices({"images": x, "labels": y})
        .batch(N)
        .map(mixer)
    )
    for batch in ds:
        labels = batch["labels"].numpy()
        assert batch["images"].shape == (N, 16, 16, 3)
        np.testing.assert_allclose(labels.sum(axis=1), 1.0, atol=1e-6)


# --------------------------------------------------------------------------- #
# Hostile inputs
# --------------------------------------------------------------------------- #
def test_batch_of_one_is_unmixed():
    x = _smooth_images(np.random.default_rng(0), 1, 16, 16)
    result = PuzzleMix(seed=0, block_num=2).mix(x, saliency=np.ones((1, 16, 16)))
    assert to_np(result.permutation).tolist() == [0]
    assert to_np(result.lam).tolist() == [1.0]
    np.testing.assert_array_equal(to_np(result.images), x)
    assert np.all(to_np(result.mask) == 1.0)


def test_non_square_images():
    x, sal = _pair(0, 16, 24)
    mixer = PuzzleMix(seed=1, t_size=4, block_num=(2, 3))
    params = mixer.draw(x, saliency=sal)
    result = mixer.apply(x, params)
    mask = to_np(result.mask)
    assert mask.shape == (N, 16, 24, 1)
    np.testing.assert_allclose(to_np(result.lam), mask.mean(axis=(1, 2, 3)), rtol=1e-6)
    _check_sources(mixer, params, 16, 24)


def test_channels_first_is_channels_last_transposed():
    x = _smooth_images(np.random.default_rng(0), N, 16, 16)
    sal = _blobs(np.random.default_rng(0), N, 16, 16)
    last = PuzzleMix(seed=3, data_format="channels_last").mix(x, saliency=sal)
    first = PuzzleMix(seed=3, data_format="channels_first").mix(
        np.transpose(x, (0, 3, 1, 2)), saliency=sal
    )
    assert tuple(first.mask.shape) == (N, 1, 16, 16)
    np.testing.assert_allclose(
        np.transpose(to_np(first.images), (0, 2, 3, 1)), to_np(last.images)
    )
    np.testing.assert_array_equal(to_np(first.lam), to_np(last.lam))


def test_only_grids_dividing_the_image_are_drawn_and_sides_must_be_static():
    cases = {(32, 32): (2, 4, 8), (30, 32): (2,), (12, 10): (2,), (8, 12): (2, 4)}
    for size, sides in cases.items():
        assert PuzzleMix().sides(*size) == sides
        layouts, _ = PuzzleMix().layouts(*size)
        assert tuple(lay.side for lay in layouts) == sides
    with pytest.raises(ValueError, match="statically"):
        PuzzleMix().layouts(None, 32)


@pytest.mark.parametrize("size", [(12, 10), (1, 1)])
def test_sizes_no_grid_divides(size):
    """12x10: 2x2 blocks of 6x5; 1x1 (or 7x7): the image is one block, kept,
    taken or blended as the prior says; lam stays the exact mask mean."""
    x = tagged_images(N, *size, seed=0)
    result = _tagged_mixer(seed=1).mix(x)
    mask, lam = to_np(result.mask), to_np(result.lam)
    assert mask.shape == (N, *size, 1)
    np.testing.assert_allclose(lam, mask.mean(axis=(1, 2, 3)), rtol=1e-6)
    params = _tagged_mixer(seed=1).draw(x)
    assert int(to_np(params["grid"])) == (2 if size == (12, 10) else 1)
    if size != (12, 10):
        # One block: each output is uniform in its mask.
        assert np.all(mask == mask[:, :1, :1])
        drawn = to_np(params["lam"])
        prior = to_np(pm.prior_costs(OPS, _t(drawn), 3, 0.2, 1))
        levels = pm.mask_levels(3)[prior.argmin(axis=-1)]
        np.testing.assert_array_equal(mask[:, 0, 0, 0], levels)


def test_too_fine_a_transport_grid_raises():
    with pytest.raises(ValueError, match="t_size=2"):
        PuzzleMix(t_size=2).layouts(64, 64)
    # t_size=-1 and t_size >= the block transport whole blocks.
    layouts, common = PuzzleMix(t_size=-1).layouts(64, 64)
    assert [lay.transport for lay in layouts] == [(2, 2), (4, 4), (8, 8)]
    assert common == (8, 8)


def test_neigh_and_t_size_round_down_to_divisors_of_the_block():
    layouts, common = PuzzleMix.from_preset("cub").layouts(224, 224)
    assert [lay.block for lay in layouts] == [(112, 112), (56, 56), (28, 28)]
    assert [lay.neigh for lay in layouts] == [(8, 8), (8, 8), (7, 7)]
    assert [lay.transport for lay in layouts] == [(8, 8)] * 3  # cells of 28
    assert common == (8, 8)


def test_bad_saliency_raises():
    x = np.zeros((N, 16, 16, 3), "float32")
    with pytest.raises(ValueError, match="saliency"):
        PuzzleMix().mix(x, saliency=np.zeros((N, 16, 16, 1)))
    with pytest.raises(ValueError, match="saliency"):
        PuzzleMix().mix(x, saliency=np.zeros((N + 1, 16, 16)))
    with pytest.raises(TypeError, match="saliency"):
        PuzzleMix().mix(x, weights=np.zeros((N, 16, 16)))


BAD_ARGUMENTS = [
    ({"block_num": 1}, ValueError, "block_num"),
    ({"block_num": (3, 3)}, ValueError, "block_num"),
    ({"block_num": 2.0}, TypeError, "block_num"),
    ({"n_labels": 1}, ValueError, "n_labels"),
    ({"n_labels": 9}, ValueError, "n_labels"),
    ({"beta": -1.0}, ValueError, "beta"),
    ({"gamma": "x"}, TypeError, "gamma"),
    ({"t_size": 0}, ValueError, "t_size"),
    ({"transport": 1}, TypeError, "transport"),
    ({"solver": "gco"}, ValueError, "solver"),
    ({"solver": "exact", "block_num": 5}, ValueError, "solver"),
    ({"sweeps": 0}, ValueError, "sweeps"),
    ({"value_range": (1.0, 1.0)}, ValueError, "value_range"),
]


def test_bad_arguments_raise_naming_them():
    # One test (each test item costs a Keras session reset).
    for kwargs, error, name in BAD_ARGUMENTS:
        with pytest.raises(error, match=name):
            PuzzleMix(**kwargs)


def test_presets_config_round_trip_and_registry_facts():
    cub = PuzzleMix.from_preset("cub", seed=3)
    assert (cub.beta, cub.neigh_size, cub.n_labels) == (1.0, 8, 2)
    assert cub.seed == 3 and cub.t_size == 32
    cifar = PuzzleMix.from_preset("cifar", n_labels=2)
    assert cifar.n_labels == 2 and cifar.beta == 1.2
    with pytest.raises(ValueError, match="preset"):
        PuzzleMix.from_preset("imagenet")
    layer = PuzzleMix(block_num=(1, 3), solver="local", value_range=(0, 255), seed=1)
    clone = PuzzleMix.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer)
    )
    assert isinstance(restored, PuzzleMix) and restored.grids == (2, 4)
    # The registry's facts.
    assert PuzzleMix.mixer_name == "puzzlemix"
    assert PuzzleMix.needs_saliency and PuzzleMix.true_share
    assert not PuzzleMix.in_place


def test_local_solver_layer_keeps_lam_exact():
    x = _smooth_images(np.random.default_rng(1), N, 16, 16)
    result = PuzzleMix(seed=2, solver="local", sweeps=2, block_num=2).mix(
        x, saliency=_blobs(np.random.default_rng(1), N, 16, 16)
    )
    np.testing.assert_allclose(
        to_np(result.lam), to_np(result.mask).mean(axis=(1, 2, 3)), rtol=1e-6
    )


def test_nan_pixels_leave_mask_and_lam_finite():
    x = _smooth_images(np.random.default_rng(0), N, 16, 16)
    x[0, 3, 5, 1] = np.nan
    result = PuzzleMix(seed=0).mix(
        x, saliency=_blobs(np.random.default_rng(0), N, 16, 16)
    )
    mask, lam = to_np(result.mask), to_np(result.lam)
    assert np.all(np.isin(mask, pm.mask_levels(3)))
    np.testing.assert_allclose(lam, mask.mean(axis=(1, 2, 3)), rtol=1e-6)


# --------------------------------------------------------------------------- #
# SUMixModel(saliency_pass="raw"): the saliency of SUMix's own raw pass
# --------------------------------------------------------------------------- #
def _sumix(saliency_pass="raw", mixer=None):
    import keras_sumix as ks

    backbone = ks.models.small_cnn((7, 7, 3), widths=(4,))  # with batch norm
    return ks.SUMixModel(
        backbone, 3, mixer or PuzzleMix(seed=0), saliency_pass=saliency_pass
    )


def test_raw_saliency_pass_mixes_by_the_raw_pass_and_trains(monkeypatch, tmp_path):
    from keras_sumix.models.backend import gradient_wrt_inputs

    x = _smooth_images(np.random.default_rng(0), N, 7, 7)
    y = np.arange(N, dtype="int32") % 3
    ops = keras.ops
    # The saliency the mixer is given (an eager step's terms) is the input
    # gradient of the summed cross-entropy in training mode.
    model = _sumix()
    model.build(x.shape)
    dense = ops.one_hot(y, 3)

    def loss(images):
        return -ops.sum(dense * ops.log_softmax(model(images, training=True)))

    with keras.StatelessScope():  # batch norm's statistics stay as they are
        expected = np.sqrt((to_np(gradient_wrt_inputs(loss, x)) ** 2).mean(axis=-1))
    given_maps = []
    mix = model.mixer.mix

    def recording_mix(images, saliency):
        given_maps.append(to_np(saliency))
        return mix(images, saliency=saliency)

    monkeypatch.setattr(model.mixer, "mix", recording_mix)
    _, raw_logits = model.training_terms(x, y)
    (saliency,) = given_maps
    np.testing.assert_allclose(saliency, expected, rtol=1e-4, atol=1e-7)
    assert not np.allclose(saliency, to_np(model.saliency(x, y)), rtol=0.1)
    np.testing.assert_allclose(
        to_np(raw_logits), to_np(model(x, training=True)), rtol=1e-5, atol=1e-6
    )
    # One compiled step. 7x7 images are one PuzzleMix block, whose mix the
    # saliency does not change: the step is the separate pass's, weights and
    # batch-norm statistics included (which JAX assigns after `jax.grad`).
    models = {mode: _sumix(mode) for mode in ("separate", "raw")}
    for m in models.values():
        m.build(x.shape)
        m.compile(optimizer="sgd")
    models["raw"].set_weights(models["separate"].get_weights())
    # The backbone's weights: the kernel, batch norm's scale, offset and
    # moving statistics; each changes in the step.
    initial = [to_np(v) for v in models["raw"].backbone.weights]
    for m in models.values():
        history = m.fit(x, y, batch_size=N, epochs=1, verbose=0, shuffle=False)
        assert np.isfinite(history.history["loss"]).all()
    separate, raw = (m.get_weights() for m in models.values())
    for a, b in zip(separate, raw, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)
    trained = [to_np(v) for v in models["raw"].backbone.weights]
    assert not any(np.allclose(a, b) for a, b in zip(initial, trained, strict=True))
    models["raw"].save(tmp_path / "raw.keras")
    assert keras.saving.load_model(tmp_path / "raw.keras").saliency_pass == "raw"


def test_saliency_pass_is_checked_and_configured():
    import keras_sumix as ks

    with pytest.raises(ValueError, match=r"saliency_pass.*Received: saliency_pass="):
        _sumix("clean")
    with pytest.raises(ValueError, match="mixer CutMix takes no saliency"):
        _sumix("raw", ks.layers.CutMix())
    assert _sumix("separate", ks.layers.CutMix()).saliency_pass == "separate"
    config = _sumix().get_config()
    assert config["saliency_pass"] == "raw"
    assert ks.SUMixModel.from_config(config).saliency_pass == "raw"
