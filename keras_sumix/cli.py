"""The `keras-sumix` command: parsing only.

Each sub-command is two steps. Its `prepare` function turns the parsed
arguments into a ready call of the library, through the library's own
validation at its boundary (`TrainConfig.validate`, the mixers' arguments,
`load_run_config`); the call then does the work. What can go wrong is
sorted by where it happens:

- a ValueError or TypeError while preparing (an invalid setting), or, at any
  time, an `ENVIRONMENT_ERRORS` error or a missing optional package (a file
  or folder that is not there, a run folder in the way, a download that
  failed): a user error, its message alone on one line, exit code 2;
- a diverged training run (NaN/inf loss): its message, exit code 1;
- anything else, a bug: its traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

#: What only the user's machine or setting can cause, whenever it is raised:
#: a missing file or folder, a run folder in the way, a download that failed.
#: (A missing optional package too: `_is_user_error`.)
ENVIRONMENT_ERRORS = (FileNotFoundError, FileExistsError, ConnectionError)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


# --------------------------------------------------------------------------
# show
# --------------------------------------------------------------------------


def _prepare_show(args: argparse.Namespace) -> Callable[[], int]:
    from keras_sumix.data import occluded_objects
    from keras_sumix.layers import get_mixer, registry

    learned = [n for n in args.mixers if registry.mixer_class(n).needs_features]
    if learned:
        raise ValueError(
            f"{', '.join(learned)} is a learned mixer: it mixes by a trained "
            "model's features (the documentation's Layers page, AutoMix)."
        )
    hidden = [n for n in args.mixers if registry.mixer_class(n).mixes_features]
    if hidden:
        raise ValueError(
            f"{', '.join(hidden)} mixes a network's hidden feature maps, not "
            f"images: train with it (`keras-sumix train --mixer {hidden[0]}`)."
        )
    data = occluded_objects(args.batch, image_size=args.size, seed=args.seed)
    mixers = {}
    for offset, name in enumerate(args.mixers):
        kwargs = {"seed": args.seed + offset}
        if args.alpha is not None:
            kwargs["alpha"] = args.alpha
        mixer = get_mixer(name, **kwargs)
        mixers[type(mixer).__name__] = mixer
    return lambda: _show(data.images, mixers, args.output)


def _show(images: Any, mixers: dict[str, Any], output: Path) -> int:
    import keras

    from keras_sumix.viz import mix_grid

    results = {name: mixer.mix(images) for name, mixer in mixers.items()}
    path = mix_grid(images, results, output)
    print(f"{'mixer':<12} lam per sample")
    for name, result in results.items():
        lam = keras.ops.convert_to_numpy(result.lam)
        print(f"{name:<12} " + " ".join(f"{v:.2f}" for v in lam))
    print(f"wrote {path}")
    return 0


def _add_show(commands: Any) -> None:
    from keras_sumix.layers import registry

    show = commands.add_parser(
        "show", help="PNG grid of mixers applied to a batch, with each lam."
    )
    # A learned mixer (AutoMix) mixes by a trained model's features: not here.
    shown = registry.names(needs_features=False, mixes_features=False)
    show.add_argument(
        "mixers",
        nargs="*",
        default=shown,
        help=f"mixer names: {', '.join(shown)} (default: all; AutoMix, a "
        "learned mixer, needs its trained model; ManifoldMix mixes hidden "
        "features)",
    )
    show.add_argument("--alpha", type=float, default=None, help="Beta concentration")
    show.add_argument(
        "--batch", type=_positive_int, default=8, help="images in the batch"
    )
    show.add_argument(
        "--size", type=_positive_int, default=32, help="image side, in pixels"
    )
    show.add_argument("--seed", type=int, default=0, help="seed of data and mixers")
    show.add_argument(
        "--output",
        type=Path,
        default=Path("outputs/show.png"),
        help="PNG file to write (default: outputs/show.png)",
    )
    show.set_defaults(prepare=_prepare_show)


# --------------------------------------------------------------------------
# train
# --------------------------------------------------------------------------


def _given(args: argparse.Namespace, names: Sequence[str]) -> list[str]:
    """The options among `names` given on the command line, as typed."""
    return [f"--{n.replace('_', '-')}" for n in names if getattr(args, n) is not None]


def _prepare_train(args: argparse.Namespace) -> Callable[[], int]:
    from keras_sumix.options import NAMES
    from keras_sumix.training import TrainConfig, train

    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)}
    if args.data_dir and not (args.dataset or args.recipe):
        overrides["dataset"] = "folder"  # a folder of the user's own images
    if args.recipe:
        config = TrainConfig.from_recipe(args.recipe, **overrides)
    else:
        config = TrainConfig(**{k: v for k, v in overrides.items() if v is not None})
    config.validate()
    # Refuse options the run would ignore.
    ignored = [] if config.sumix else _given(args, ("variant", *NAMES))
    if ignored:
        raise ValueError(
            f"{', '.join(ignored)} set SUMixModel options and do not apply "
            "to --no-sumix (the MixupModel baseline)."
        )
    if config.optimizer != "sgd" and args.momentum is not None:
        raise ValueError(
            f"--momentum applies to --optimizer sgd only; this run uses "
            f"{config.optimizer!r}."
        )

    def run() -> int:
        verbose = 0 if args.quiet else "auto"
        results = train(config, verbose=verbose, overwrite=args.overwrite)
        top1 = results["test_top1"]
        print(f"test top-1 {100 * top1:.2f}% -> {config.output_dir}/results.json")
        return 0

    return run


def _flag_arguments(field: dataclasses.Field, kind: Any) -> dict[str, Any]:
    """`add_argument` keywords of the flag of a `TrainConfig` field: its
    help and choices from the field's metadata, its type from the field's
    (a bool: `--name` / `--no-name`); None when not given."""
    metadata = field.metadata
    help_text = metadata["help"]
    if field.default is not None:
        help_text += f" (default: {field.default})"
    arguments: dict[str, Any] = {"dest": field.name, "default": None}
    if kind is bool:
        arguments["action"] = argparse.BooleanOptionalAction
    else:
        arguments["type"] = metadata.get("type", kind)
        if metadata.get("choices"):
            arguments["choices"] = metadata["choices"]
    return {**arguments, "help": help_text}


def _add_train(commands: Any) -> None:
    from keras_sumix.options import NAMES
    from keras_sumix.recipes import RECIPES
    from keras_sumix.training import TrainConfig

    run = commands.add_parser(
        "train",
        help="train MixupModel or SUMixModel on the embedded data, a paper "
        "dataset or your own images (--data-dir FOLDER); rerun the same "
        "command to resume an interrupted run.",
    )
    run.add_argument(
        "--recipe",
        choices=sorted(RECIPES),
        help="a paper recipe (its settings; the options below override them)",
    )
    sumix = run.add_argument_group(
        "SUMix options",
        "SUMixModel's options (not given: the variant's value, else the default)",
    )
    # One flag per field of TrainConfig (the SUMix options in their group).
    types = typing.get_type_hints(TrainConfig)
    for field in dataclasses.fields(TrainConfig):
        kind = types[field.name]
        kind = next(t for t in typing.get_args(kind) or (kind,) if t is not type(None))
        (sumix if field.name in NAMES else run).add_argument(
            "--" + field.name.replace("_", "-"),
            *field.metadata.get("aliases", ()),
            **_flag_arguments(field, kind),
        )
    run.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run already in --output-dir",
    )
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.set_defaults(prepare=_prepare_train)


# --------------------------------------------------------------------------
# evaluate
# --------------------------------------------------------------------------


def _prepare_evaluate(args: argparse.Namespace) -> Callable[[], int]:
    from keras_sumix.training import load_run_config

    load_run_config(args.run_dir)
    return lambda: _evaluate(args)


def _evaluate(args: argparse.Namespace) -> int:
    from keras_sumix.training import evaluate_run

    results = evaluate_run(
        args.run_dir, args.limit, args.cifar100_c, batch_size=args.batch_size
    )
    occlusion = results["occlusion"]["top1"]
    corruption = results["corruption"]
    print(f"images        {results['num_images']} ({results['backend']})")
    print(f"clean top-1   {100 * results['clean_top1']:.2f}%")
    print(
        "occlusion     "
        + " ".join(f"{float(r):.1f}:{100 * a:.0f}%" for r, a in occlusion.items())
    )
    print(f"FGSM 8/255    error {100 * results['fgsm']['error']:.2f}%")
    print(
        f"corruption    mean top-1 {100 * corruption['mean_top1']:.2f}% "
        f"({corruption['source']})"
    )
    fidelity = results.get("lam_fidelity")
    if fidelity and "skipped" in fidelity:
        print(f"lam fidelity  skipped: {fidelity['skipped']}")
    elif fidelity:
        pearson = fidelity["pearson"]
        shown = "n/a" if pearson is None else f"{pearson:.3f}"
        print(f"lam fidelity  pearson {shown}, mae {fidelity['mae']:.3f}")
    print(f"wrote {Path(args.run_dir) / 'evaluation.json'}")
    return 0


def _add_evaluate(commands: Any) -> None:
    evaluate = commands.add_parser(
        "evaluate",
        help="occlusion, FGSM (8/255), corruption and lambda-fidelity evaluation "
        "of a training run; writes RUN_DIR/evaluation.json.",
    )
    evaluate.add_argument("run_dir", help="the --output-dir of `keras-sumix train`")
    evaluate.add_argument(
        "--limit", type=_positive_int, default=None, help="first N test images only"
    )
    evaluate.add_argument(
        "--cifar100-c",
        dest="cifar100_c",
        default=None,
        help="folder of the official CIFAR-100-C .npy files (default: the "
        "generated corruption subset)",
    )
    evaluate.add_argument(
        "--batch-size",
        dest="batch_size",
        type=_positive_int,
        default=128,
        help="evaluation batch size (default 128)",
    )
    evaluate.set_defaults(prepare=_prepare_evaluate)


# --------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `keras-sumix` (one sub-command per task; each
    sets `prepare`: parsed arguments -> a ready call, see the module)."""
    from keras_sumix import __version__

    parser = argparse.ArgumentParser(
        prog="keras-sumix",
        description="Mixup layers and SUMix for Keras 3 (backend: KERAS_BACKEND).",
    )
    parser.add_argument(
        "--version", action="version", version=f"keras-sumix {__version__}"
    )
    commands = parser.add_subparsers(
        dest="command", required=True, help="the task (COMMAND --help: its options)"
    )
    _add_show(commands)
    _add_train(commands)
    _add_evaluate(commands)
    from keras_sumix.models.pretrained import add_command as add_pretrain

    add_pretrain(commands)  # `keras-sumix pretrain` (its logic lives there)
    return parser


def _is_user_error(error: BaseException, preparing: bool) -> bool:
    """Whether `error` is the user's to fix: any ValueError or TypeError
    while preparing; at any time an `ENVIRONMENT_ERRORS` error, or the
    library's own ImportError for an optional package that is not installed
    (raised from the failed import; a broken import inside the library is
    a bug)."""
    if isinstance(error, ENVIRONMENT_ERRORS):
        return True
    if isinstance(error, ImportError):
        return isinstance(error.__cause__, ImportError)
    return preparing and isinstance(error, (ValueError, TypeError))


def _fail(command: str, error: BaseException, code: int) -> int:
    print(f"keras-sumix {command}: error: {error}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse, prepare (validate), run; errors as the module
    says (user errors exit 2 with one line, bugs keep their traceback)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        run = args.prepare(args)
    except Exception as error:
        if not _is_user_error(error, preparing=True):
            raise
        return _fail(args.command, error, 2)
    try:
        return run()
    except FloatingPointError as error:  # training.TrainingDiverged
        return _fail(args.command, error, 1)
    except Exception as error:
        if not _is_user_error(error, preparing=False):
            raise
        return _fail(args.command, error, 2)


if __name__ == "__main__":
    sys.exit(main())
