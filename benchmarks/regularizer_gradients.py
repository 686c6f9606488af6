"""Does SUMix's uncertainty regulariser (Eq. 6) do anything, in each form of
its logits?

For each form (`regularizer_logits` x `regularizer_temperature`) with
`regularizer="both"` and the other options at their defaults (`gamma=0.5`),
one `SUMixModel` is trained on the study's embedded occluded-objects data
with CutMix (the study's data, `small_cnn`, mixer and SGD schedule:
`study.runner`), every form from the same seed. At
initialisation and after training it measures, on the same training batches:

- the global L2 norm of the gradient of `gamma * reg_loss` with respect to
  the model's trainable weights, of the gradient of `mix_loss`, and their
  ratio (per batch, then averaged); the same on the backbone's weights only
  (what the two losses share: the uncertainty head's own weights do not
  change the classifier);
- `reg_loss` against `log C`, the cross-entropy of a uniform softmax (where
  the authors' form sits: its logits `exp(-x)` lie in (0, 1]).

It also reports the test top-1 of each trained model (one seed: a hint, not
a ranking).

    python benchmarks/regularizer_gradients.py           # ~40 s (TensorFlow, 2 CPUs)
    python benchmarks/regularizer_gradients.py --quick   # smoke: seconds

The backend is `KERAS_BACKEND` (TensorFlow if unset). Writes
`benchmarks/results/regularizer_gradients.json` and `.md`.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The study (`study/` at the repository root, run from a clone).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras
import numpy as np
from _report import write_report

import keras_sumix as ks
from keras_sumix.evaluation import top1_accuracy
from study.config import FULL, QUICK, StudyConfig
from study.grid import Cell
from study.runner import (
    StudyData,
    build_backbone,
    compile_model,
    make_mixer,
    num_classes,
)

RESULTS = Path(__file__).resolve().parent / "results"
#: The forms compared: name -> `SUMixModel` options.
FORMS = {
    "exp": {"regularizer_logits": "exp"},
    "negative": {"regularizer_logits": "negative"},
    "exp_t0.1": {"regularizer_logits": "exp", "regularizer_temperature": 0.1},
}
GAMMA = 0.5
#: The study cell whose data, backbone and mixer are used.
CELL = Cell("occluded", "cutmix", "sumix")


def _gradients(model: Any, images: Any, labels: Any) -> tuple[list, list, dict]:
    """Gradients of `GAMMA * reg_loss` and of `mix_loss` with respect to
    `model.trainable_variables` on one batch (one mix for both), and the
    loss terms."""
    variables = model.trainable_variables
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape(persistent=True) as tape:
            terms, _ = model.training_terms(images, labels)
            parts = (GAMMA * terms["reg_loss"], terms["mix_loss"])
        zero = tf.UnconnectedGradients.ZERO
        values = [v.value for v in variables]  # the tf.Variables
        reg, mix = (tape.gradient(p, values, unconnected_gradients=zero) for p in parts)
    elif backend == "jax":
        import jax

        def parts(values):
            mapping = list(zip(variables, values, strict=True))
            with keras.StatelessScope(state_mapping=mapping):
                terms, _ = model.training_terms(images, labels)
            return (GAMMA * terms["reg_loss"], terms["mix_loss"]), terms

        values = [v.value for v in variables]
        (reg, mix), terms = jax.jacrev(parts, has_aux=True)(values)
    else:  # torch
        import torch

        terms, _ = model.training_terms(images, labels)
        values = [v.value for v in variables]

        def gradient(part):
            grads = torch.autograd.grad(
                part, values, retain_graph=True, allow_unused=True
            )
            return [
                torch.zeros_like(v) if g is None else g
                for v, g in zip(values, grads, strict=True)
            ]

        reg, mix = gradient(GAMMA * terms["reg_loss"]), gradient(terms["mix_loss"])
    return reg, mix, terms


def _norm(gradients: list, keep: list[bool]) -> float:
    """Global L2 norm of the kept gradients."""
    squares = (
        np.sum(np.square(keras.ops.convert_to_numpy(g).astype("float64")))
        for g, kept in zip(gradients, keep, strict=True)
        if kept
    )
    return math.sqrt(sum(squares))


def measure(model: Any, images: np.ndarray, labels: np.ndarray, batch: int) -> dict:
    """Gradient norms and `reg_loss` on consecutive batches of `images`,
    averaged over the batches (ratios per batch, then averaged)."""
    backbone = {id(v) for v in model.backbone.trainable_variables}
    everything = [True] * len(model.trainable_variables)
    shared = [id(v) in backbone for v in model.trainable_variables]
    rows = []
    for start in range(0, len(images) - batch + 1, batch):
        reg, mix, terms = _gradients(
            model, images[start : start + batch], labels[start : start + batch]
        )
        row = {"reg_loss": float(keras.ops.convert_to_numpy(terms["reg_loss"]))}
        for scope, keep in (("all", everything), ("backbone", shared)):
            row[f"reg_grad_{scope}"] = _norm(reg, keep)
            row[f"mix_grad_{scope}"] = _norm(mix, keep)
            row[f"ratio_{scope}"] = row[f"reg_grad_{scope}"] / row[f"mix_grad_{scope}"]
        rows.append(row)
    summary = {key: statistics.fmean(r[key] for r in rows) for key in rows[0]}
    summary["reg_loss_minus_log_c"] = summary["reg_loss"] - math.log(
        num_classes(CELL.dataset)
    )
    return {**summary, "batches": len(rows)}


def run_form(
    name: str, config: StudyConfig, data: StudyData, batches: int, seed: int
) -> dict[str, Any]:
    """Train one form from `seed`; its measures at initialisation and after
    training, the logged `reg_loss` per epoch and the test top-1."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    train_x, train_y = data.split(CELL.dataset, "train")
    model = ks.SUMixModel(
        build_backbone(CELL, config, train_x.shape[1:]),
        num_classes(CELL.dataset),
        make_mixer(CELL.mixer, config, seed),
        gamma=GAMMA,
        regularizer="both",
        **FORMS[name],
    )
    steps_per_epoch = math.ceil(len(train_x) / config.batch_size)
    compile_model(model, config, config.epochs * steps_per_epoch)
    model.build((None, *train_x.shape[1:]))  # its weights, before measuring
    probe = slice(0, batches * config.batch_size)
    start = time.perf_counter()
    initial = measure(model, train_x[probe], train_y[probe], config.batch_size)
    history = model.fit(
        train_x,
        train_y,
        batch_size=config.batch_size,
        epochs=config.epochs,
        shuffle=True,
        verbose=0,
    ).history
    trained = measure(model, train_x[probe], train_y[probe], config.batch_size)
    return {
        "form": name,
        "options": FORMS[name],
        "initial": initial,
        "trained": trained,
        "epoch_reg_loss": [float(v) for v in history["reg_loss"]],
        "epoch_mix_loss": [float(v) for v in history["mix_loss"]],
        "test_top1": top1_accuracy(model, *data.split(CELL.dataset, "test")),
        "seconds": time.perf_counter() - start,
    }


