"""Seconds per training step and peak memory of AutoMix (MCE and SUMix)
against CutMix MCE, on each backend.

Same backbone, batch and optimizer; one worker process per backend, the
models timed round-robin inside it so that machine noise hits them alike.
A CutMix MCE step is one forward and one backward pass. An AutoMix step
runs the momentum encoder up to its feature map on the clean batch (forward
only), the whole momentum encoder on the mix block's mixed batch (forward,
and backward to the images), and the network on the clean and on the mixed
batch (forward and backward each); SUMix reuses that clean pass as its raw
pass, so it adds the uncertainty head only. The mix block itself (attention
over the 8x8 stage-3 map) is small. `--memory` adds each variant's peak
memory, each model in a process of its own (as `step_overhead.py`).

    python benchmarks/automix_step.py --memory   # ResNet-18 (CIFAR), batch 32
    python benchmarks/automix_step.py --quick    # small CNN, seconds
    python benchmarks/automix_step.py --memory --before old.json  # beside an
                                                 # earlier report's figures

Writes `benchmarks/results/automix_step.json` and `.md`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from _report import write_report
from step_overhead import (
    RESULTS,
    _subprocess,
    check_backends,
    memory_to_baselines,
    run_settings,
    step_arguments,
    time_round_robin,
    worker_mode,
)

VARIANTS = {
    "cutmix_mce": "MixupModel + CutMix (MCE)",
    "automix_mce": "MixupModel + AutoMix (MCE)",
    "automix_sumix": 'SUMixModel(variant="recommended") + AutoMix',
}


def _build(args: argparse.Namespace, key: str):
    import keras

    import keras_sumix as ks

    keras.utils.set_random_seed(0)
    if args.quick:
        backbone = ks.models.small_cnn((32, 32, 3), widths=(8, 16, 16))
        feature_layer = "stage2"  # 8x8, as ResNet-18's stage 3
    else:
        backbone, feature_layer = ks.models.resnet18_cifar(), "stage3"
    if key == "cutmix_mce":
        mixer = ks.layers.CutMix(alpha=0.2, seed=0)
    else:
        mixer = ks.layers.AutoMix(feature_layer=feature_layer, seed=0)
    if key == "automix_sumix":
        model = ks.SUMixModel(backbone, 100, mixer, variant="recommended")
    else:
        model = ks.MixupModel(backbone, 100, mixer)
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
    return model


def _worker(args: argparse.Namespace) -> dict:
    """Time the variants on the current backend, round-robin; return a dict."""
    return time_round_robin(args, _build, VARIANTS, "cutmix_mce", "ratio_to_cutmix")


def _run_backend(backend: str, args: argparse.Namespace) -> dict:
    flags = ["--batch", str(args.batch), "--steps", str(args.steps)]
    flags += ["--warmup", str(args.warmup)] + (["--quick"] if args.quick else [])
    row = _subprocess(backend, ["--worker", *flags], __file__)
    if args.memory:
        baselines = dict.fromkeys(VARIANTS, "cutmix_mce")
        row["memory"] = memory_to_baselines(backend, flags, __file__, baselines)
    return row


def _markdown(report: dict) -> str:
    lines = _tables(report)
    before = report.get("before")
    if before:
        lines += ["", f"Before ({before['label']}, {before['date']}):", ""]
        lines += _tables({**report, "backends": before["backends"]})[2:]
    return "\n".join(lines) + "\n"


def _before(path: Path) -> dict:
    """The figures of an earlier report (`--before`), without its own
    `before`, labelled by its `label` (else "earlier code") and date."""
    earlier = json.loads(Path(path).read_text())
    return {
        "label": earlier.get("label", "earlier code"),
        "date": earlier["date"],
        "backends": earlier["backends"],
    }


def _tables(report: dict) -> list[str]:
    lines = [
        f"Backbone: {report['backbone']}, batch {report['batch']}, 32x32, SGD; "
        "AutoMix with its defaults (8x8 feature map), CutMix(alpha=0.2); median "
        f"of {report['steps']} steps after {report['warmup']} warm-up steps; "
        f"CPU, {report['machine']['cpus']} cores, load average "
        f"{report['load']:.1f} at the start.",
        "",
        "| backend | "
        + " | ".join(f"{name} s/step" for name in VARIANTS.values())
        + " | AutoMix MCE / CutMix | AutoMix + SUMix / CutMix |",
        "|" + "---|" * (len(VARIANTS) + 3),
    ]
    for row in report["backends"]:
        s, r = row["seconds_per_step"], row["ratio_to_cutmix"]
        cells = [row["backend"], *(f"{s[key]:.3f}" for key in VARIANTS)]
        cells += [f"{r['automix_mce']:.2f}x", f"{r['automix_sumix']:.2f}x"]
        lines.append("| " + " | ".join(cells) + " |")
    if any("memory" in row for row in report["backends"]):
        lines += [
            "",
            "| backend | CutMix peak RSS MiB | AutoMix MCE peak RSS (/ CutMix) | "
            "AutoMix + SUMix peak RSS (/ CutMix) | step growth / CutMix (MCE, "
            "SUMix) |",
            "|---|---|---|---|---|",
        ]
        for row in report["backends"]:
            m = row.get("memory")
            if not m:
                continue
            peak, grow = m["peak_rss_to_cutmix"], m["step_peak_to_cutmix"]
            lines.append(
                f"| {row['backend']} | {m['cutmix_mce']['peak_rss_mb']:.0f} | "
                f"{m['automix_mce']['peak_rss_mb']:.0f} "
                f"({peak['automix_mce']:.2f}x) | "
                f"{m['automix_sumix']['peak_rss_mb']:.0f} "
                f"({peak['automix_sumix']:.2f}x) | "
                f"{grow['automix_mce']:.2f}x, {grow['automix_sumix']:.2f}x |"
            )
        lines += [
            "",
            "Memory: each model in a process of its own; step growth = peak RSS "
            "through the warm-up and two steps (compilation included) minus the "
            "RSS of the built model (which holds the momentum copy already).",
        ]
    return lines


def main(argv: list[str] | None = None) -> dict | None:
    """Run the benchmark (or, with `--worker`, one backend's part of it)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    step_arguments(parser, memory="also peak memory")
    parser.add_argument(
        "--before",
        type=Path,
        default=None,
        help="an earlier report (.json) to show beside, e.g. before a change",
    )
    parser.add_argument(
        "--label", default=None, help="what this run measures (e.g. the change)"
    )
    args = parser.parse_args(argv)
    if args.steps is None:
        args.steps = 3 if args.quick else 8
    if worker_mode(args, _worker, _build):
        return None
    check_backends(parser, args.backends)
    report = {
        "backbone": "small CNN" if args.quick else "resnet18_cifar",
        **run_settings(args),
        "variants": VARIANTS,
        "backends": [_run_backend(b, args) for b in args.backends],
    }
    if args.label:
        report["label"] = args.label
    if args.before:
        report["before"] = _before(args.before)
    name = "automix_step_quick" if args.quick else "automix_step"
    print(write_report(report, args.output or RESULTS / f"{name}.json", _markdown))
    return report


if __name__ == "__main__":
    main()
