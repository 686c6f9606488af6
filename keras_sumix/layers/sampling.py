"""Gamma and Beta draws built from normal and uniform draws only, so that they
compile everywhere: under XLA on TensorFlow (which has no kernel for the
stateless gamma sampler behind `keras.random.beta`), `jax.jit`,
`torch.compile` and inside a `tf.data` graph whatever the Keras backend.

Gamma(a) uses Marsaglia and Tsang's method ("A simple method for generating
gamma variables", ACM TOMS 2000) with a fixed number of rejection rounds
drawn at once; shapes `a < 1` are boosted, `Gamma(a) = Gamma(a + 1) *
U^(1/a)`. Beta(a, b) = Ga / (Ga + Gb), computed from the log-gammas as
`sigmoid(log Ga - log Gb)` (rounded right near 0 and 1), so that small
shapes (whose gammas underflow to 0 in float32) still give a value in
[0, 1], never 0/0, with as many exact 1s as exact draws rounded to float32.
Exact 0s too, except where the arithmetic flushes subnormal floats to zero
(XLA, TensorFlow): there draws below 1.2e-38 come out as 0 (probability
1.4e-8 for Beta(0.2, 0.2), 0.4% for Beta(0.05, 0.05)).
"""

from __future__ import annotations

import math
from typing import Any

from keras_sumix._keras_compat import DynamicBackend

# Marsaglia-Tsang accepts a round with probability
# p(a) = e^d sqrt(d) Gamma(a) / (sqrt(2 pi) d^a), d = a - 1/3, for a >= 1:
# 0.9517 at a = 1, increasing with a (0.9817 at a = 2). The shape sampled is
# always >= 1 (a < 1 is boosted to a + 1), so all ROUNDS rounds reject with
# probability at most 0.0484^12 = 1.6e-16 per gamma draw (3.2e-16 per Beta
# draw): about one fallback in 2e13 steps at batch 128.
ROUNDS = 12


def _acceptance(shape: float) -> float:
    """Marsaglia-Tsang's acceptance probability per round, for `shape >= 1`."""
    d = shape - 1.0 / 3.0
    log_p = d + 0.5 * math.log(d) + math.lgamma(shape) - shape * math.log(d)
    return math.exp(log_p - 0.5 * math.log(2.0 * math.pi))


def fallback_probability(alpha: float, rounds: int = ROUNDS) -> float:
    """Probability that a gamma draw of `log_gamma` uses its fallback.

    Args:
        alpha: the gamma shape, > 0.
        rounds: rejection rounds drawn per sample.

    Returns:
        The probability that all `rounds` rounds reject (at most 1.6e-16 for
        the default 12 rounds, whatever `alpha`).

    Example:

    >>> from keras_sumix.layers.sampling import fallback_probability
    >>> fallback_probability(0.2) < 2e-16
    True
    """
    shape = alpha + 1.0 if alpha < 1.0 else alpha
    return (1.0 - _acceptance(shape)) ** rounds


