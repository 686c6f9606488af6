"""The `keras-sumix` command."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _mixers(names: Sequence[str], alpha: float | None, seed: int):
    from keras_sumix.layers import get_mixer

    out = {}
    for offset, name in enumerate(names):
        kwargs = {"seed": seed + offset}
        if alpha is not None:
            kwargs["alpha"] = alpha
        mixer = get_mixer(name, **kwargs)
        out[type(mixer).__name__] = mixer
    return out


def _show(args: argparse.Namespace) -> int:
    from keras_sumix.data import occluded_objects
    from keras_sumix.viz import mix_grid

    data = occluded_objects(args.batch, image_size=args.size, seed=args.seed)
    mixers = _mixers(args.mixers, args.alpha, args.seed)
    results = {name: mixer.mix(data.images) for name, mixer in mixers.items()}
    path = mix_grid(data.images, results, args.output)
    print(f"{'mixer':<12} lam per sample")
    for name, result in results.items():
        import keras

        lam = keras.ops.convert_to_numpy(result.lam)
        print(f"{name:<12} " + " ".join(f"{v:.2f}" for v in lam))
    print(f"wrote {path}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from keras_sumix import demo

    config = demo.QUICK if args.quick else demo.DemoConfig()
    if args.epochs is not None:
        config = dataclasses.replace(config, epochs=args.epochs)
    demo.run(config, output_dir=args.output, verbose=0 if args.quiet else 2)
    return 0


def _train(args: argparse.Namespace) -> int:
    from keras_sumix.training import TrainConfig, train

    fields = {f.name for f in dataclasses.fields(TrainConfig) if f.name in vars(args)}
    overrides = {name: getattr(args, name) for name in fields}
    if args.recipe:
        config = TrainConfig.from_recipe(args.recipe, **overrides)
    else:
        defaults = {k: v for k, v in overrides.items() if v is not None}
        config = TrainConfig(**defaults)
    results = train(config, verbose=0 if args.quiet else "auto")
    top1 = results["test_top1"]
    print(f"test top-1 {100 * top1:.2f}% -> {config.output_dir}/results.json")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `keras-sumix` (one sub-command per task)."""
    parser = argparse.ArgumentParser(
        prog="keras-sumix",
        description="Mixup layers and SUMix for Keras 3 (backend: KERAS_BACKEND).",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    show = commands.add_parser(
        "show", help="PNG grid of mixers applied to a batch, with each lam."
    )
    show.add_argument(
        "mixers",
        nargs="*",
        default=["mixup", "cutmix", "fmix", "saliencymix", "resizemix"],
        help="mixer names: mixup, cutmix, fmix, saliencymix, resizemix (default: all)",
    )
    show.add_argument("--alpha", type=float, default=None, help="Beta concentration")
    show.add_argument("--batch", type=_positive_int, default=8)
    show.add_argument("--size", type=_positive_int, default=32, help="image side")
    show.add_argument("--seed", type=int, default=0)
    show.add_argument("--output", type=Path, default=Path("outputs/show.png"))
    show.set_defaults(run=_show)

    from keras_sumix.layers import MIXERS
    from keras_sumix.losses import LAMBDA_MODES, REDUCTIONS, REGULARIZERS
    from keras_sumix.recipes import RECIPES
    from keras_sumix.training import BACKBONES, DATASETS, PIPELINES

    run = commands.add_parser(
        "train",
        help="train MixupModel or SUMixModel; rerun the same command to resume.",
    )
    run.add_argument("--recipe", choices=sorted(RECIPES), help="a paper recipe")
    run.add_argument("--dataset", choices=DATASETS)
    run.add_argument("--data-dir", dest="data_dir")
    run.add_argument("--backbone", choices=BACKBONES)
    run.add_argument("--weights", help="local .weights.h5 file for the backbone")
    run.add_argument("--mixer", choices=sorted(MIXERS))
    run.add_argument("--alpha", type=float, help="Beta concentration")
    run.add_argument(
        "--sumix",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="SUMixModel (default) or the MixupModel baseline (--no-sumix)",
    )
    run.add_argument("--gamma", type=float)
    run.add_argument("--lambda-mode", dest="lambda_mode", choices=LAMBDA_MODES)
    run.add_argument("--regularizer", choices=REGULARIZERS)
    run.add_argument("--reduction", choices=REDUCTIONS)
    run.add_argument("--semantic-scale", dest="semantic_scale", type=float)
    run.add_argument("--distance-scale", dest="distance_scale", type=float)
    run.add_argument("--pipeline", choices=PIPELINES)
    run.add_argument("--image-size", dest="image_size", type=_positive_int)
    run.add_argument("--epochs", type=_positive_int)
    run.add_argument("--batch-size", dest="batch_size", type=_positive_int)
    run.add_argument("--learning-rate", "--lr", dest="learning_rate", type=float)
    run.add_argument("--momentum", type=float)
    run.add_argument("--weight-decay", dest="weight_decay", type=float)
    run.add_argument("--seed", type=int)
    run.add_argument("--limit", type=_positive_int, help="first N examples only")
    run.add_argument("--output-dir", dest="output_dir", default="runs/run")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.set_defaults(run=_train)

    demo = commands.add_parser(
        "demo",
        help="train MCE and SUMix (both lambda modes) with CutMix on the embedded "
        "dataset; print test top-1 and lambda fidelity.",
    )
    demo.add_argument("--quick", action="store_true", help="small run (< 2 min)")
    demo.add_argument("--epochs", type=_positive_int, default=None)
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.add_argument("--output", type=Path, default=Path("outputs/demo"))
    demo.set_defaults(run=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; invalid arguments give one clear line and exit code 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, TypeError, FileNotFoundError) as error:
        print(f"keras-sumix {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
