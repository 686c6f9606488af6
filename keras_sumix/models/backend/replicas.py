"""Data parallelism: the global batch, seen from one replica.

A mixing step pairs samples across the batch (the permutation) and SUMix
uses batch statistics (`semantic_scale` defaults to the batch size, the
reference reduction averages over the batch). keras-sumix gives both one
meaning on every engine: **the global batch**. A data-parallel step mixes
and computes the loss exactly as a single device would on the same global
batch, so results do not depend on the number of devices.

- JAX, `keras.distribution.DataParallel`: Keras jits one global program
  over batch-sharded arrays; XLA inserts the collectives. Nothing to do
  here: every function below is the identity (so it is on torch, and on
  one TensorFlow device).
- TensorFlow, `tf.distribute.MirroredStrategy` /
  `MultiWorkerMirroredStrategy`: the step runs once per replica on its
  shard. The images are all-gathered before mixing (every replica draws
  the same global mix from the same seed state and keeps its own rows),
  and the network outputs are all-gathered (with gradient) before the loss,
  which is then the global loss on every replica; `scale_for_gradient`
  divides it by the replica count because the optimizer sums the replicas'
  gradients.

The forward passes themselves stay on each replica's shard, so batch
normalisation sees per-replica statistics under TensorFlow (use
`keras.layers.BatchNormalization(synchronized=True)` for global ones) and
global statistics under JAX.

This module is the only place that knows about `tf.distribute`.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops


def _replica_context():
    """The TensorFlow replica context of a multi-replica step, else None."""
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    if not tf.distribute.has_strategy() or tf.distribute.in_cross_replica_context():
        return None
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return None
    return context


def num_replicas() -> int:
    """How many replicas run this step and sum their gradients (1 unless
    inside a multi-replica `tf.distribute` step)."""
    context = _replica_context()
    return 1 if context is None else context.num_replicas_in_sync


def gather(x: Any) -> Any:
    """The global batch of a per-replica tensor, concatenated in replica
    order along axis 0 (differentiable: the gradient of each replica's rows
    is summed over replicas). Identity outside a multi-replica step, and
    for None (an absent optional tensor, such as sample weights)."""
    context = _replica_context()
    if context is None or x is None:
        return x
    gathered = context.all_gather(x, axis=0)
    # all_gather keeps no static dimension; the others are the shard's (a
    # mixer such as PuzzleMix needs the images' height and width statically).
    gathered.set_shape([None, *x.shape[1:]])
    return gathered


def local_rows(global_x: Any, local: Any) -> Any:
    """This replica's rows of a global tensor built from `gather(local)`:
    the inverse of `gather` for tensors computed on the global batch.
    Identity outside a multi-replica step."""
    context = _replica_context()
    if context is None:
        return global_x
    import tensorflow as tf

    n = tf.shape(local)[:1]
    sizes = context.all_gather(n, axis=0)
    start = tf.reduce_sum(sizes[: context.replica_id_in_sync_group])
    return global_x[start : start + n[0]]


def scale_for_gradient(loss: Any) -> Any:
    """The loss a replica differentiates: the global loss divided by the
    number of replicas, whose gradients the optimizer sums."""
    replicas = num_replicas()
    return loss if replicas == 1 else loss * ops.cast(1.0 / replicas, loss.dtype)
