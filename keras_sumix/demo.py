"""The demo behind `make demo`: MCE vs SUMix (authors' formula) vs SUMix
(distance mode, per-sample reduction: the variant the study recommends) with
CutMix on the embedded dataset, compared on test top-1
and on lambda fidelity (how well the lam each trains with tracks the true
label share, known here from the object masks)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from keras_sumix.data.occluded import NUM_CLASSES, occluded_objects, true_lam
from keras_sumix.evaluation.fidelity import kept_mask, lam_fidelity
from keras_sumix.layers import CutMix
from keras_sumix.models.small import small_cnn
from keras_sumix.models.sumix_model import MixupModel, SUMixModel


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of a demo run.

    Attributes:
        train: training images. test: held-out images (top-1 and fidelity).
        epochs: epochs per method. batch_size: training batch.
        alpha: CutMix Beta concentration. learning_rate: SGD peak LR
        (cosine decay to 0). seed: data and initialisation seed.
    """

    train: int = 6000
    test: int = 2000
    epochs: int = 15
    batch_size: int = 64
    alpha: float = 1.0
    learning_rate: float = 0.05
    seed: int = 0


QUICK = DemoConfig(train=800, test=400, epochs=2)

METHODS: dict[str, tuple[type, dict[str, Any]]] = {
    "MCE (MixupModel)": (MixupModel, {}),
    "SUMix, authors' formula": (SUMixModel, {}),
    "SUMix, distance mode (per sample)": (
        SUMixModel,
        {"lambda_mode": "distance", "reduction": "per_sample"},
    ),
}


def _train(name: str, config: DemoConfig, train, verbose: int) -> keras.Model:
    keras.utils.set_random_seed(config.seed)
    cls, options = METHODS[name]
    model = cls(
        small_cnn(),
        NUM_CLASSES,
        CutMix(alpha=config.alpha, seed=config.seed),
        **options,
    )
    steps = config.epochs * int(np.ceil(len(train.images) / config.batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, steps)
    model.compile(
        optimizer=keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True),
        metrics=["accuracy"],
    )
    model.fit(
        train.images,
        train.labels,
        batch_size=config.batch_size,
        epochs=config.epochs,
        verbose=verbose,
        shuffle=True,
    )
    return model


def run(
    config: DemoConfig = DemoConfig(),
    output_dir: str | Path = "outputs/demo",
    verbose: int = 2,
) -> dict[str, Any]:
    """Train the three methods, print the comparison table, write
    `results.json` and `mixes.png` to `output_dir`.

    Args:
        config: sizes (`DemoConfig()` for the full demo, `QUICK` for tests).
        output_dir: where results go.
        verbose: Keras `fit` verbosity.

    Returns:
        The results dict written to `results.json`.
    """
    from keras_sumix.viz import mix_grid

    output_dir = Path(output_dir)
    train = occluded_objects(config.train, seed=config.seed)
    test = occluded_objects(config.test, seed=config.seed + 1)
    rows, models = {}, {}
    for name in METHODS:
        start = time.perf_counter()
        print(f"\n== {name} ==", flush=True)
        model = _train(name, config, train, verbose)
        seconds = time.perf_counter() - start
        top1 = model.evaluate(test.images, test.labels, verbose=0, return_dict=True)
        fidelity = lam_fidelity(model, CutMix(alpha=config.alpha, seed=123), test)
        rows[name] = {
            "top1": float(top1["accuracy"]),
            "pearson": fidelity["pearson"],
            "mae": fidelity["mae"],
            "mean_lam": float(fidelity["lam"].mean()),
            "mean_true_lam": float(fidelity["true_lam"].mean()),
            "train_seconds": seconds,
        }
        models[name] = model
    results = {
        "backend": keras.backend.backend(),
        "config": config.__dict__,
        "methods": rows,
    }
    print("\n" + format_table(results))
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "results.json").write_text(json.dumps(results, indent=2))

    sample = occluded_objects(8, seed=config.seed + 2)
    mixer = CutMix(alpha=config.alpha, seed=7)
    mix = mixer.mix(sample.images)
    perm = keras.ops.convert_to_numpy(mix.permutation)
    kept = kept_mask(sample.images, keras.ops.convert_to_numpy(mix.images))
    notes = {"true": true_lam(sample.masks, perm, kept)}
    for model in models.values():
        if isinstance(model, SUMixModel):
            key = "dist" if model.lambda_mode == "distance" else "ref"
            notes[key] = keras.ops.convert_to_numpy(
                model.training_lam(sample.images, sample.labels, mix)
            )
    path = mix_grid(
        sample.images, {"CutMix": mix}, output_dir / "mixes.png", {"CutMix": notes}
    )
    print(f"wrote {output_dir / 'results.json'} and {path}")
    return results


def format_table(results: dict[str, Any]) -> str:
    """The demo's comparison table, as Markdown."""
    lines = [
        f"backend: {results['backend']}; CutMix alpha={results['config']['alpha']}, "
        f"{results['config']['epochs']} epochs, {results['config']['train']} "
        f"training / {results['config']['test']} test images",
        "",
        "| method | test top-1 | lam fidelity: Pearson r | MAE | mean lam "
        "(true mean) | train s |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in results["methods"].items():
        lines.append(
            f"| {name} | {100 * row['top1']:.1f}% | {row['pearson']:.3f} | "
            f"{row['mae']:.3f} | {row['mean_lam']:.3f} ({row['mean_true_lam']:.3f}) "
            f"| {row['train_seconds']:.0f} |"
        )
    return "\n".join(lines)
