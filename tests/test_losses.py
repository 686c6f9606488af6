"""`sumix_loss` against a NumPy re-implementation of docs/sumix.md, the spec's
worked example, gradient paths, numerics and argument validation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from conftest import input_gradients, to_np
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_sumix.losses import DEFAULT_DISTANCE_SCALE, sumix_loss

LAMBDA_MODES = ["reference", "distance", "area"]
REGULARIZERS = ["both", "uncertainty", "semantic", "none"]
REDUCTIONS = ["reference", "per_sample"]
ALL_MODES = list(itertools.product(LAMBDA_MODES, REGULARIZERS, REDUCTIONS))
#: (regularizer_logits, regularizer_temperature): every form, at the default
#: temperature and at one below and one above it. As many as the
#: (lambda_mode, reduction) pairs, so that the gradient tests can give each
#: regularizer every form without adding cases.
LOGIT_FORMS = list(itertools.product(["exp", "negative"], [1.0, 0.1, 3.0]))
assert len(LOGIT_FORMS) == len(LAMBDA_MODES) * len(REDUCTIONS)
RTOL, ATOL = 1e-5, 1e-6


# --------------------------------------------------------------------------
# NumPy reference, written from the spec (float64), independent of the library.
# --------------------------------------------------------------------------


def np_softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def np_l2norm(v):
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def np_ce(z, y):
    """CE(z, y) = -log softmax(z)[y], per sample."""
    m = z.max(axis=-1, keepdims=True)
    log_sm = z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))
    return -log_sm[np.arange(len(y)), y]


def np_sumix(
    labels,
    raw_logits,
    u_raw,
    mix_logits,
    u_mix,
    perm,
    lam,
    gamma=0.5,
    lambda_mode="reference",
    regularizer="both",
    semantic_scale=None,
    distance_scale=4.0,
    reduction="reference",
    regularizer_logits="exp",
    regularizer_temperature=1.0,
):
    raw_logits, u_raw, mix_logits, u_mix = (
        np.asarray(a, np.float64) for a in (raw_logits, u_raw, mix_logits, u_mix)
    )
    n = raw_logits.shape[0]
    rows = np.arange(n)
    lam = np.broadcast_to(np.asarray(lam, np.float64), (n,))
    y_a = np.asarray(labels)
    y_b = y_a[perm]
    p_raw, p_mix = np_softmax(raw_logits), np_softmax(mix_logits)
    s = n if semantic_scale is None else semantic_scale
    p_a = p_raw.copy()
    p_a[rows, y_b] = 0.0
    p_b = p_raw[perm].copy()
    p_b[rows, y_a] = 0.0
    alpha_a = s * np_l2norm(np_softmax(p_mix - p_a))
    alpha_b = s * np_l2norm(np_softmax(p_mix - p_b))
    if lambda_mode == "reference":
        w_a, w_b = np.exp(-alpha_a[rows, y_a]), np.exp(-alpha_b[rows, y_b])
    else:
        t = distance_scale
        w_a = np.exp(-t * np.linalg.norm(p_mix - p_raw, axis=-1))
        w_b = np.exp(-t * np.linalg.norm(p_mix - p_raw[perm], axis=-1))
    if lambda_mode == "area":
        lam_a = lam
    else:
        lam_a = lam * w_a / (lam * w_a + (1 - lam) * w_b)

    def reduce(wa, ce_a, ce_b):
        if reduction == "per_sample":
            return np.mean(wa * ce_a + (1 - wa) * ce_b)
        return np.mean(wa) * np.mean(ce_a) + np.mean(1 - wa) * np.mean(ce_b)

    mix_loss = reduce(lam_a, np_ce(mix_logits, y_a), np_ce(mix_logits, y_b))
    beta_a, beta_b = u_raw + u_mix, u_raw[perm] + u_mix
    x = {
        "both": (beta_a + alpha_a, beta_b + alpha_b),
        "uncertainty": (beta_a, beta_b),
        "semantic": (alpha_a, alpha_b),
    }
    t = regularizer_temperature
    if regularizer == "none":
        reg, z, dz = 0.0, None, None
    elif regularizer_logits == "exp":  # z = exp(-x) / T, dz/dx = -z
        z = tuple(np.exp(-v) / t for v in x[regularizer])
        dz = tuple(-v for v in z)
    else:  # "negative": z = -x / T, dz/dx = -1 / T
        z = tuple(-v / t for v in x[regularizer])
        dz = (-1.0 / t, -1.0 / t)
    if z is not None:
        reg = reduce(lam, np_ce(z[0], y_a), np_ce(z[1], y_b))
    return {
        "loss": mix_loss + gamma * reg,
        "mix_loss": mix_loss,
        "reg_loss": reg,
        "lam": lam_a,
        # For the gradient checks below: z_a, z_b and dz/dx (dz/dbeta).
        "z": z,
        "dz": dz,
    }


def head(x):
    """Stands in for the uncertainty head, l2norm(softmax(.))."""
    return np_l2norm(np_softmax(x)).astype("float32")


def make_batch(n, c, seed, scalar_lam=False):
    rng = np.random.default_rng(seed)
    return dict(
        labels=rng.integers(0, c, size=n).astype("int32"),
        raw_logits=(3 * rng.normal(size=(n, c))).astype("float32"),
        raw_uncertainty=head(3 * rng.normal(size=(n, c))),
        mix_logits=(3 * rng.normal(size=(n, c))).astype("float32"),
        mix_uncertainty=head(3 * rng.normal(size=(n, c))),
        permutation=rng.permutation(n).astype("int32"),
        lam=np.float32(rng.random()) if scalar_lam else rng.random(n, "float32"),
    )


def check_against_reference(batch, **options):
    out = sumix_loss(**batch, **options)
    expected = np_sumix(*batch.values(), **options)
    for key in ("loss", "mix_loss", "reg_loss", "lam"):
        got = to_np(out[key])
        assert got.dtype == np.float32, key
        np.testing.assert_allclose(
            got, expected[key], rtol=RTOL, atol=ATOL, err_msg=key
        )
    assert to_np(out["lam"]).shape == (len(batch["labels"]),)
    return out


# --------------------------------------------------------------------------
# Agreement with the spec.
# --------------------------------------------------------------------------


#: Batch shapes (N, C) of the sweep: the extremes (a pair, one sample per
#: class, more classes than samples and the reverse) and two ordinary ones. A
#: few shapes, many values: each new shape recompiles every op on JAX.
SHAPES = [(2, 2), (2, 20), (16, 2), (16, 20), (7, 5), (11, 13)]


@settings(max_examples=15, deadline=None)
@given(
    shape=st.sampled_from(SHAPES),
    seed=st.integers(0, 2**31 - 1),
    scalar_lam=st.booleans(),
)
def test_matches_numpy_reference(shape, seed, scalar_lam):
    """Every lambda_mode x regularizer x reduction x semantic_scale on each
    drawn batch (one batch for all combinations: backends cache per shape).

    The logits' forms cycle along the 48 combinations: every regularizer
    meets each of the 6 forms on every batch, at no extra call."""
    batch = make_batch(*shape, seed, scalar_lam)
    combinations = itertools.product(ALL_MODES, [None, 3.5])
    for ((lambda_mode, regularizer, reduction), semantic_scale), form in zip(
        combinations, itertools.cycle(LOGIT_FORMS)
    ):
        check_against_reference(
            batch,
            gamma=0.7,
            lambda_mode=lambda_mode,
            regularizer=regularizer,
            reduction=reduction,
            semantic_scale=semantic_scale,
            distance_scale=1.3,
            regularizer_logits=form[0],
            regularizer_temperature=form[1],
        )


def test_defaults_match_reference_defaults():
    batch = make_batch(6, 5, seed=1)
    check_against_reference(batch)
    assert DEFAULT_DISTANCE_SCALE == 4.0  # the study's choice (docs/study.md, part D)
    check_against_reference(batch, lambda_mode="distance")


#: `(reg_loss, loss)` of `sumix_loss(**make_batch(6, 5, seed=1),
#: regularizer=...)` before the logits' options existed (TensorFlow; JAX gave
#: the same up to one float32 ulp). log C = log 5 = 1.609: the authors' form
#: sits near it.
BEFORE_LOGITS_OPTIONS = {
    "both": (1.594369649887085, 4.44293737411499),
    "uncertainty": (1.5653091669082642, 4.428407192230225),
    "semantic": (1.5864335298538208, 4.438969135284424),
}


@pytest.mark.parametrize("regularizer", sorted(BEFORE_LOGITS_OPTIONS))
def test_default_logits_form_gives_the_earlier_numbers(regularizer):
    batch = make_batch(6, 5, seed=1)
    default = sumix_loss(**batch, regularizer=regularizer)
    explicit = sumix_loss(
        **batch,
        regularizer=regularizer,
        regularizer_logits="exp",
        regularizer_temperature=1.0,
    )
    for key, value in default.items():
        np.testing.assert_array_equal(to_np(value), to_np(explicit[key]), key)
    reg_loss, loss = BEFORE_LOGITS_OPTIONS[regularizer]
    np.testing.assert_allclose(to_np(default["reg_loss"]), reg_loss, rtol=1e-6)
    np.testing.assert_allclose(to_np(default["loss"]), loss, rtol=1e-6)


def test_scalar_lam_equals_broadcast_lam():
    batch = make_batch(7, 4, seed=2, scalar_lam=True)
    vector = dict(batch, lam=np.full((7,), batch["lam"], "float32"))
    for key, value in sumix_loss(**batch).items():
        np.testing.assert_array_equal(to_np(value), to_np(sumix_loss(**vector)[key]))


def test_one_hot_labels_are_argmaxed():
    batch = make_batch(6, 5, seed=3)
    one_hot = np.eye(5, dtype="float32")[batch["labels"]]
    soft = 0.7 * one_hot + 0.3 / 5  # argmax is still the label
    expected = sumix_loss(**batch)
    for labels in (one_hot, soft):
        out = sumix_loss(**dict(batch, labels=labels))
        for key in expected:
            np.testing.assert_allclose(to_np(out[key]), to_np(expected[key]))


def test_area_per_sample_without_regularizer_is_mixed_cross_entropy():
    batch = make_batch(9, 6, seed=4)
    out = sumix_loss(
        **batch, lambda_mode="area", regularizer="none", reduction="per_sample"
    )
    y, perm, lam = batch["labels"], batch["permutation"], batch["lam"]
    logits = batch["mix_logits"].astype(np.float64)
    expected = np.mean(lam * np_ce(logits, y) + (1 - lam) * np_ce(logits, y[perm]))
    np.testing.assert_allclose(to_np(out["loss"]), expected, rtol=RTOL)
    assert to_np(out["reg_loss"]) == 0.0
    np.testing.assert_array_equal(to_np(out["lam"]), lam)


def test_semantic_scale_none_is_batch_size():
    batch = make_batch(11, 4, seed=5)
    a = sumix_loss(**batch)
    b = sumix_loss(**batch, semantic_scale=11)
    c = sumix_loss(**batch, semantic_scale=2)
    np.testing.assert_allclose(to_np(a["loss"]), to_np(b["loss"]), rtol=1e-6)
    np.testing.assert_allclose(to_np(a["lam"]), to_np(b["lam"]), rtol=1e-6)
    assert not np.allclose(to_np(a["lam"]), to_np(c["lam"]))


# --------------------------------------------------------------------------
# The spec's worked example ("Why two semantic modes").
# --------------------------------------------------------------------------


def worked_example_batch(n_pairs, p_ya):
    """C=10. Pairs (x0, x1) with y = (0, 1), permutation swapping them, lam 0.5.

    Raw predictions are confident (softmax of logit 20 on the true class,
    ~1 - 2e-8). The mixed image of sample 0 (y_a = 0, y_b = 1) is predicted
    `p_ya` on y_a and `1 - p_ya` on y_b (a two-object image; the eight other
    classes get ~1e-12). This construction reproduces every number of the
    spec; spreading `1 - p_ya` uniformly over the other nine classes instead
    reproduces those for p=0.99 but not for p=0.01.
    """
    c = 10
    raw = np.zeros((2, c), "float32")
    raw[0, 0] = raw[1, 1] = 20.0
    probs = np.full((2, c), 1e-12)
    probs[0, :2] = probs[1, 1::-1] = (p_ya, 1 - p_ya)  # sample 1 symmetric
    mix = np.log(probs).astype("float32")
    unc = head(np.zeros((2, c)))
    tile = lambda a: np.tile(a, (n_pairs,) + (1,) * (a.ndim - 1))  # noqa: E731
    perm = (np.arange(2 * n_pairs) ^ 1).astype("int32")  # swap within each pair
    return dict(
        labels=tile(np.array([0, 1], "int32")),
        raw_logits=tile(raw),
        raw_uncertainty=tile(unc),
        mix_logits=tile(mix),
        mix_uncertainty=tile(unc),
        permutation=perm,
        lam=np.float32(0.5),
    )


@pytest.mark.parametrize(
    ("p_ya", "n_pairs", "options", "expected"),
    [
        # reference mode, s = 2 (explicit)
        (0.99, 1, dict(semantic_scale=2.0), 0.39),
        (0.01, 1, dict(semantic_scale=2.0), 0.61),
        # reference mode, s = N = 100 (semantic_scale=None, batch of 100)
        (0.99, 50, dict(), 0.00),
        (0.01, 50, dict(), 1.00),
        # distance mode, t = 2 (the spec's example; the default is 4)
        (0.99, 1, dict(lambda_mode="distance", distance_scale=2.0), 0.94),
        (0.01, 1, dict(lambda_mode="distance", distance_scale=2.0), 0.06),
    ],
)
def test_spec_worked_example(p_ya, n_pairs, options, expected):
    batch = worked_example_batch(n_pairs, p_ya)
    lam_a = to_np(sumix_loss(**batch, **options)["lam"])
    assert lam_a.shape == (2 * n_pairs,)
    assert round(float(lam_a[0]), 2) == expected
    # By symmetry every pair gets the same ratio, up to the float32 rounding
    # of the batch reductions it goes through. lam is a share in [0, 1]: an
    # absolute 1e-6 is far below anything a label weight can show, and near 0
    # (s = N drives it to ~3e-10 here) a relative bound would compare noise.
    np.testing.assert_allclose(lam_a[::2], lam_a[0], rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------
# Gradients.
# --------------------------------------------------------------------------


#: Every mode, each (lambda_mode, reduction) pair with its own logits' form,
#: so that every regularizer is checked in every form.
GRADIENT_CASES = [
    (lambda_mode, regularizer, reduction, *form)
    for (lambda_mode, reduction), form in zip(
        itertools.product(LAMBDA_MODES, REDUCTIONS), LOGIT_FORMS, strict=True
    )
    for regularizer in REGULARIZERS
]


@pytest.mark.parametrize(
    ("lambda_mode", "regularizer", "reduction", "logits", "temperature"),
    GRADIENT_CASES,
)
def test_gradient_paths(lambda_mode, regularizer, reduction, logits, temperature):
    """Exactly the spec's paths: raw_logits none (only through sg);
    mix_logits only through CE(logits_mix, y) with lam_a held constant
    (so no gradient through lam_a nor through alpha); uncertainties only
    through beta, for "both"/"uncertainty", in every logits' form (none
    for "semantic" in any form)."""
    gamma = 0.7
    options = dict(
        lambda_mode=lambda_mode,
        regularizer=regularizer,
        reduction=reduction,
        gamma=gamma,
        semantic_scale=1.5,  # keep alpha small so that z is not ~0
        regularizer_logits=logits,
        regularizer_temperature=temperature,
    )
    batch = make_batch(6, 5, seed=7)
    y, perm, lam = batch["labels"], batch["permutation"], batch["lam"]

    def loss(raw_logits, raw_uncertainty, mix_logits, mix_uncertainty):
        return sumix_loss(
            y,
            raw_logits,
            raw_uncertainty,
            mix_logits,
            mix_uncertainty,
            perm,
            lam,
            **options,
        )["loss"]

    floats = [batch[k] for k in ("raw_logits", "raw_uncertainty", "mix_logits")]
    g_raw, g_u_raw, g_mix, g_u_mix = input_gradients(
        loss, *floats, batch["mix_uncertainty"]
    )
    ref = np_sumix(*batch.values(), **options)

    n, c = batch["raw_logits"].shape
    eye = np.eye(c)

    def coefficients(w):
        """d reduce(w, ce_a, ce_b) / d ce_a and / d ce_b, per sample."""
        if reduction == "per_sample":
            return w / n, (1 - w) / n
        return np.full(n, w.mean() / n), np.full(n, (1 - w).mean() / n)

    # raw_logits only enter through stop_gradient.
    np.testing.assert_array_equal(g_raw, 0.0)

    # mix_logits: d CE(z, y)/dz = softmax(z) - onehot(y), lam_a constant.
    k_a, k_b = coefficients(ref["lam"])
    sm = np_softmax(batch["mix_logits"].astype(np.float64))
    expected_mix = k_a[:, None] * (sm - eye[y]) + k_b[:, None] * (sm - eye[y[perm]])
    np.testing.assert_allclose(g_mix, expected_mix, rtol=1e-4, atol=1e-6)

    # Uncertainties: through beta_a = u_raw + u_mix, beta_b = u_raw[perm] + u_mix.
    if regularizer in ("both", "uncertainty"):
        (z_a, z_b), (dz_a, dz_b) = ref["z"], ref["dz"]
        k_a, k_b = coefficients(np.broadcast_to(lam, (n,)))
        # d CE(z(beta), y) / d beta = (softmax(z) - onehot(y)) * dz/dbeta
        g_a = gamma * k_a[:, None] * (np_softmax(z_a) - eye[y]) * dz_a
        g_b = gamma * k_b[:, None] * (np_softmax(z_b) - eye[y[perm]]) * dz_b
        expected_u_raw = g_a.copy()
        np.add.at(expected_u_raw, perm, g_b)
        np.testing.assert_allclose(g_u_mix, g_a + g_b, rtol=1e-4, atol=1e-7)
        np.testing.assert_allclose(g_u_raw, expected_u_raw, rtol=1e-4, atol=1e-7)
        assert np.abs(g_u_raw).max() > 1e-4 and np.abs(g_u_mix).max() > 1e-4
    else:
        np.testing.assert_array_equal(g_u_raw, 0.0)
        np.testing.assert_array_equal(g_u_mix, 0.0)


# --------------------------------------------------------------------------
# Numerics.
# --------------------------------------------------------------------------


@pytest.mark.parametrize("c", [2, 10])
def test_float16_inputs_large_batch(c):
    """N=256: exp(-N x) underflows in float16 (and for C=2 even in float32,
    where the naive lam_a formula would give 0/0)."""
    n = 256
    batch = make_batch(n, c, seed=8)
    batch["raw_logits"] *= 4
    half = {
        k: v.astype("float16") if v.dtype == np.float32 else v for k, v in batch.items()
    }
    out = sumix_loss(**half)
    loss, lam_a = to_np(out["loss"]), to_np(out["lam"])
    assert loss.dtype == np.float32 and lam_a.dtype == np.float32
    assert np.isfinite(loss) and np.all(np.isfinite(lam_a))
    assert np.all((lam_a >= 0) & (lam_a <= 1))
    # The regime is the intended one: the weights do underflow in float16.
    expected = np_sumix(*half.values())
    p_raw = np_softmax(half["raw_logits"].astype(np.float64))
    p_mix = np_softmax(half["mix_logits"].astype(np.float64))
    y = half["labels"]
    p_a = p_raw.copy()
    p_a[np.arange(n), y[half["permutation"]]] = 0
    alpha_a = n * np_l2norm(np_softmax(p_mix - p_a))[np.arange(n), y]
    assert np.all(np.exp(-alpha_a).astype("float16") == 0)
    if c == 2:
        assert np.any(np.exp(-alpha_a).astype("float32") == 0)
    np.testing.assert_allclose(lam_a, expected["lam"], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(loss, expected["loss"], rtol=1e-4)


def test_lam_at_boundaries_with_underflowing_weights():
    n, c = 256, 2
    batch = make_batch(n, c, seed=9)
    lam = np.where(np.arange(n) % 2 == 0, 0.0, 1.0).astype("float32")
    for mode in ("reference", "distance"):
        out = sumix_loss(**dict(batch, lam=lam), lambda_mode=mode)
        np.testing.assert_array_equal(to_np(out["lam"]), lam)
        assert np.isfinite(to_np(out["loss"]))


# --------------------------------------------------------------------------
# Validation.
# --------------------------------------------------------------------------

N, C = 4, 3
F32, I32 = "float32", "int32"


def _call_with(name, value):
    batch = make_batch(N, C, seed=0)
    if name in batch:
        return sumix_loss(**{**batch, name: value})
    return sumix_loss(**batch, **{name: value})


@pytest.mark.parametrize(
    ("name", "value", "error"),
    [
        ("lambda_mode", "paper", ValueError),
        ("lambda_mode", None, ValueError),
        ("regularizer", "all", ValueError),
        ("reduction", "mean", ValueError),
        ("gamma", -0.1, ValueError),
        ("gamma", float("nan"), ValueError),
        ("gamma", "0.5", TypeError),
        ("gamma", True, TypeError),
        ("semantic_scale", 0.0, ValueError),
        ("semantic_scale", -2, ValueError),
        ("semantic_scale", "N", TypeError),
        ("distance_scale", 0, ValueError),
        ("distance_scale", None, TypeError),
        ("regularizer_logits", "softplus", ValueError),
        ("regularizer_logits", None, ValueError),
        ("regularizer_temperature", 0.0, ValueError),
        ("regularizer_temperature", -1, ValueError),
        ("regularizer_temperature", float("inf"), ValueError),
        ("regularizer_temperature", "0.1", TypeError),
        ("raw_logits", np.zeros((N,), F32), ValueError),
        ("raw_logits", np.zeros((N, C), I32), TypeError),
        ("mix_logits", np.zeros((N, C + 1), F32), ValueError),
        ("mix_logits", np.zeros((N, C), I32), TypeError),
        ("raw_uncertainty", np.zeros((N + 1, C), F32), ValueError),
        ("mix_uncertainty", np.zeros((N, C, 1), F32), ValueError),
        ("labels", np.zeros((N + 1,), I32), ValueError),
        ("labels", np.zeros((N, C + 1), F32), ValueError),
        ("labels", np.zeros((N, C, 1), F32), ValueError),
        ("labels", np.zeros((N,), F32), TypeError),
        ("permutation", np.arange(N - 1, dtype=I32), ValueError),
        ("permutation", np.zeros((N, 1), I32), ValueError),
        ("permutation", np.arange(N, dtype=F32), TypeError),
        ("lam", np.zeros((N + 1,), F32), ValueError),
        ("lam", np.zeros((N, 1), F32), ValueError),
    ],
)
def test_validation_errors(name, value, error):
    with pytest.raises(error, match=f"`{name}`"):
        _call_with(name, value)


def test_validation_message_says_what_was_given_and_expected():
    with pytest.raises(ValueError, match=r"\(N, C\).*\(4, 4\)"):
        _call_with("mix_logits", np.zeros((N, C + 1), F32))
    with pytest.raises(ValueError, match=r"'reference'.*'paper'"):
        _call_with("lambda_mode", "paper")
    with pytest.raises(ValueError, match=r"\('exp', 'negative'\).*'softplus'"):
        _call_with("regularizer_logits", "softplus")
    with pytest.raises(ValueError, match=r"\(0.0, inf\].*regularizer_temperature=0.0"):
        _call_with("regularizer_temperature", 0.0)
    with pytest.raises(TypeError, match="str"):
        _call_with("gamma", "0.5")