def log_gamma(
    shape: tuple,
    alpha: float,
    seed: Any,
    backend: Any = None,
    rounds: int = ROUNDS,
) -> Any:
    """Logarithms of Gamma(alpha, 1) draws, float32.

    Marsaglia-Tsang with `rounds` rejection rounds drawn at once (normal and
    uniform draws only) and an accepted round kept. If every round
    rejects (probability `fallback_probability(alpha)`, at most 1.6e-16 with
    the default 12 rounds) the draw falls back to the envelope's centre,
    `d = alpha' - 1/3` (`alpha'` the shape sampled, >= 1): a finite, positive
    gamma value, so that a Beta built on it stays in [0, 1].

    Args:
        shape: output shape (static).
        alpha: the shape parameter, a Python number > 0 (static).
        seed: a `keras.random.SeedGenerator` (or an int seed).
        backend: the namespace to compute with (`MixingLayer.backend`, a
            `DynamicBackend`, which switches to TensorFlow inside `tf.data`);
            None uses the current Keras backend.
        rounds: rejection rounds, >= 0 (0: always the fallback).

    Returns:
        float32 tensor of `shape`: `log(G)`, `G ~ Gamma(alpha)`. Kept in log
        space: for small `alpha`, `G` itself underflows float32.

    Example:

    >>> import keras, numpy as np
    >>> from keras_sumix.layers.sampling import log_gamma
    >>> g = np.exp(np.asarray(log_gamma((10000,), 2.0, keras.random.SeedGenerator(0))))
    >>> bool(abs(g.mean() - 2.0) < 0.1)
    True
    """
    if not alpha > 0:
        raise ValueError(f"`alpha` must be > 0. Received: alpha={alpha!r}.")
    if not isinstance(rounds, int) or rounds < 0:
        raise ValueError(f"`rounds` must be an int >= 0. Received: rounds={rounds!r}.")
    ops = backend if backend is not None else DynamicBackend()
    shape = tuple(shape)
    boosted = alpha < 1.0
    a = alpha + 1.0 if boosted else float(alpha)
    d = a - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    # Few, batched draws and ops: eager backends pay per op and per draw.
    uniforms = ops.random.uniform(
        (rounds + int(boosted), *shape), dtype="float32", seed=seed
    )
    out = math.log(d)
    if rounds:
        x = ops.random.normal((rounds, *shape), dtype="float32", seed=seed)
        v = (1.0 + c * x) ** 3
        positive = v > 0.0
        log_v = ops.numpy.log(ops.numpy.where(positive, v, 1.0))
        # Accept when log(u) < x^2 / 2 + d - d v + d log v (u = 0 accepts).
        log_u = ops.numpy.log(uniforms[:rounds])
        accept = positive & (log_u < 0.5 * x * x + d - d * v + d * log_v)
        # Keep an accepted round (which one depends only on which rounds
        # accepted, so its value is still exactly Gamma-distributed); none
        # accepted: v = 1 (log v = 0), the fallback.
        first = ops.numpy.argmax(ops.cast(accept, "int32"), axis=0)
        chosen = ops.numpy.take_along_axis(log_v, first[None], axis=0)[0]
        out = out + ops.numpy.where(ops.numpy.any(accept, axis=0), chosen, 0.0)
    else:
        out = out + ops.numpy.zeros(shape, dtype="float32")
    if boosted:
        # Gamma(alpha) = Gamma(alpha + 1) * U^(1/alpha), U in (0, 1].
        out = out + ops.numpy.log(1.0 - uniforms[rounds]) / alpha
    return out


def beta(
    shape: tuple,
    alpha: float,
    beta: float,
    seed: Any,
    backend: Any = None,
    rounds: int = ROUNDS,
) -> Any:
    """Beta(alpha, beta) draws in [0, 1], float32, that compile under XLA.

    `sigmoid(log Ga - log Gb)` with `Ga ~ Gamma(alpha)`, `Gb ~ Gamma(beta)`
    from `log_gamma`, built from normal and uniform draws only. Distributed
    as exact Beta draws rounded to float32: `tests/test_sampling.py` checks
    it with two-sample Kolmogorov-Smirnov tests against NumPy's Beta cast to
    float32 (100,000 draws, alpha in {0.2, 0.5, 1, 2}, every backend).

    Args:
        shape: output shape (static).
        alpha: first shape parameter, a Python number > 0.
        beta: second shape parameter, a Python number > 0.
        seed: a `keras.random.SeedGenerator` (or an int seed).
        backend: the namespace to compute with (see `log_gamma`); None uses
            the current Keras backend.
        rounds: rejection rounds per gamma draw (see `log_gamma`).

    Returns:
        float32 tensor of `shape`, values in [0, 1].

    Example:

    >>> import keras, numpy as np
    >>> from keras_sumix.layers.sampling import beta
    >>> lam = np.asarray(beta((1000,), 0.2, 0.2, keras.random.SeedGenerator(0)))
    >>> bool(lam.min() >= 0.0 and lam.max() <= 1.0)
    True
    """
    ops = backend if backend is not None else DynamicBackend()
    shape = tuple(shape)
    if alpha == beta:  # both gammas in one draw
        logs = log_gamma((2, *shape), alpha, seed, backend=ops, rounds=rounds)
        log_a, log_b = logs[0], logs[1]
    else:
        log_a = log_gamma(shape, alpha, seed, backend=ops, rounds=rounds)
        log_b = log_gamma(shape, beta, seed, backend=ops, rounds=rounds)
    return _sigmoid(ops, log_a - log_b)


def _sigmoid(ops: Any, t: Any) -> Any:
    """`1 / (1 + exp(-t))`, rounded right in both tails.

    The textbook formula rounds `1 + exp(-t)` first, which sends every value
    within 6e-8 of 1 (not 3e-8) to 1.0, and overflows `exp(-t)` to 0 below
    `t = -88.7`. From `s = exp(-|t|) / (1 + exp(-|t|))` (at most 1/2, no
    overflow) the value is `s` or `1 - s`, each rounded once.
    """
    e = ops.numpy.exp(-ops.numpy.abs(t))
    small = e / (1.0 + e)
    return ops.numpy.where(t >= 0, 1.0 - small, small)


__all__ = ["ROUNDS", "beta", "fallback_probability", "log_gamma"]
