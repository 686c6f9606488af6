"""The cross-entropies the mixing models train with (float32, on soft or
one-hot targets `(N, C)`), and the weights of mixed samples.

Pure `keras.ops` functions: no layer, no backend, no replica knows of them.
"""

from __future__ import annotations

from typing import Any

from keras import ops


def per_sample(logits: Any, target: Any) -> Any:
    """Cross-entropy of each row of `logits` against soft targets, `(N,)`."""
    log_p = ops.log_softmax(ops.cast(logits, "float32"), axis=-1)
    return -ops.sum(target * log_p, axis=-1)


def summed(logits: Any, target: Any) -> Any:
    """The cross-entropy summed over the batch, so that row `i` of its input
    gradient is sample `i`'s (the loss a saliency is the gradient of)."""
    return ops.sum(per_sample(logits, target))


def weighted_mean(values: Any, weight: Any | None) -> Any:
    """`mean(weight * values)` (all weights 1 when None): Keras's
    `"sum_over_batch_size"` reduction of a weighted loss."""
    return ops.mean(values if weight is None else weight * values)


def mixed_weight(weight: Any | None, permutation: Any, lam: Any) -> Any | None:
    """A mixed sample's weight, `lam * w + (1 - lam) * w[permutation]`,
    float32 `(N,)` (None when `weight` is None)."""
    if weight is None:
        return None
    lam = ops.reshape(ops.cast(lam, "float32"), (-1,))
    return lam * weight + (1.0 - lam) * ops.take(weight, permutation, axis=0)


def mixed(
    logits: Any, target: Any, permutation: Any, lam: Any, weight: Any | None = None
) -> Any:
    """MCE: the cross-entropy against `lam * y + (1 - lam) * y[permutation]`,
    each mixed sample weighted by `mixed_weight` of `weight` (if given)."""
    lam = ops.reshape(ops.cast(lam, "float32"), (-1, 1))
    mixed_target = lam * target + (1.0 - lam) * ops.take(target, permutation, axis=0)
    return weighted_mean(
        per_sample(logits, mixed_target), mixed_weight(weight, permutation, lam)
    )


def is_one_hot(dense: Any) -> Any:
    """Whether every row of `dense` `(N, C)` is one-hot: entries 0 or 1
    summing to 1 (a scalar bool tensor; False for NaN entries)."""
    binary = ops.all(ops.logical_or(ops.equal(dense, 0.0), ops.equal(dense, 1.0)))
    return ops.logical_and(binary, ops.all(ops.equal(ops.sum(dense, axis=-1), 1.0)))
