"""Seconds per training step and peak memory of ManifoldMix, DecoupleMix
and TransMix (MCE and SUMix) against a CutMix MCE step, on each backend.

Two networks, each with its own CutMix MCE baseline: ResNet-18 for CIFAR
(CutMix, ManifoldMix, DecoupleMix; SGD) and a small ViT (keras-hub's
`ViTBackbone` through `keras_sumix.models.deit_small`, at 32x32: patch 4,
4 layers, width 64, 4 heads, MLP 128, as the study's; CutMix and TransMix;
AdamW). The SUMix versions use `variant="recommended"` (the cheap step).
What each method adds to a CutMix MCE step (one forward and one backward
pass):

- ManifoldMix: nothing but the blend of one stage's feature maps (the
  network runs in two parts, up to the drawn stage and after it);
- DecoupleMix (`decouple_weight=0.1`): one more softmax per mixed class on
  the logits;
- TransMix (`label_lam="attention"`): reading the last block's attention
  of the mixed pass and pooling the mask to the patch grid;
- SUMix: its clean pass (forward only in the recommended variant).

One worker process per backend times its models round-robin, so that
machine noise hits them alike; a method whose code is not importable from
this checkout is reported as skipped. `--memory` adds each model's peak
memory: each in a process of its own, the peak resident set size
(`getrusage(RUSAGE_SELF).ru_maxrss`: the process's largest RSS, imports
and the framework's own memory included) after its warm-up and two steps,
and its growth over the RSS of the built model, both as ratios to the same
network's CutMix MCE.

    python benchmarks/method_step.py --memory     # batch 32
    python benchmarks/method_step.py --quick      # tiny CNN and ViT, seconds
    python benchmarks/method_step.py --variants cutmix_mce decouple_mce

Writes `benchmarks/results/method_step.json` and `.md`
(`method_step_quick.*` with `--quick`).
"""

from __future__ import annotations

import argparse
import importlib
from typing import NamedTuple

from _report import write_report
from step_overhead import (
    RESULTS,
    _subprocess,
    check_backends,
    memory_to_baselines,
    merge_argument,
    merge_reports,
    run_settings,
    step_arguments,
    time_round_robin,
    worker_mode,
)

#: The `decouple_weight` of the DecoupleMix entries (the reference's eta).
DECOUPLE_WEIGHT = 0.1
#: The networks, by key: their display names and the baseline each
#: method's ratio is taken to.
NETWORKS = {"cnn": "CNN", "vit": "small ViT"}
BASELINES = {"cnn": "cutmix_mce", "vit": "vit_cutmix_mce"}
#: The small ViT (`keras_sumix.models.deit_small` arguments), and the
#: one-layer toy of `--quick`.
VIT = {"num_layers": 4, "num_heads": 4, "hidden_dim": 64, "mlp_dim": 128}
VIT_TOY = {"num_layers": 1, "num_heads": 2, "hidden_dim": 16, "mlp_dim": 32}


class Variant(NamedTuple):
    """One timed model.

    Attributes:
        label: display name. network: a key of `NETWORKS`.
        sumix: `SUMixModel(variant="recommended")` or `MixupModel`.
        mixer: `"cutmix"` or `"manifoldmix"`.
        options: the model's other keyword arguments, `(name, value)` pairs.
        requires: `(module, name)` the variant needs from `keras_sumix`
            (None: nothing new); without it the variant is skipped.
    """

    label: str
    network: str
    sumix: bool = False
    mixer: str = "cutmix"
    options: tuple = ()
    requires: tuple[str, str] | None = None


_MANIFOLD = ("keras_sumix.layers", "ManifoldMix")
_DECOUPLE = ("keras_sumix.losses", "decoupled_regularizer")
_TRANSMIX = ("keras_sumix.models.transmix", "LABEL_LAMS")
_DECOUPLED = (("decouple_weight", DECOUPLE_WEIGHT),)
_ATTENTION = (("label_lam", "attention"),)

