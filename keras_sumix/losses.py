"""The SUMix loss (ECCV 2024) and DecoupleMix's decoupled regulariser
(NeurIPS 2023), backend-agnostic (`keras.ops` only).

The code follows the equations of the documentation's SUMix page one by
one; each private helper is one piece of it:

- `_l2norm`, `_cross_entropy`, `_pick`: notation (`l2norm`, `CE(z, y)` with
  `z` used as logits, `v[i, y[i]]`).
- `_semantic_alphas`: Eq. 4, `alpha_a`, `alpha_b` of the reference code.
- `_corrected_lambda` (+ `_log_weights`): Eq. 4, `lam_a` per `lambda_mode`.
- `_regularizer_terms`, `_regularizer_logits`: Eq. 6, `x_a`, `x_b` per
  `regularizer`, and the logits `z_a`, `z_b` made of them per
  `regularizer_logits` and `regularizer_temperature`.
- `_reduce`: Eq. 3, the batch reduction per `reduction`.
- `_decoupled_terms`, `_left_out_cross_entropy`: DecoupleMix's `D_a`, `D_b`
  (the documentation's Models page, section "DecoupleMix").

Notation: `N` batch size, `C` number of classes, `sg` stop-gradient,
`y_a = labels`, `y_b = labels[permutation]`.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from keras_sumix._validation import (
    check_class_indices,
    check_unit_interval,
    host_array,
)
from keras_sumix.options import DEFAULTS, LOSS_OPTIONS, check_options

__all__ = ["DEFAULT_DISTANCE_SCALE", "decoupled_regularizer", "sumix_loss"]

#: The default `distance_scale`, the `t` of `lambda_mode="distance"`
#: (`keras_sumix.options` describes every option and its default).
DEFAULT_DISTANCE_SCALE = DEFAULTS["distance_scale"]

_L2_EPSILON = 1e-12


# --------------------------------------------------------------------------
# Notation.
# --------------------------------------------------------------------------


def _l2norm(v):
    """`l2norm(v) = v / ||v||_2` on the class axis (row-wise); the norm is
    floored at `sqrt(1e-12)` so that an all-zero row gives zeros, not NaN."""
    squared = ops.sum(ops.square(v), axis=-1, keepdims=True)
    return v * ops.rsqrt(ops.maximum(squared, _L2_EPSILON))


def _one_hot(y, like):
    """float32 one-hot of int `y` (N,) with as many classes as `like` (N, C)."""
    classes = ops.arange(ops.shape(like)[-1], dtype="int32")
    return ops.cast(ops.equal(y[:, None], classes[None, :]), "float32")


def _pick(v, y):
    """`v[i, y[i]]` for every row `i`: (N, C), (N,) -> (N,)."""
    return ops.take_along_axis(v, y[:, None], axis=-1)[:, 0]


def _cross_entropy(z, y):
    """Per sample `CE(z, y) = -log softmax(z)[y]`, `z` used as logits (N,)."""
    return -_pick(ops.log_softmax(z, axis=-1), y)


# --------------------------------------------------------------------------
# Eq. 4: semantic mix ratio.
# --------------------------------------------------------------------------


def _semantic_alphas(p_raw, p_mix, y_a, y_b, permutation, scale):
    """`alpha_a`, `alpha_b` (N, C) of the reference code:

        p_a = p_raw,        with p_a[i, y_b[i]] := 0
        p_b = p_raw[perm],  with p_b[i, y_a[i]] := 0
        alpha_a = s * l2norm(softmax(p_mix - p_a))
        alpha_b = s * l2norm(softmax(p_mix - p_b))

    Built from stop-gradient probabilities, so they carry no gradient.
    """
    p_a = p_raw * (1.0 - _one_hot(y_b, p_raw))
    p_b = ops.take(p_raw, permutation, axis=0) * (1.0 - _one_hot(y_a, p_raw))
    alpha_a = scale * _l2norm(ops.softmax(p_mix - p_a, axis=-1))
    alpha_b = scale * _l2norm(ops.softmax(p_mix - p_b, axis=-1))
    return alpha_a, alpha_b


def _log_weights(mode, p_raw, p_mix, alpha_a, alpha_b, y_a, y_b, permutation, t):
    """`log w_a`, `log w_b` (N,) of the semantic modes:

    - "reference": `w_a = exp(-alpha_a[i, y_a[i]])`, `w_b = exp(-alpha_b[i, y_b[i]])`
    - "distance": `w_a = exp(-t * ||p_mix - p_raw||_2)`,
      `w_b = exp(-t * ||p_mix - p_raw[perm]||_2)`
    """
    if mode == "reference":
        return -_pick(alpha_a, y_a), -_pick(alpha_b, y_b)
    d_a = ops.sqrt(ops.sum(ops.square(p_mix - p_raw), axis=-1))
    d_b = ops.sqrt(
        ops.sum(ops.square(p_mix - ops.take(p_raw, permutation, axis=0)), axis=-1)
    )
    return -t * d_a, -t * d_b


def _corrected_lambda(lam, log_w_a, log_w_b):
    """`lam_a = lam * w_a / (lam * w_a + (1 - lam) * w_b)` without underflow.

    With `s = N` the weights `exp(-alpha)` underflow to 0 (for both samples
    at once when `N` is in the hundreds), which would give 0/0. Both weights
    are rescaled by the larger one, `w' = exp(log w - max(log w_a, log w_b))`,
    which leaves the ratio unchanged and makes the larger weight exactly 1.
    The denominator can then only be 0 when `lam` is exactly 0 (and `w_b'`
    underflowed) or exactly 1 (and `w_a'` underflowed); in both cases the
    exact answer is `lam` itself, which is what is returned. The numerator
    never exceeds the denominator, so `lam_a` is finite and in [0, 1] for
    `lam` in [0, 1].
    """
    log_w_max = ops.maximum(log_w_a, log_w_b)
    numerator = lam * ops.exp(log_w_a - log_w_max)
    denominator = numerator + (1.0 - lam) * ops.exp(log_w_b - log_w_max)
    safe = ops.where(denominator > 0.0, denominator, ops.ones_like(denominator))
    return ops.where(denominator > 0.0, numerator / safe, lam)


# --------------------------------------------------------------------------
# Eq. 6: uncertainty regulariser.
# --------------------------------------------------------------------------


def _regularizer_terms(regularizer, u_raw, u_mix, alpha_a, alpha_b, permutation):
    """`x_a`, `x_b` (N, C), the terms the regulariser's logits are made of:

    - "both": `x = beta + alpha`, with `beta_a = u_raw + u_mix`,
      `beta_b = u_raw[perm] + u_mix` (gradient through beta only)
    - "uncertainty": `x = beta`
    - "semantic": `x = alpha` (no gradient at all)
    """
    if regularizer == "semantic":
        return alpha_a, alpha_b
    beta_a = u_raw + u_mix
    beta_b = ops.take(u_raw, permutation, axis=0) + u_mix
    if regularizer == "uncertainty":
        return beta_a, beta_b
    return beta_a + alpha_a, beta_b + alpha_b


def _regularizer_logits(form, temperature, x):
    """The logits `z` (N, C) of `CE` made of `x`:

    - "exp": `z = exp(-x) / T` (the authors' code, `T = 1`)
    - "negative": `z = -x / T` (the SUMix-JAX port, `T = 1`)
    """
    z = ops.exp(-x) if form == "exp" else -x
    return z / temperature


# --------------------------------------------------------------------------
# Eq. 3: reduction.
# --------------------------------------------------------------------------


def _reduce(reduction, weight_a, ce_a, ce_b):
    """`weight_a * CE_a + (1 - weight_a) * CE_b` reduced over the batch:

    - "per_sample": `mean(weight_a * CE_a + (1 - weight_a) * CE_b)`
    - "reference": `mean(weight_a) * mean(CE_a) + mean(1 - weight_a) * mean(CE_b)`
      (the reference averages each CE over the batch before weighting).
    """
    weight_b = 1.0 - weight_a
    if reduction == "per_sample":
        return ops.mean(weight_a * ce_a + weight_b * ce_b)
    return ops.mean(weight_a) * ops.mean(ce_a) + ops.mean(weight_b) * ops.mean(ce_b)


# --------------------------------------------------------------------------
# DecoupleMix: the decoupled regulariser.
# --------------------------------------------------------------------------


def _left_out_cross_entropy(z, target, left_out):
    """Per sample `CE` of the softmax of `z` over the classes except the one
    `left_out` marks (one-hot `(N, C)`) against `target` restricted to those
    classes and renormalised (an all-zero restriction gives 0)."""
    kept = target * (1.0 - left_out)
    kept = kept / ops.maximum(ops.sum(kept, axis=-1, keepdims=True), _L2_EPSILON)
    log_norm = ops.logsumexp(
        ops.where(left_out > 0.0, float("-inf"), z), axis=-1, keepdims=True
    )
    return -ops.sum(kept * (z - log_norm), axis=-1)


def _decoupled_terms(logits, targets, permutation):
    """`D_a`, `D_b` (N,) of the decoupled regulariser, float32:

        y_a = argmax(t),  y_b = y_a[perm],  t_b = t[perm]
        D_a = CE(softmax over c != y_b of z, t   given c != y_b)
        D_b = CE(softmax over c != y_a of z, t_b given c != y_a)

    both 0 where `y_a == y_b` (a sample mixed with its own class has no
    other class to leave out). `targets` `(N, C)` are one-hot or smoothed
    one-hot rows; `z = logits`.
    """
    z = ops.cast(logits, "float32")
    t_a = ops.cast(targets, "float32")
    t_b = ops.take(t_a, permutation, axis=0)
    y_a = ops.cast(ops.argmax(t_a, axis=-1), "int32")
    y_b = ops.take(y_a, permutation, axis=0)
    distinct = ops.cast(ops.not_equal(y_a, y_b), "float32")
    d_a = _left_out_cross_entropy(z, t_a, _one_hot(y_b, z))
    d_b = _left_out_cross_entropy(z, t_b, _one_hot(y_a, z))
    return distinct * d_a, distinct * d_b


# --------------------------------------------------------------------------
# Validation.
# --------------------------------------------------------------------------


def _static_shape(x) -> tuple[int | None, ...]:
    return tuple(None if d is None else int(d) for d in x.shape)


def _dims_agree(a: int | None, b: int | None) -> bool:
    return a is None or b is None or a == b


def _check_tensor(name, x, expected, ranks, n, c, source="raw_logits"):
    """Check the rank of `x` and that its static dims match `n`, `c` (those
    of the logits called `source`)."""
    shape = _static_shape(x)
    want = {0: (), 1: (n,), 2: (n, c)}
    if len(shape) not in ranks or not all(
        _dims_agree(d, w) for d, w in zip(shape, want[len(shape)], strict=True)
    ):
        raise ValueError(
            f"`{name}` must have shape {expected}, with N={n} and C={c} taken "
            f"from `{source}`. Received: {name} with shape {shape}."
        )


def _check_dtype(name, x, kind: str):
    dtype = keras.backend.standardize_dtype(x.dtype)
    is_int = "int" in dtype
    is_float = "float" in dtype
    if (kind == "int" and not is_int) or (kind == "float" and not is_float):
        expected = "an integer" if kind == "int" else "a floating-point"
        raise TypeError(
            f"`{name}` must have {expected} dtype. Received: {name} with dtype {dtype}."
        )


def _checked_logits(name, logits):
    """`logits` as a tensor, checked to be `(N, C)` with `N, C >= 1`; and
    its static `(N, C)`."""
    logits = ops.convert_to_tensor(logits)
    shape = _static_shape(logits)
    if len(shape) != 2:
        raise ValueError(
            f"`{name}` must have shape (N, C). Received: {name} with shape {shape}."
        )
    if 0 in shape:
        raise ValueError(
            f"`{name}` must hold at least one sample and one class (the loss "
            f"of an empty batch is NaN). Received: {name} with shape {shape}."
        )
    return logits, shape


def _check_host_values(labels, perm, lam, n, c, source):
    """Check the values of the inputs that are on the host (NumPy / lists):
    class indices in `[0, C)`, a permutation in `[0, N)`, `lam` in [0, 1].
    Tensors, maybe traced, are not read back."""
    host_labels, host_perm, host_lam = (host_array(v) for v in (labels, perm, lam))
    if host_labels is not None and host_labels.ndim == 1 and c is not None:
        check_class_indices("labels", host_labels, c, f"C={c} columns of {source}")
    if host_perm is not None and n is not None:
        check_class_indices("permutation", host_perm, n, f"N={n} rows of {source}")
    if host_lam is not None and host_lam.dtype.kind in "fiub":
        check_unit_interval("lam", host_lam)


def _checked_pairing(labels, perm, n, c, source):
    """`labels` (integer `(N,)`, or `(N, C)` as given) and the permutation
    (int32 `(N,)`) as tensors, their shapes and dtypes checked."""
    labels = ops.convert_to_tensor(labels)
    _check_tensor("labels", labels, "(N,) or (N, C)", (1, 2), n, c, source)
    if len(labels.shape) == 1:
        _check_dtype("labels", labels, "int")
    perm = ops.convert_to_tensor(perm)
    _check_tensor("permutation", perm, "(N,)", (1,), n, c, source)
    _check_dtype("permutation", perm, "int")
    return labels, ops.cast(perm, "int32")


def _prepare_inputs(labels, raw_logits, raw_unc, mix_logits, mix_unc, perm, lam):
    """Validate shapes/dtypes; return float32 / int32 tensors, lam as (N,)."""
    raw_logits, (n, c) = _checked_logits("raw_logits", raw_logits)
    _check_host_values(labels, perm, lam, n, c, "raw_logits")
    floats = {
        "raw_logits": raw_logits,
        "raw_uncertainty": ops.convert_to_tensor(raw_unc),
        "mix_logits": ops.convert_to_tensor(mix_logits),
        "mix_uncertainty": ops.convert_to_tensor(mix_unc),
        "lam": ops.convert_to_tensor(lam),
    }
    for name, x in floats.items():
        if name == "lam":
            _check_tensor(name, x, "(N,) or ()", (0, 1), n, c)
        else:
            _check_tensor(name, x, "(N, C)", (2,), n, c)
            _check_dtype(name, x, "float")
    labels, perm = _checked_pairing(labels, perm, n, c, "raw_logits")
    if len(labels.shape) == 2:
        labels = ops.argmax(labels, axis=-1)

    raw_logits, raw_unc, mix_logits, mix_unc, lam = (
        ops.cast(x, "float32") for x in floats.values()
    )
    # A scalar lam is broadcast to (N,) (N may be dynamic).
    lam = ops.zeros_like(raw_logits[:, 0]) + lam
    return (
        ops.cast(labels, "int32"),
        raw_logits,
        raw_unc,
        mix_logits,
        mix_unc,
        perm,
        lam,
    )


# --------------------------------------------------------------------------
# Public API.
# --------------------------------------------------------------------------


def sumix_loss(
    labels: Any,
    raw_logits: Any,
    raw_uncertainty: Any,
    mix_logits: Any,
    mix_uncertainty: Any,
    permutation: Any,
    lam: Any,
    *,
    gamma: float = DEFAULTS["gamma"],
    lambda_mode: str = DEFAULTS["lambda_mode"],
    regularizer: str = DEFAULTS["regularizer"],
    semantic_scale: float | None = DEFAULTS["semantic_scale"],
    distance_scale: float = DEFAULTS["distance_scale"],
    reduction: str = DEFAULTS["reduction"],
    regularizer_logits: str = DEFAULTS["regularizer_logits"],
    regularizer_temperature: float = DEFAULTS["regularizer_temperature"],
) -> dict[str, Any]:
    """The SUMix training loss (Eq. 3, 4 and 6 of the paper, as restored in
    the project's spec from the authors' reference code).

    The network runs twice per step, on the clean batch ("raw") and on the
    mixed batch ("mix"); this function combines both outputs:

        p_raw = softmax(sg(raw_logits))    p_mix = softmax(sg(mix_logits))
        lam_a = lam * w_a / (lam * w_a + (1 - lam) * w_b),  lam_b = 1 - lam_a
        mix_loss = lam_a * CE(mix_logits, y_a) + lam_b * CE(mix_logits, y_b)
        reg      = lam * CE(z_a, y_a) + (1 - lam) * CE(z_b, y_b)
        loss     = mean(mix_loss) + gamma * mean(reg)

    with `y_a = labels`, `y_b = labels[permutation]`, the weights `w` set by
    `lambda_mode` and the logits `z` of the regulariser set by `regularizer`,
    `regularizer_logits` and `regularizer_temperature`. The defaults of
    these options, described once in `keras_sumix.options`, are the
    paper's (the authors' code).
    Everything is computed in float32 whatever the input dtype (with `s = N`
    the terms `exp(-N x)` underflow in float16).

    Gradients: `raw_logits` get none (they only enter through `sg`); the
    corrected `lam_a` carries none; `mix_logits` get gradient through the
    cross-entropies of `mix_loss`; the uncertainty inputs get gradient only
    for `regularizer="both"` and `"uncertainty"` (through
    `beta = u_raw + u_mix`), in every `regularizer_logits` form;
    `regularizer="semantic"` has no gradient at all, in every form (`alpha`
    is built from stop-gradient probabilities).

    Note on the direction of the reference correction: worked by hand, the
    reference formula moves `lam_a` the opposite way from the paper's prose.
    A mixed image predicted as its own class `y_a` gets a large
    `alpha_a[y_a]`, a small `w_a` and a *smaller* `lam_a` (saturating to 0
    at `s = N = 100`); one predicted as `y_b` gets a larger `lam_a`. It acts
    as hard-example re-weighting, not label correction. It is kept exactly
    as published; `lambda_mode="distance"` implements the prose instead
    (a mixed image close to the raw image of `y_a` gets `lam_a -> 1`).

    Args:
        labels: the clean batch's labels, integer class indices `(N,)`.
            One-hot or soft labels `(N, C)` are also accepted and reduced to
            class indices with `argmax` (ties go to the first class; the
            soft mass is discarded, as the method is defined on hard labels).
        raw_logits: classifier logits on the clean batch, `(N, C)`.
        raw_uncertainty: uncertainty head on the clean batch,
            `l2norm(softmax(W_u f(x)))`, `(N, C)`.
        mix_logits: classifier logits on the mixed batch, `(N, C)`.
        mix_uncertainty: uncertainty head on the mixed batch, `(N, C)`.
        permutation: integer `(N,)`; mixed sample `i` was built from sample
            `i` and sample `permutation[i]` of the clean batch.
        lam: the mixer's ratio, `(N,)` or a scalar (broadcast to `(N,)`):
            the share of mixed sample `i` taken from sample `i`, in [0, 1].
        gamma: weight of the regulariser, `>= 0` (reference configs: 0.5;
            the paper's appendix uses 0.1 to 1.0 per mixer and dataset).
        lambda_mode: how `lam` is corrected. `"reference"` (default, the
            authors' code), `"distance"` (the paper's prose,
            `w = exp(-distance_scale * ||p_mix - p_raw||_2)`) or `"area"`
            (no correction, `lam_a = lam`).
        regularizer: which terms `x` the regulariser's logits `z` are made
            of. `"both"` (default, `x = beta + alpha`), `"uncertainty"`
            (`x = beta`), `"semantic"` (`x = alpha`, no gradient) or
            `"none"` (`reg = 0`). With the default form, `z = exp(-x)`: the
            authors' code, whose `z` in (0, 1] leave `softmax(z)` close to
            uniform (`reg` stays near `log C`).
        semantic_scale: the `s` multiplying `alpha` (used by
            `lambda_mode="reference"` and by the regulariser's alpha), `> 0`.
            `None` (default) uses the batch size `N`, as the reference code
            does: the correction then depends on the batch size this function
            sees (`SUMixModel` always passes it the global batch, also under
            data parallelism). Pass a number to make it independent of the
            batch size.
        distance_scale: the `t` of `lambda_mode="distance"`, `> 0`
            (default 4.0, `DEFAULT_DISTANCE_SCALE`: a sharper correction
            than the spec's worked example, `t = 2`, and at least as good).
        reduction: `"reference"` (default) reproduces the reference code,
            which averages each cross-entropy over the batch before weighting
            it, `mean(lam_a) * mean(CE_a) + mean(lam_b) * mean(CE_b)` (so
            per-sample ratios collapse to their batch mean); `"per_sample"`
            is the paper's form, `mean(lam_a * CE_a + lam_b * CE_b)`. The
            regulariser is reduced the same way with `lam`.
        regularizer_logits: the form of the regulariser's logits,
            `"exp"` (default, the authors' code: `z = exp(-x) / T`) or
            `"negative"` (the SUMix-JAX port's reading of Eq. 6:
            `z = -x / T`), with `x` set by `regularizer` and
            `T = regularizer_temperature`.
        regularizer_temperature: the temperature `T` dividing the
            regulariser's logits, `> 0` (default 1.0: no scaling). A `T`
            below 1 sharpens `softmax(z)`.

    Returns:
        A dict of float32 tensors: `"loss"` (scalar, `mix_loss + gamma *
        reg_loss`), `"mix_loss"` (scalar), `"reg_loss"` (scalar, before
        `gamma`; 0 for `regularizer="none"`) and `"lam"` (`(N,)`, the
        corrected `lam_a`, without gradient).

    Hostile inputs: shapes and dtypes are checked on every call (static
    shapes); values only where they are NumPy arrays or lists (a tensor,
    maybe traced or on an accelerator, is not read back). A batch of one is
    valid (its partner is itself, `permutation == [0]`, and the loss is that
    of the sample with its own label, whatever `lam`). NaN or Inf logits and
    uncertainties (network outputs) are never checked, nor is a `lam`
    tensor: they make the loss NaN. Inside a
    traced step, an out-of-range label is undefined behaviour (a gather out
    of bounds: TensorFlow on CPU and torch raise, JAX returns NaN, GPUs may
    return 0): check labels upstream, as `SUMixModel.fit` does.

    Raises:
        ValueError: an unknown mode string, a negative `gamma`, a
            non-positive `semantic_scale`/`distance_scale`/
            `regularizer_temperature`, shapes that do
            not agree (checked on static shapes where known), an empty batch
            (N = 0) or no class; and, for NumPy/list inputs, integer labels
            outside `[0, C)`, a permutation outside `[0, N)`, or a `lam` not
            finite or outside [0, 1].
        TypeError: a non-number `gamma`/scale, or integer labels/permutation
            with a floating dtype (or floating logits with an integer one).

    Example:

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> def head(x):  # stands in for l2norm(softmax(W_u f(x)))
    ...     e = np.exp(x)
    ...     p = e / e.sum(-1, keepdims=True)
    ...     return p / np.linalg.norm(p, axis=-1, keepdims=True)
    >>> n, c = 4, 3
    >>> out = sumix_loss(
    ...     labels=np.array([0, 1, 2, 1]),
    ...     raw_logits=rng.normal(size=(n, c)).astype("float32"),
    ...     raw_uncertainty=head(rng.normal(size=(n, c))).astype("float32"),
    ...     mix_logits=rng.normal(size=(n, c)).astype("float32"),
    ...     mix_uncertainty=head(rng.normal(size=(n, c))).astype("float32"),
    ...     permutation=np.array([1, 2, 3, 0]),
    ...     lam=np.full((n,), 0.7, "float32"),
    ... )
    >>> sorted(out)
    ['lam', 'loss', 'mix_loss', 'reg_loss']
    >>> tuple(out["lam"].shape)
    (4,)
    """
    given = locals()  # the arguments alone, before any other local name
    opt = check_options(**{name: given[name] for name in LOSS_OPTIONS})
    y_a, raw_logits, u_raw, mix_logits, u_mix, perm, lam = _prepare_inputs(
        labels,
        raw_logits,
        raw_uncertainty,
        mix_logits,
        mix_uncertainty,
        permutation,
        lam,
    )
    y_b = ops.take(y_a, perm, axis=0)
    scale = opt["semantic_scale"]
    if scale is None:  # the batch size, as the reference code
        scale = ops.cast(ops.shape(raw_logits)[0], "float32")

    # Eq. 4: semantic mix ratio, from stop-gradient probabilities.
    p_raw = ops.softmax(ops.stop_gradient(raw_logits), axis=-1)
    p_mix = ops.softmax(ops.stop_gradient(mix_logits), axis=-1)
    alpha_a, alpha_b = _semantic_alphas(p_raw, p_mix, y_a, y_b, perm, scale)
    if opt["lambda_mode"] == "area":
        lam_a = lam
    else:
        log_w_a, log_w_b = _log_weights(
            opt["lambda_mode"],
            p_raw,
            p_mix,
            alpha_a,
            alpha_b,
            y_a,
            y_b,
            perm,
            opt["distance_scale"],
        )
        lam_a = _corrected_lambda(lam, log_w_a, log_w_b)
    lam_a = ops.stop_gradient(lam_a)

    # Eq. 3: mixed cross-entropy with the corrected ratio.
    mix_loss = _reduce(
        opt["reduction"],
        lam_a,
        _cross_entropy(mix_logits, y_a),
        _cross_entropy(mix_logits, y_b),
    )

    # Eq. 6: uncertainty regulariser (weighted by the area lam).
    if opt["regularizer"] == "none":
        reg_loss = ops.zeros_like(mix_loss)
    else:
        form, temperature = opt["regularizer_logits"], opt["regularizer_temperature"]
        z_a, z_b = (
            _regularizer_logits(form, temperature, x)
            for x in _regularizer_terms(
                opt["regularizer"], u_raw, u_mix, alpha_a, alpha_b, perm
            )
        )
        reg_loss = _reduce(
            opt["reduction"], lam, _cross_entropy(z_a, y_a), _cross_entropy(z_b, y_b)
        )

    return {
        "loss": mix_loss + opt["gamma"] * reg_loss,
        "mix_loss": mix_loss,
        "reg_loss": reg_loss,
        "lam": lam_a,
    }


def decoupled_regularizer(logits: Any, labels: Any, permutation: Any, lam: Any) -> Any:
    """DecoupleMix's decoupled regulariser of each mixed sample (Liu et al.,
    NeurIPS 2023, "Harnessing Hard Mixed Samples with Decoupled
    Regularizer").

    Each of the two classes of a mixed sample also gets a softmax from which
    the other mixed class is left out:

        q_a = softmax of z over the classes c != y_b
        q_b = softmax of z over the classes c != y_a
        D_a = CE(q_a, y_a) = -log(p_a / (1 - p_b)),   p = softmax(z)
        D_b = CE(q_b, y_b) = -log(p_b / (1 - p_a))
        reg = lam * D_a + (1 - lam) * D_b

    with `z` the mixed sample's logits, `y_a = labels`,
    `y_b = labels[permutation]`, and `reg = 0` where `y_a == y_b`. In the
    mixed cross-entropy the two classes compete: the gradient on `z_a` is
    `p_a - lam`, which stops pushing once `p_a` reaches `lam`, and a hard
    mixed sample whose prediction goes to `y_b` holds `p_a` down. In `D_a`,
    `y_b` takes no share, so its gradient on `z_a`, `q_a[y_a] - 1`, keeps
    pushing `y_a` up until it dominates every class but `y_b`; and likewise
    for `y_b`. The training models add `weight * mean(reg)` to their mixed
    loss (`decouple_weight`; the reference's `eta`, 0.1 in its base configs).

    With smoothed targets `t` `(N, C)` (e.g. `y * (1 - e) + e / C`), `D_a`
    is the cross-entropy of `q_a` against `t` given `c != y_b` (the row
    without its `y_b` entry, renormalised), and likewise `D_b`: the
    one-hot case above when `e = 0`.

    Gradients: through `logits` only (the targets and the pairing carry
    none); `D_a` sends none to class `y_b`'s logit, `D_b` none to `y_a`'s,
    and a sample with `y_a == y_b` none at all. Everything is computed in
    float32 whatever the input dtype.

    Args:
        logits: the classifier's logits on the mixed batch, `(N, C)`.
        labels: the clean batch's labels: integer class indices `(N,)`, or
            `(N, C)` one-hot or smoothed one-hot targets (the classes are
            their argmax; the smoothed mass is kept, as above).
        permutation: integer `(N,)`; mixed sample `i` was built from sample
            `i` and sample `permutation[i]` of the clean batch.
        lam: the share of mixed sample `i` taken from sample `i`, `(N,)` or
            a scalar, in [0, 1] (a model passes the ratio its mixed
            cross-entropy uses).

    Returns:
        float32 `(N,)`: `reg` of each mixed sample, unreduced (average it,
        or weight it per sample).

    Raises:
        ValueError: shapes that do not agree (checked on static shapes where
            known), an empty batch or no class; and, for NumPy/list inputs,
            integer labels outside `[0, C)`, a permutation outside `[0, N)`,
            or a `lam` not finite or outside [0, 1].
        TypeError: floating `(N,)` labels or permutation, or integer logits.

    Example:

    >>> import numpy as np
    >>> logits = np.array([[2.0, 1.0, 0.0], [0.0, 3.0, 0.0]], "float32")
    >>> reg = decoupled_regularizer(
    ...     logits, labels=np.array([0, 1]), permutation=np.array([1, 0]),
    ...     lam=np.array([0.7, 0.3], "float32"),
    ... )
    >>> tuple(reg.shape)
    (2,)
    """
    logits, (n, c) = _checked_logits("logits", logits)
    _check_dtype("logits", logits, "float")
    _check_host_values(labels, permutation, lam, n, c, "logits")
    lam = ops.convert_to_tensor(lam)
    _check_tensor("lam", lam, "(N,) or ()", (0, 1), n, c, "logits")
    labels, perm = _checked_pairing(labels, permutation, n, c, "logits")
    if len(labels.shape) == 1:
        labels = _one_hot(ops.cast(labels, "int32"), logits)
    d_a, d_b = _decoupled_terms(logits, labels, perm)
    lam = ops.zeros_like(d_a) + ops.cast(lam, "float32")
    return lam * d_a + (1.0 - lam) * d_b