def run(config: StudyConfig, batches: int, seed: int = 0) -> dict[str, Any]:
    """Every form; the report (settings, machine, forms)."""
    data = StudyData(config)
    forms = [run_form(name, config, data, batches, seed) for name in FORMS]
    return {
        "settings": {
            "data": f"embedded occluded objects, {config.occluded_train} train / "
            f"{config.occluded_test} test images, 32x32, "
            f"{num_classes(CELL.dataset)} classes",
            "model": f"SUMixModel(small_cnn(widths={list(config.widths)}), "
            f"regularizer='both', gamma={GAMMA})",
            "mixer": f"CutMix(alpha={config.alpha})",
            "optimizer": f"SGD({config.learning_rate}, momentum={config.momentum}, "
            f"nesterov, weight_decay={config.weight_decay}), cosine decay to 0",
            "epochs": config.epochs,
            "batch_size": config.batch_size,
            "measured_batches": batches,
            "seed": seed,
            "log_c": math.log(num_classes(CELL.dataset)),
            "quick": config.quick,
        },
        "machine": {
            "backend": keras.backend.backend(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_average": list(os.getloadavg()),  # at the end of the runs
            "keras": keras.__version__,
            "date": time.strftime("%Y-%m-%d"),
        },
        "forms": forms,
    }


def markdown(report: dict[str, Any]) -> str:
    settings, machine = report["settings"], report["machine"]
    lines = [
        f"# Regulariser gradients ({machine['backend']}, {machine['cpus']} CPUs, "
        f"{machine['date']})",
        "",
        f"{settings['model']}, {settings['mixer']}, {settings['data']}; "
        f"{settings['epochs']} epochs at batch {settings['batch_size']}, "
        f"{settings['optimizer']}; seed {settings['seed']}. Gradient norms: "
        f"mean over {settings['measured_batches']} training batches; "
        f"log C = {settings['log_c']:.4f}.",
        "",
        "| form | when | reg_loss | reg_loss - log C | norm grad(gamma reg) "
        "| norm grad(mix) | ratio | ratio, backbone only |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for form in report["forms"]:
        for when in ("initial", "trained"):
            m = form[when]
            lines.append(
                f"| {form['form']} | {when} | {m['reg_loss']:.4f} | "
                f"{m['reg_loss_minus_log_c']:+.2e} | {m['reg_grad_all']:.3e} | "
                f"{m['mix_grad_all']:.3e} | {m['ratio_all']:.2e} | "
                f"{m['ratio_backbone']:.2e} |"
            )
    lines += [
        "",
        "| form | reg_loss, last epoch (logged) | mix_loss, last epoch | test top-1 |",
        "|---|---:|---:|---:|",
    ]
    for form in report["forms"]:
        lines.append(
            f"| {form['form']} | {form['epoch_reg_loss'][-1]:.4f} | "
            f"{form['epoch_mix_loss'][-1]:.4f} | {form['test_top1']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: the study's quick data"
    )
    parser.add_argument("--epochs", type=int, default=None, help="default 5 (1)")
    parser.add_argument(
        "--batches", type=int, default=None, help="measured batches, default 4 (1)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--output", type=Path, default=RESULTS / "regularizer_gradients.json"
    )
    args = parser.parse_args(argv)
    base = QUICK if args.quick else FULL
    epochs = args.epochs or (1 if args.quick else 5)
    batches = args.batches or (1 if args.quick else 4)
    report = run(dataclasses.replace(base, epochs=epochs), batches, args.seed)
    print(write_report(report, args.output, markdown, indent=1))
    return report


if __name__ == "__main__":
    main()