VARIANTS = {
    "cutmix_mce": Variant("MixupModel + CutMix (MCE)", "cnn"),
    "cutmix_sumix": Variant("SUMix + CutMix", "cnn", sumix=True),
    "manifold_mce": Variant(
        "MixupModel + ManifoldMix", "cnn", mixer="manifoldmix", requires=_MANIFOLD
    ),
    "manifold_sumix": Variant(
        "SUMix + ManifoldMix",
        "cnn",
        sumix=True,
        mixer="manifoldmix",
        requires=_MANIFOLD,
    ),
    "decouple_mce": Variant(
        "MixupModel + CutMix + DecoupleMix",
        "cnn",
        options=_DECOUPLED,
        requires=_DECOUPLE,
    ),
    "decouple_sumix": Variant(
        "SUMix + CutMix + DecoupleMix",
        "cnn",
        sumix=True,
        options=_DECOUPLED,
        requires=_DECOUPLE,
    ),
    "vit_cutmix_mce": Variant("MixupModel + CutMix (MCE)", "vit"),
    "transmix_mce": Variant(
        "MixupModel + CutMix + TransMix", "vit", options=_ATTENTION, requires=_TRANSMIX
    ),
    "transmix_sumix": Variant(
        "SUMix + CutMix + TransMix",
        "vit",
        sumix=True,
        options=_ATTENTION,
        requires=_TRANSMIX,
    ),
}


def unavailable(key: str) -> str | None:
    """Why variant `key` cannot be built from this checkout (what it needs
    is not importable), or None when it can."""
    requires = VARIANTS[key].requires
    if requires is None:
        return None
    module, name = requires
    try:
        found = hasattr(importlib.import_module(module), name)
    except ImportError:
        found = False
    return None if found else f"{module}.{name} is not importable"


def _backbone(args: argparse.Namespace, network: str):
    import keras_sumix as ks

    if network == "vit":
        shape = VIT_TOY if args.quick else VIT
        return ks.models.deit_small(image_size=32, patch_size=4, **shape)
    if args.quick:
        return ks.models.small_cnn((32, 32, 3), widths=(8, 16, 16))
    return ks.models.resnet18_cifar()


def _build(args: argparse.Namespace, key: str):
    """Variant `key`'s model, compiled (the ViT with AdamW, as its recipes;
    the CNN with SGD)."""
    import keras

    import keras_sumix as ks
    from keras_sumix.recipes import paper_alpha

    keras.utils.set_random_seed(0)
    variant = VARIANTS[key]
    transformer = variant.network == "vit"
    alpha = paper_alpha(variant.mixer, transformer=transformer)
    mixer = ks.layers.get_mixer(variant.mixer, alpha=alpha, seed=0)
    backbone = _backbone(args, variant.network)
    if variant.sumix:
        model = ks.SUMixModel(
            backbone, 100, mixer, variant="recommended", **dict(variant.options)
        )
    else:
        model = ks.MixupModel(backbone, 100, mixer, **dict(variant.options))
    if transformer:
        optimizer = keras.optimizers.AdamW(1e-3, weight_decay=0.05)
    else:
        optimizer = keras.optimizers.SGD(0.1, momentum=0.9)
    model.compile(optimizer=optimizer)
    return model


def _worker(args: argparse.Namespace) -> dict:
    """Time the importable variants on the current backend, round-robin
    within each network; the others are listed as skipped."""
    skipped = {key: unavailable(key) for key in args.variants}
    skipped = {key: why for key, why in skipped.items() if why}
    row = {"seconds_per_step": {}, "all_seconds": {}, "ratio_to_cutmix": {}}
    for network, baseline in BASELINES.items():
        keys = [
            key
            for key in args.variants
            if VARIANTS[key].network == network and key not in skipped
        ]
        if not keys:
            continue
        timed = time_round_robin(args, _build, keys, baseline, "ratio_to_cutmix")
        row["backend"] = timed["backend"]
        for name in row:
            if name != "backend":
                row[name].update(timed[name])
    return {**row, "skipped": skipped}


def _flags(args: argparse.Namespace) -> list[str]:
    flags = ["--batch", str(args.batch), "--steps", str(args.steps)]
    flags += ["--warmup", str(args.warmup), "--variants", *args.variants]
    return flags + (["--quick"] if args.quick else [])


def _run_backend(backend: str, args: argparse.Namespace) -> dict:
    row = _subprocess(backend, ["--worker", *_flags(args)], __file__)
    if args.memory:
        baselines = {
            key: BASELINES[VARIANTS[key].network] for key in row["seconds_per_step"]
        }
        row["memory"] = memory_to_baselines(backend, _flags(args), __file__, baselines)
    return row


def _cell(row: dict, key: str) -> list[str]:
    """A variant's step cells on one backend: seconds and ratio, or why it
    was skipped."""
    if key in row["skipped"]:
        return ["skipped", "-"]
    if key not in row["seconds_per_step"]:
        return ["not run", "-"]
    seconds, ratio = row["seconds_per_step"][key], row["ratio_to_cutmix"][key]
    return [f"{seconds:.3f}", f"{ratio:.2f}x"]


