"""Seconds per training step of PuzzleMix (MCE and SUMix) against CutMix MCE,
on each backend.

Same backbone, batch and optimizer; one worker process per backend, the
models timed round-robin inside it so that machine noise hits them alike.
PuzzleMix's step adds, to the mixed pass, the saliency (one forward and
backward pass of the clean batch in inference mode) and the labelling and
transport solved on device; SUMix adds its clean pass.
`SUMixModel(saliency_pass="raw")` takes the saliency from that clean pass
instead (the input gradient of its loss, in training mode): one forward pass
fewer, the input backward still there. Goals (the issue's): PuzzleMix MCE
<= 1.6x CutMix MCE, PuzzleMix + SUMix <= 2.3x (either saliency pass).

    python benchmarks/puzzle_step.py            # ResNet-18 (CIFAR), batch 32
    python benchmarks/puzzle_step.py --quick    # tiny CNN, seconds

Writes `benchmarks/results/puzzle_step.json` and `.md`.
"""

from __future__ import annotations

import argparse

from _report import write_report
from step_overhead import (
    RESULTS,
    _backbone,
    _subprocess,
    check_backends,
    run_settings,
    step_arguments,
    time_round_robin,
    worker_mode,
)

GOALS = {"puzzle_mce": 1.6, "puzzle_sumix": 2.3, "puzzle_sumix_raw": 2.3}
VARIANTS = {
    "cutmix_mce": "MixupModel + CutMix (MCE)",
    "puzzle_mce": "MixupModel + PuzzleMix (MCE)",
    "puzzle_sumix": "SUMixModel + PuzzleMix",
    "puzzle_sumix_raw": 'SUMixModel(saliency_pass="raw") + PuzzleMix',
}


def _build(args: argparse.Namespace, key: str):
    import keras

    import keras_sumix as ks

    keras.utils.set_random_seed(0)
    # alpha 1.0 for both (the paper's PuzzleMix setting; alpha does not
    # change the cost of a step).
    mixer = ks.layers.get_mixer(
        "cutmix" if key.startswith("cutmix") else "puzzlemix", alpha=1.0, seed=0
    )
    if "sumix" in key:
        saliency_pass = "raw" if key.endswith("_raw") else "separate"
        model = ks.SUMixModel(_backbone(args), 100, mixer, saliency_pass=saliency_pass)
    else:
        model = ks.MixupModel(_backbone(args), 100, mixer)
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
    return model


def _worker(args: argparse.Namespace) -> dict:
    """Time the variants on the current backend, round-robin; return a dict."""
    return time_round_robin(args, _build, VARIANTS, "cutmix_mce", "ratio_to_cutmix")


def _markdown(report: dict) -> str:
    lines = [
        f"Backbone: {report['backbone']}, batch {report['batch']}, 32x32, SGD; "
        f"PuzzleMix with its CIFAR defaults, CutMix(alpha=1.0); median of "
        f"{report['steps']} steps after {report['warmup']} warm-up steps; CPU, "
        f"{report['machine']['cpus']} cores, load average {report['load']:.1f} at "
        "the start.",
        "",
    ]
    header = ["backend", f"{VARIANTS['cutmix_mce']} s/step"]
    for key in GOALS:
        header += [f"{VARIANTS[key]} s/step", f"/ CutMix (goal <= {GOALS[key]})"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in report["backends"]:
        s, r = row["seconds_per_step"], row["ratio_to_cutmix"]
        cells = [row["backend"], f"{s['cutmix_mce']:.3f}"]
        for key, goal in GOALS.items():
            verdict = "PASS" if r[key] <= goal else "FAIL"
            cells += [f"{s[key]:.3f}", f"{r[key]:.2f}x {verdict}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict | None:
    """Run the benchmark (or, with `--worker`, one backend's part of it)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    step_arguments(parser)
    args = parser.parse_args(argv)
    args.backbone = "resnet18_cifar"
    if args.steps is None:
        args.steps = 3 if args.quick else 8
    if worker_mode(args, _worker):
        return None
    check_backends(parser, args.backends)
    flags = ["--worker", "--batch", str(args.batch), "--steps", str(args.steps)]
    flags += ["--warmup", str(args.warmup)] + (["--quick"] if args.quick else [])
    report = {
        "backbone": "tiny CNN" if args.quick else args.backbone,
        **run_settings(args),
        "goals": GOALS,
        "variants": VARIANTS,
        "backends": [_subprocess(b, flags, __file__) for b in args.backends],
    }
    name = "puzzle_step_quick" if args.quick else "puzzle_step"
    print(write_report(report, args.output or RESULTS / f"{name}.json", _markdown))
    return report


if __name__ == "__main__":
    main()
