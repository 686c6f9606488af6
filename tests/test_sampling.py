"""The Beta sampler behind every mixer's lam (`keras_sumix.layers.sampling`):
distributed as Beta(alpha, alpha), valid when it falls back, compiled under
XLA on TensorFlow."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
from conftest import BACKEND, to_np
from scipy import stats

from keras_sumix._keras_compat import DynamicBackend
from keras_sumix.layers import sampling

N = 100_000


def _beta(alpha, seed=0, shape=(N,), **kwargs):
    generator = keras.random.SeedGenerator(seed)
    return to_np(sampling.beta(shape, alpha, alpha, generator, **kwargs))


@pytest.mark.parametrize("alpha", [0.2, 0.5, 1.0, 2.0])
def test_draws_are_beta_alpha_alpha(alpha):
    draws = _beta(alpha, seed=7)
    assert draws.dtype == np.float32 and draws.shape == (N,)
    assert np.all((draws >= 0.0) & (draws <= 1.0))
    # Exact draws rounded to float32, as the sampler's output is: a test
    # against the continuous CDF would reject any float32 sampler at small
    # alpha (float32 rounds ~1.8% of Beta(0.2, 0.2) draws to exactly 1.0).
    exact = np.random.default_rng(11).beta(alpha, alpha, N).astype("float32")
    assert stats.ks_2samp(draws, exact).pvalue > 1e-3
    # The same test has the power to see a 10% error in alpha.
    wrong = np.random.default_rng(12).beta(1.1 * alpha, 1.1 * alpha, N)
    assert stats.ks_2samp(draws, wrong.astype("float32")).pvalue < 1e-6


def test_sigmoid_rounds_right_near_one():
    # The textbook 1 / (1 + exp(-t)) gives 1.0 from t = 16.6; the value
    # rounds to 1.0 only from t = 17.3.
    t = np.concatenate([np.linspace(-80, 30, 4001), [16.8, 17.0, 17.2]])
    t = t.astype("float32")
    ops = DynamicBackend()
    got = to_np(sampling._sigmoid(ops, keras.ops.convert_to_tensor(t)))
    exact = 1.0 / (1.0 + np.exp(-t.astype("float64")))
    want = exact.astype("float32")
    ulp = np.spacing(want)
    assert np.all(np.abs(got.astype("float64") - want) <= 2 * ulp)
    assert np.all(got[-3:] < 1.0) and np.all(want[-3:] < 1.0)


def test_as_many_exact_ones_as_rounded_exact_draws():
    # At alpha = 0.05, 21% of the float32 draws are exactly 1.0; a sampler
    # that rounds 1 + exp(-t) first gives 21.7%.
    n = 400_000
    draws = _beta(0.05, seed=9, shape=(n,))
    exact = np.random.default_rng(13).beta(0.05, 0.05, n).astype("float32")
    ones, want = np.mean(draws == 1.0), np.mean(exact == 1.0)
    assert abs(ones - want) < 4 * math.sqrt(2 * want * (1 - want) / n)


def test_asymmetric_beta_mean():
    generator = keras.random.SeedGenerator(3)
    draws = to_np(sampling.beta((N,), 0.5, 2.0, generator))
    exact = np.random.default_rng(4).beta(0.5, 2.0, N).astype("float32")
    assert stats.ks_2samp(draws, exact).pvalue > 1e-3


def test_same_seed_same_draws_and_stream_advances():
    a, b = _beta(0.2, seed=5, shape=(64,)), _beta(0.2, seed=5, shape=(64,))
    np.testing.assert_array_equal(a, b)
    generator = keras.random.SeedGenerator(5)
    first = to_np(sampling.beta((64,), 0.2, 0.2, generator))
    second = to_np(sampling.beta((64,), 0.2, 0.2, generator))
    assert not np.array_equal(first, second)


@pytest.mark.parametrize("alpha", [1e-3, 0.05, 50.0, 1e4])
def test_extreme_alphas_stay_in_unit_interval(alpha):
    draws = _beta(alpha, shape=(20_000,))
    assert np.all(np.isfinite(draws)) and np.all((draws >= 0) & (draws <= 1))
    # Symmetric: half the mass on each side (exactly 0.5 has no mass).
    assert abs(np.mean(draws < 0.5) - 0.5) < 0.02
    if alpha == 1e4:  # sd = 1 / sqrt(8 alpha + 4) = 0.0035
        assert abs(np.std(draws) - 1 / math.sqrt(8 * alpha + 4)) < 2e-4


def test_fallback_rate_matches_the_stated_probability():
    # With one round, alpha = 1 falls back (to log d exactly, d = 2/3)
    # whenever that round rejects: 1 - 0.9517 of the draws.
    generator = keras.random.SeedGenerator(2)
    logs = to_np(sampling.log_gamma((N,), 1.0, generator, rounds=1))
    fallen = np.mean(logs == np.float32(math.log(2.0 / 3.0)))
    expected = sampling.fallback_probability(1.0, rounds=1)
    assert expected == pytest.approx(0.04833, abs=1e-5)
    assert abs(fallen - expected) < 5 * math.sqrt(expected / N)
    # The default rounds make the fallback negligible whatever alpha.
    worst = max(sampling.fallback_probability(a) for a in np.geomspace(1e-3, 1e3, 61))
    assert worst == pytest.approx(sampling.fallback_probability(1.0))
    assert worst < 1.7e-16 and sampling.ROUNDS == 12


@pytest.mark.parametrize("alpha", [0.2, 2.0])
def test_fallback_still_gives_a_valid_beta(alpha):
    # rounds=0: every gamma draw takes the fallback.
    draws = _beta(alpha, shape=(1000,), rounds=0)
    assert np.all(np.isfinite(draws)) and np.all((draws >= 0) & (draws <= 1))
    if alpha >= 1:  # Ga = Gb = alpha - 1/3 (no boost): exactly one half
        np.testing.assert_array_equal(draws, 0.5)
    else:  # the boost U^(1/alpha) still varies the draws
        assert np.std(draws) > 0.1


def test_rejects_non_positive_alpha():
    with pytest.raises(ValueError, match="alpha"):
        sampling.beta((4,), 0.0, 1.0, keras.random.SeedGenerator(0))
    with pytest.raises(ValueError, match="rounds"):
        sampling.beta((4,), 1.0, 1.0, keras.random.SeedGenerator(0), rounds=-1)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="XLA on TensorFlow")
def test_compiles_under_xla_on_tensorflow():
    import tensorflow as tf

    generator = keras.random.SeedGenerator(0)

    @tf.function(jit_compile=True)
    def draw():
        return sampling.beta((N,), 0.2, 0.2, generator)

    # keras.random.beta has no XLA kernel (the sampler this module replaces).
    with pytest.raises(tf.errors.InvalidArgumentError, match="Gamma"):
        tf.function(jit_compile=True)(
            lambda: keras.random.beta((4,), 0.2, 0.2, seed=generator)
        )()
    first, second = to_np(draw()), to_np(draw())
    assert not np.array_equal(first, second)  # the seed state advances
    exact = np.random.default_rng(1).beta(0.2, 0.2, N).astype("float32")
    assert stats.ks_2samp(first, exact).pvalue > 1e-3