def _memory_cell(row: dict, key: str) -> str:
    memory = row.get("memory", {})
    if key not in memory:
        return "-"
    return (
        f"{memory[key]['peak_rss_mb']:.0f} "
        f"({memory['peak_rss_to_cutmix'][key]:.2f}x, step "
        f"{memory['step_peak_to_cutmix'][key]:.2f}x)"
    )


def _markdown(report: dict) -> str:
    backends = report["backends"]
    alphas = ", ".join(f"{name} {alpha:g}" for name, alpha in report["alphas"].items())
    lines = [
        f"Networks: {report['networks']['cnn']} (SGD) and {report['networks']['vit']} "
        f"(AdamW); batch {report['batch']}, 32x32, 100 classes; the paper's alphas "
        f"({alphas}); DecoupleMix weight {report['decouple_weight']}; SUMix "
        f'= `SUMixModel(variant="recommended")`; median of {report["steps"]} steps '
        f"after {report['warmup']} warm-up steps, round-robin per network; CPU, "
        f"{report['machine']['cpus']} cores, load average {report['load']:.1f} at "
        "the start. Ratios: to CutMix MCE on the same network.",
        "",
        "| method | network | "
        + " | ".join(f"{r['backend']} s/step | / CutMix MCE" for r in backends)
        + " |",
        "|---|---" + "|--:|--:" * len(backends) + "|",
    ]
    for key in report["variants"]:
        variant = VARIANTS[key]
        cells = [variant.label, NETWORKS[variant.network]]
        for row in backends:
            cells += _cell(row, key)
        lines.append("| " + " | ".join(cells) + " |")
    skipped = {why for row in backends for why in row["skipped"].values()}
    if skipped:
        lines += ["", "Skipped: " + "; ".join(sorted(skipped)) + "."]
    if any("memory" in row for row in backends):
        lines += [
            "",
            "| method | network | "
            + " | ".join(
                f"{r['backend']} peak RSS MiB (/ CutMix MCE)" for r in backends
            )
            + " |",
            "|---|---" + "|---" * len(backends) + "|",
        ]
        for key in report["variants"]:
            variant = VARIANTS[key]
            cells = [variant.label, NETWORKS[variant.network]]
            cells += [_memory_cell(row, key) for row in backends]
            lines.append("| " + " | ".join(cells) + " |")
        lines += [
            "",
            "Memory: each model in a process of its own; peak RSS = "
            "`getrusage(RUSAGE_SELF).ru_maxrss` after the warm-up and two steps "
            "(the whole process: imports, framework, compilation); step = its "
            "growth over the RSS of the built model.",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict | None:
    """Run the benchmark (or, with `--worker`, one backend's part of it)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    step_arguments(parser, memory="also peak memory")
    merge_argument(parser)
    parser.add_argument(
        "--variants",
        nargs="+",
        choices=tuple(VARIANTS),
        default=list(VARIANTS),
        help="the models to time (default: all; the CutMix MCE of each "
        "network they use is added)",
    )
    args = parser.parse_args(argv)
    if args.steps is None:
        args.steps = 3 if args.quick else 8
    # Each network timed comes with its CutMix MCE, the ratios' reference.
    networks = {VARIANTS[key].network for key in args.variants}
    args.variants = list(
        dict.fromkeys(
            [BASELINES[n] for n in NETWORKS if n in networks] + list(args.variants)
        )
    )
    if worker_mode(args, _worker, _build):
        return None
    if args.merge:
        keys = ("networks", "batch", "steps", "warmup", "quick", "decouple_weight")
        return merge_reports(args.merge, args.output, _markdown, keys)
    check_backends(parser, args.backends)
    from keras_sumix.recipes import paper_alpha

    report = {
        "networks": {
            "cnn": "small CNN" if args.quick else "resnet18_cifar",
            "vit": "toy ViT (1 layer, width 16)"
            if args.quick
            else "small ViT (4 layers, width 64, patch 4)",
        },
        "alphas": {
            f"{NETWORKS[v.network]} {v.mixer}": paper_alpha(
                v.mixer, transformer=v.network == "vit"
            )
            for key, v in VARIANTS.items()
            if key in args.variants and not unavailable(key)
        },
        "decouple_weight": DECOUPLE_WEIGHT,
        **run_settings(args),
        "variants": {key: VARIANTS[key].label for key in args.variants},
        "backends": [_run_backend(b, args) for b in args.backends],
    }
    name = "method_step_quick" if args.quick else "method_step"
    print(write_report(report, args.output or RESULTS / f"{name}.json", _markdown))
    return report


if __name__ == "__main__":
    main()
