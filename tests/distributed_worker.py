"""One training step on one device and on two (virtual CPU) devices, from the
same weights, batch and seed; prints the differences as JSON.

Run by `tests/test_distributed.py` in a fresh process (the device count must
be set before the backend starts): `KERAS_BACKEND=jax` with
`XLA_FLAGS=--xla_force_host_platform_device_count=2` uses
`keras.distribution.DataParallel`; `KERAS_BACKEND=tensorflow` splits the CPU
into two logical devices and uses `tf.distribute.MirroredStrategy`.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys

BACKEND = os.environ["KERAS_BACKEND"]
if BACKEND == "tensorflow":
    import tensorflow as tf

    (cpu,) = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2
    )

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_sumix  # noqa: E402

# One strategy per process: a second MirroredStrategy reuses collective keys.
STRATEGY = (
    tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    if BACKEND == "tensorflow"
    else None
)
GLOBAL_BATCH = 8
CLASSES = 5
CASES = {
    # TransMix on a keras-hub ViT: each replica records its own pass's
    # attention (the scope is per thread) and the attention lam is per
    # sample, so the gathered labels are the global batch's.
    "mce_transmix": (keras_sumix.MixupModel, {"label_lam": "attention"}),
    "mce": (keras_sumix.MixupModel, {}),
    "sumix_distance_per_sample": (
        keras_sumix.SUMixModel,
        {"lambda_mode": "distance", "reduction": "per_sample"},
    ),
    # The model's saliency, computed per shard and gathered, mixes the
    # global batch as on one device.
    "sumix_puzzlemix": (keras_sumix.SUMixModel, {"saliency_pass": "raw"}),
    # AutoMix: the momentum encoder's features of each shard, gathered; the
    # mix block's loss on the global batch; the EMA update after the step.
    "sumix_automix": (keras_sumix.SUMixModel, {"variant": "recommended"}),
    # ManifoldMix: the pairing is global at the hidden stage too; with
    # DecoupleMix's regulariser (on the gathered logits, as the loss).
    "sumix_manifoldmix": (keras_sumix.SUMixModel, {"decouple_weight": 0.1}),
}


def _mixer(case: str):
    if case == "sumix_puzzlemix":
        return keras_sumix.layers.PuzzleMix(1.0, seed=3)
    if case == "sumix_automix":  # a low momentum: the EMA moves visibly
        return keras_sumix.layers.AutoMix(seed=3, momentum=0.5)
    if case == "sumix_manifoldmix":  # always the hidden stage (gathered)
        return keras_sumix.layers.ManifoldMix(stages=["stage3"], seed=3)
    return keras_sumix.layers.CutMix(1.0, seed=3)


def _backbone(case: str, batch_norm: bool) -> keras.Model:
    if case == "mce_transmix":
        import keras_hub

        return keras_hub.models.ViTBackbone(
            image_shape=(8, 8, 3),
            patch_size=4,
            num_layers=1,
            num_heads=2,
            hidden_dim=8,
            mlp_dim=16,
        )
    layers = [keras.Input((8, 8, 3)), keras.layers.Conv2D(6, 3, padding="same")]
    if batch_norm:
        # Global statistics: synchronised under tf.distribute; under JAX the
        # step is one global program, so plain BN is global already.
        sync = {"synchronized": True} if BACKEND == "tensorflow" else {}
        layers.append(keras.layers.BatchNormalization(**sync))
    # "stage3": the map AutoMix's mix block reads, ManifoldMix's stage.
    layers += [
        keras.layers.ReLU(),
        keras.layers.Identity(name="stage3"),
        keras.layers.GlobalAveragePooling2D(),
    ]
    return keras.Sequential(layers)


def _scope(distributed: bool):
    if not distributed:
        return contextlib.nullcontext()
    if BACKEND == "tensorflow":
        return STRATEGY.scope()
    import jax

    keras.distribution.set_distribution(
        keras.distribution.DataParallel(devices=jax.devices())
    )
    return contextlib.nullcontext()


def _replicas(model: keras.Model) -> int:
    if BACKEND == "tensorflow":
        return model.distribute_strategy.num_replicas_in_sync
    return len(model.trainable_variables[0].value.sharding.device_set)


def one_step(case: str, batch_norm: bool, distributed: bool, weights=None):
    """Train one step; return (logs, weights after, initial weights, replicas)."""
    cls, options = CASES[case]
    with _scope(distributed):
        keras.utils.set_random_seed(0)
        model = cls(
            _backbone(case, batch_norm),
            CLASSES,
            _mixer(case),
            **options,
        )
        model.build((None, 8, 8, 3))
        if weights is not None:
            model.set_weights(weights)
        initial = model.get_weights()
        model.compile(optimizer=keras.optimizers.SGD(0.5))
    rng = np.random.default_rng(1)
    x = rng.random((GLOBAL_BATCH, 8, 8, 3), dtype="float32")
    y = rng.integers(0, CLASSES, GLOBAL_BATCH)
    history = model.fit(
        x, y, batch_size=GLOBAL_BATCH, epochs=1, shuffle=False, verbose=0
    )
    logs = {k: float(v[-1]) for k, v in history.history.items()}
    return logs, model.get_weights(), initial, _replicas(model)


def compare(case: str, batch_norm: bool) -> dict:
    single_logs, single_w, initial, single_r = one_step(case, batch_norm, False)
    multi_logs, multi_w, _, multi_r = one_step(case, batch_norm, True, initial)
    if BACKEND == "jax":
        keras.distribution.set_distribution(None)
    return {
        "replicas": [single_r, multi_r],
        "single": single_logs,
        "multi": multi_logs,
        "max_weight_diff": max(
            float(np.max(np.abs(a - b))) for a, b in zip(single_w, multi_w, strict=True)
        ),
        "max_weight_update": max(
            float(np.max(np.abs(a - b))) for a, b in zip(single_w, initial, strict=True)
        ),
    }


def main() -> None:
    """Arguments: `case:plain` or `case:bn`, one per comparison."""
    results = {}
    for arg in sys.argv[1:]:
        case, norm = arg.split(":")
        results[arg] = compare(case, norm == "bn")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
