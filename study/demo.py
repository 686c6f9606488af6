"""The demo behind `make demo` (`python -m study.demo` from the repository
root): MCE vs SUMix as published
(`variant="paper"`, the authors' formula) vs `SUMixModel(variant=
"recommended")` (the distance mode, per-sample reduction, the cheap step) with
CutMix, on the study's embedded setting (`study`: the harder
occluded-objects data, where the methods differ), over a few seeds.

Each run is a study run (`study.train_and_measure`); the demo
reports, per method, test top-1 (mean ± std over seeds), its paired
difference to MCE (seed by seed: the same network initialisation and mixer
seed), lambda fidelity (how well the lam each trains with tracks the true
label share, known here from the object masks) and seconds per run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np

from keras_sumix.data.occluded import OccludedObjects
from study.command import positive_int, run_command
from study.config import FULL, ROOT, StudyConfig, check_seeds
from study.config import QUICK as STUDY_QUICK
from study.grid import MIXER_LABELS, Cell, RunSpec
from study.runner import StudyData, make_mixer, train_and_measure
from study.summary import stats

#: The demo's mixer (a cutting mixer: the masks give the true label share).
MIXER = "cutmix"
#: Epochs of the full demo (the study trains 40; 3 methods x 3 seeds of 25
#: fit in under 5 minutes on 2 CPU cores under TensorFlow).
EPOCHS = 25
#: Seeds of the full demo.
SEEDS = (0, 1, 2)
#: Seeds of `--quick` (two, so that every spread is computed).
QUICK_SEEDS = (0, 1)
#: Seed of the mixes drawn in `mixes.png`.
PICTURE_MIX_SEED = 7
#: Default output folder (in the repository, wherever the demo is run from).
DEFAULT_OUTPUT = ROOT / "outputs" / "demo"

#: The methods, by display name: study cells (CutMix, embedded data); the
#: last is `SUMixModel(variant="recommended")` (the study's part P cell).
METHODS: dict[str, Cell] = {
    "MCE (MixupModel)": Cell("occluded", MIXER, "mce"),
    "SUMix, authors' formula": Cell("occluded", MIXER, "sumix"),
    'SUMix, variant="recommended"': Cell("occluded", MIXER, "recommended"),
}
#: The method the others are compared with.
BASELINE = "MCE (MixupModel)"
#: Per-run numbers aggregated over seeds (`_metric`).
_METRICS = ("top1", "pearson", "mae", "mean_lam", "mean_true_lam", "seconds")


def demo_config(
    epochs: int | None = None,
    seeds: Sequence[int] | None = None,
    quick: bool = False,
) -> StudyConfig:
    """The demo's settings: the study's (`study.FULL`: 800 / 1000
    embedded images, `small_cnn` (16, 32, 64), SGD, cosine decay), `EPOCHS`
    epochs and `SEEDS`, or the study's quick ones (`--quick`); top-1 is
    measured once, after the last epoch.

    Args:
        epochs: epochs per run (None: `EPOCHS`, or the quick study's 2).
        seeds: seeds of every method (None: `SEEDS`, or `QUICK_SEEDS`).
        quick: the small, fast version (what the tests run).

    Returns:
        The `StudyConfig` of the demo's runs.

    Raises:
        ValueError: `epochs` below 1, or `seeds` empty, negative or repeated.
    """
    base = STUDY_QUICK if quick else FULL
    if epochs is None:
        epochs = base.epochs if quick else EPOCHS
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(
            f"`epochs` must be a positive integer. Received: epochs={epochs!r}."
        )
    seeds = check_seeds((QUICK_SEEDS if quick else SEEDS) if seeds is None else seeds)
    return dataclasses.replace(
        base, epochs=epochs, eval_every=epochs, median_last=1, seeds=seeds
    )


def _picture(
    config: StudyConfig, data: StudyData
) -> tuple[OccludedObjects, Any, dict[str, np.ndarray]]:
    """Eight held-out images (with masks), their CutMix `MixResult` and the
    true lam of each mix (`{"true": lams}`, the picture's captions)."""
    from keras_sumix.evaluation.fidelity import true_share

    held_out = data.fidelity()
    sample = type(held_out)(*(field[:8] for field in held_out))
    mixer = make_mixer(MIXER, config, PICTURE_MIX_SEED)
    params = mixer.draw(sample.images)
    mix = mixer.apply(sample.images, params)
    return sample, mix, {"true": true_share(mixer, params, sample.masks)}


def _metric(record: dict[str, Any], key: str) -> float | None:
    """One of `_METRICS` from a study record (fidelity ones from its
    `fidelity`; None where missing)."""
    if key == "top1":
        return record["final_top1"]
    if key == "seconds":
        return record["total_seconds"]
    return record["fidelity"].get(key)


def _aggregate(records: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Per method: `stats` of every metric over seeds, and the paired
    difference of top-1 to the baseline (seeds the baseline also ran)."""
    baseline = {r["seed"]: r["final_top1"] for r in records[BASELINE]}
    rows = {}
    for name, runs in records.items():
        row: dict[str, Any] = {"method": METHODS[name].method, "cell": runs[0]["cell"]}
        row["seeds"] = [r["seed"] for r in runs]
        for key in _METRICS:
            row[key] = stats(_metric(r, key) for r in runs)
        row["top1_vs_mce"] = stats(
            r["final_top1"] - baseline[r["seed"]]
            for r in runs
            if r["final_top1"] is not None and baseline.get(r["seed"]) is not None
        )
        rows[name] = row
    return rows


def run(
    config: StudyConfig | None = None,
    output_dir: str | Path = DEFAULT_OUTPUT,
    verbose: int = 2,
) -> dict[str, Any]:
    """Train every method with every seed, print the comparison table, write
    `results.json` and `mixes.png` to `output_dir`.

    Args:
        config: the runs' settings (None: `demo_config()`, the full demo;
            `demo_config(quick=True)` for tests).
        output_dir: where results go.
        verbose: 0: one line per run; 1: also the method headers; 2: also
            Keras `fit` progress (one line per epoch).

    Returns:
        The results dict written to `results.json`: `backend`, `config`,
        `seeds`, `mixer`, `total_seconds`, `methods` (per method name:
        `stats` (`{"mean", "std", "n", "values"}`) of `top1`,
        `top1_vs_mce`, `pearson`, `mae`, `mean_lam`, `mean_true_lam` and
        `seconds`) and `runs` (the study records of every run).

    Raises:
        TypeError: `config` is not a `StudyConfig`.
        ValueError: `verbose` not 0, 1 or 2.
    """
    from keras_sumix.viz import mix_grid

    start = time.perf_counter()
    config = demo_config() if config is None else config
    if not isinstance(config, StudyConfig):
        raise TypeError(
            f"`config` must be a StudyConfig (see `demo_config`). Received: "
            f"config={config!r}."
        )
    if verbose not in (0, 1, 2):
        raise ValueError(f"`verbose` must be 0, 1 or 2. Received: verbose={verbose!r}.")
    output_dir = Path(output_dir)
    data = StudyData(config)
    sample, mix, notes = _picture(config, data)
    records: dict[str, list[dict[str, Any]]] = {name: [] for name in METHODS}
    total = len(METHODS) * len(config.seeds)
    for seed in config.seeds:
        for name, cell in METHODS.items():
            if verbose:
                print(f"\n== {name}, seed {seed} ==", flush=True)
            spec = RunSpec("demo", name, cell.resolved(config), seed)
            fit_verbose = 2 if verbose == 2 else 0
            model, record = train_and_measure(spec, config, data, fit_verbose)
            records[name].append(record)
            if seed == config.seeds[0] and cell.method != "mce":
                key = "dist" if model.lambda_mode == "distance" else "ref"
                notes[key] = keras.ops.convert_to_numpy(
                    model.training_lam(sample.images, sample.labels, mix)
                )
            done = sum(map(len, records.values()))
            print(
                f"[{done}/{total}] {name}, seed {seed}: top-1 "
                f"{_percent(record['final_top1'])}, lam r "
                f"{_number(record['pearson'], '+.2f')} MAE "
                f"{_number(record['mae'], '.3f')}, {record['total_seconds']:.0f} s",
                flush=True,
            )
    keras.backend.clear_session()
    results = {
        "backend": keras.backend.backend(),
        "mixer": MIXER,
        "config": config.to_dict(),
        "seeds": list(config.seeds),
        "methods": _aggregate(records),
        "runs": [r for runs in records.values() for r in runs],
    }
    output_dir.mkdir(parents=True, exist_ok=True)
    path = mix_grid(
        sample.images, {"CutMix": mix}, output_dir / "mixes.png", {"CutMix": notes}
    )
    results["total_seconds"] = time.perf_counter() - start
    (output_dir / "results.json").write_text(
        json.dumps(results, indent=1, allow_nan=False)
    )
    print("\n" + format_table(results))
    print(f"wrote {output_dir / 'results.json'} and {path}")
    return results


def _number(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _cell(entry: dict[str, Any], spec: str, scale: float = 1.0) -> str:
    """`mean ± std` of a `stats` dict (the mean alone for one value)."""
    if entry["mean"] is None:
        return "n/a"
    text = format(scale * entry["mean"], spec)
    if entry["std"] is not None:
        text += " ± " + format(scale * entry["std"], spec.lstrip("+"))
    return text


_REQUIRED = ("backend", "config", "seeds", "methods")


def format_table(results: dict[str, Any]) -> str:
    """The demo's comparison table, as Markdown (mean ± std over seeds).

    Args:
        results: the dict `run` returns (its `results.json`).

    Returns:
        A settings line, then one table row per method: test top-1, its
        paired difference to MCE, lambda fidelity (Pearson r, MAE) and
        seconds per run.

    Raises:
        ValueError: `results` is not a demo results dict (e.g. one written
            before the demo reported seeds).
    """
    if not isinstance(results, dict):
        raise ValueError(
            "`results` must be the dict `study.demo.run` returns. "
            f"Received: {type(results).__name__}."
        )
    missing = [key for key in _REQUIRED if key not in results]
    methods = results.get("methods")
    if (
        missing
        or not isinstance(methods, dict)
        or not all(
            isinstance(row, dict) and isinstance(row.get("top1"), dict)
            for row in methods.values()
        )
    ):
        raise ValueError(
            "`results` must be the dict `study.demo.run` returns (keys "
            f"{list(_REQUIRED)}, per method `stats` of each metric). Received: "
            f"keys {sorted(results)}"
            + (f", missing {missing}." if missing else ", methods of another form.")
        )
    config, seeds = results["config"], results["seeds"]
    mixer = results.get("mixer", MIXER)
    total = results.get("total_seconds")
    lines = [
        f"backend: {results['backend']}; "
        f"{MIXER_LABELS.get(mixer, mixer)} alpha="
        f"{config['alpha']}; embedded occluded objects, {config['occluded_train']} "
        f"training / {config['occluded_test']} test images (object half-size "
        f"{config['min_scale']:g}-{config['max_scale']:g}, {config['clutter']} "
        f"distractors); small_cnn {tuple(config['widths'])}, {config['epochs']} "
        f"epochs, batch {config['batch_size']}; mean ± std over seeds "
        f"{', '.join(map(str, seeds))}"
        + (f"; {total / 60:.1f} min in all" if total is not None else ""),
        "",
        "| method | test top-1 % | top-1 vs MCE (paired), points | lam fidelity: "
        "Pearson r | lam MAE | s/run |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in methods.items():
        paired = "—" if name == BASELINE else _cell(row["top1_vs_mce"], "+.1f", 100)
        lines.append(
            f"| {name} | {_cell(row['top1'], '.1f', 100)} | {paired} | "
            f"{_cell(row['pearson'], '+.2f')} | {_cell(row['mae'], '.3f')} | "
            f"{_cell(row['seconds'], '.0f')} |"
        )
    return "\n".join(lines)


def _run_from_args(args: argparse.Namespace) -> int:
    config = demo_config(args.epochs, args.seeds, quick=args.quick)
    run(config, output_dir=args.output, verbose=0 if args.quiet else 2)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """The demo's command line (`python -m study.demo`, `make demo`).

    Args:
        argv: the arguments (None: `sys.argv[1:]`).

    Returns:
        The exit status: 0, or 2 for an invalid setting.
    """
    parser = argparse.ArgumentParser(
        prog="python -m study.demo",
        description="Train MCE and SUMix (authors' formula; "
        "variant='recommended') with CutMix on the study's embedded setting "
        "over 3 seeds (under 5 min); print test top-1 and lambda fidelity, "
        "mean and spread. Run it from the repository root.",
    )
    parser.add_argument("--quick", action="store_true", help="small run (< 1 min)")
    parser.add_argument(
        "--epochs",
        type=positive_int,
        default=None,
        help=f"epochs per run (default: {EPOCHS})",
    )
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=None,
        help=f"seeds of every method (default: {' '.join(map(str, SEEDS))}; "
        f"--quick: {' '.join(map(str, QUICK_SEEDS))})",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help="folder for results.json and mixes.png (default: outputs/demo in "
        "the repository)",
    )
    return run_command(parser, _run_from_args, argv)


if __name__ == "__main__":
    sys.exit(main())
