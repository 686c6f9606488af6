"""The `keras-sumix` command."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


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
    from keras_sumix.layers import registry
    from keras_sumix.viz import mix_grid

    learned = [n for n in args.mixers if registry.mixer_class(n).needs_features]
    if learned:
        raise SystemExit(
            f"keras-sumix show: {', '.join(learned)} is a learned mixer: it mixes "
            "by a trained model's features (see docs/layers.md, AutoMix)."
        )
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

    config = demo.demo_config(args.epochs, args.seeds, quick=args.quick)
    demo.run(config, output_dir=args.output, verbose=0 if args.quiet else 2)
    return 0


def _study(args: argparse.Namespace) -> int:
    from keras_sumix.study.command import run_from_args

    return run_from_args(args, "keras-sumix study")


def _given(args: argparse.Namespace, names: Sequence[str]) -> list[str]:
    """The options among `names` given on the command line, as typed."""
    return [f"--{n.replace('_', '-')}" for n in names if getattr(args, n) is not None]


def _check_applicable(args: argparse.Namespace, config: Any) -> None:
    """Refuse options the run would ignore (ValueError naming them)."""
    from keras_sumix.training import _SUMIX_OPTIONS

    if not config.sumix:
        ignored = _given(args, ("variant", *_SUMIX_OPTIONS))
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


def _train(args: argparse.Namespace) -> int:
    from keras_sumix.training import TrainConfig, train

    fields = {f.name for f in dataclasses.fields(TrainConfig) if f.name in vars(args)}
    overrides = {name: getattr(args, name) for name in fields}
    if args.data_dir and not (args.dataset or args.recipe):
        overrides["dataset"] = "folder"  # a folder of the user's own images
    if args.recipe:
        config = TrainConfig.from_recipe(args.recipe, **overrides)
    else:
        defaults = {k: v for k, v in overrides.items() if v is not None}
        config = TrainConfig(**defaults)
    _check_applicable(args, config)
    results = train(
        config, verbose=0 if args.quiet else "auto", overwrite=args.overwrite
    )
    top1 = results["test_top1"]
    print(f"test top-1 {100 * top1:.2f}% -> {config.output_dir}/results.json")
    return 0


#: The FGSM budget of `evaluate_run` ([0, 1] pixel space).
FGSM_EPSILON = 8 / 255
#: Mixers whose kept pixels `lam_fidelity` can read.


def _plain(value: Any) -> Any:
    """Plain-JSON form: string keys, floats, lists; nan/inf -> None."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _normalizing_model(model: Any, input_shape: tuple, stats: Any) -> Any:
    """`model` preceded by the run's input normalisation, so that it takes
    images in [0, 1] (the model itself when the pipeline does not
    normalise)."""
    import keras

    if stats is None:
        return model
    mean, std = stats
    inputs = keras.Input(tuple(input_shape), name="images")
    x = keras.layers.Normalization(
        axis=-1, mean=list(mean), variance=[s * s for s in std], name="normalize"
    )(inputs)
    return keras.Model(inputs, model(x), name=f"{model.name}_on_unit_images")


def _test_images(config: Any, limit: int | None) -> tuple[Any, Any]:
    """The run's test images, as its test pipeline makes them but left in
    [0, 1] (the normalisation is applied by `_normalizing_model`)."""
    import numpy as np

    from keras_sumix.data import make_pipeline
    from keras_sumix.training import load_test_data

    test_raw, _ = load_test_data(config)
    if limit is not None:
        test_raw = test_raw.take(limit)
    batches = make_pipeline(
        test_raw, training=False, normalization="unit", **config.pipeline_options()
    )
    xs, ys = [], []
    for images, labels in batches.as_numpy_iterator():
        xs.append(images)
        ys.append(labels)
    if not xs:
        raise ValueError("The run's test split is empty.")
    return np.concatenate(xs), np.concatenate(ys).astype("int32")


def _fidelity(model: Any, config: Any, images: Any, stats: Any, limit: Any) -> Any:
    """Lam fidelity on the embedded dataset's test split, or why not."""
    import numpy as np

    from keras_sumix.evaluation import lam_fidelity
    from keras_sumix.training import occluded_split

    mixer_name = type(model.mixer).__name__
    if not model.mixer.true_share:
        return {
            "skipped": f"{mixer_name} rescales or blends the partner: its "
            "object masks give no true label share"
        }
    data = occluded_split(config, "test")
    if limit is not None:
        data = type(data)(*(field[:limit] for field in data))
    if data.images.shape != images.shape or len(data.images) < 2:
        return {"skipped": "the test pipeline resizes the images (masks do not match)"}
    if stats is not None:
        mean, std = (np.asarray(v, "float32") for v in stats)
        data = data._replace(images=(data.images - mean) / std)
    mixer = type(model.mixer).from_config(
        {**model.mixer.get_config(), "seed": config.seed}
    )
    result = lam_fidelity(model, mixer, data, batch_size=max(config.batch_size, 2))
    return {
        "mixer": mixer_name,
        "num_samples": len(result["lam"]),
        "pearson": result["pearson"],
        "mae": result["mae"],
        "mean_true_lam": float(np.mean(result["true_lam"])),
        "mean_lam": float(np.mean(result["lam"])),
        "mean_area_lam": float(np.mean(result["area_lam"])),
    }


def evaluate_run(
    run_dir: str | Path,
    limit: int | None = None,
    cifar100_c: str | Path | None = None,
    batch_size: int = 128,
) -> dict[str, Any]:
    """Evaluate a training run folder and write `RUN_DIR/evaluation.json`.

    Loads `checkpoint.keras` and `config.json`, rebuilds the test split as
    training does (`keras_sumix.training.load_test_data` and the run's test
    pipeline) and runs, on the same images:

    - `clean_top1`;
    - `occlusion`: `occlusion_robustness` at ratios 0, 0.1, ..., 0.9, masked
      patches set to black (0 in [0, 1] pixel space); 16x16 patches for
      images of side >= 128, an 8x8 grid of cells for smaller ones;
    - `fgsm`: white-box FGSM error at epsilon 8/255 in [0, 1] pixel space,
      clipped to [0, 1] (the paper's Table 5);
    - `corruption`: the generated corruption subset, or CIFAR-100-C when
      `cifar100_c` is a folder of its `.npy` files;
    - `lam_fidelity` on the embedded `occluded` dataset (cutting mixers).

    Every protocol sees un-normalised images in [0, 1]: the test pipeline
    is run with `normalization="unit"` and the model is wrapped with a
    `Normalization` layer holding the recipe's mean and std, so the model
    receives exactly what it was trained on while epsilon, clipping and
    occlusion live in pixel space.

    Args:
        run_dir: the run's `output_dir`.
        limit: evaluate on the first `limit` test images (and CIFAR-100-C
            images per corruption and severity) only.
        cifar100_c: folder of the official CIFAR-100-C files, or None.
        batch_size: evaluation batch size.

    Returns:
        The plain-JSON dict written to `evaluation.json`.

    Raises:
        FileNotFoundError: `run_dir` is not a run folder.
        ValueError: invalid options, or CIFAR-100-C for a model that does
            not take 32x32 RGB images.
    """
    import keras

    from keras_sumix.data.pipelines import _DEFAULTS, _NORMALIZATIONS
    from keras_sumix.evaluation import (
        cifar100_c_robustness,
        fgsm_error,
        generated_corruption_robustness,
        occlusion_robustness,
        top1_accuracy,
    )
    from keras_sumix.training import TrainConfig

    run = Path(run_dir)
    if not run.is_dir():
        raise FileNotFoundError(f"RUN_DIR {str(run)!r} is not a folder.")
    for name in ("config.json", "checkpoint.keras"):
        if not (run / name).is_file():
            raise FileNotFoundError(
                f"{str(run / name)!r} not found: RUN_DIR must be the output_dir "
                "of `keras-sumix train`."
            )
    try:
        config = TrainConfig(**json.loads((run / "config.json").read_text()))
    except (json.JSONDecodeError, TypeError) as error:
        raise ValueError(
            f"{str(run / 'config.json')!r} is not a run config: {error}"
        ) from error
    config.validate()
    if limit is not None and (isinstance(limit, bool) or int(limit) < 1):
        raise ValueError(f"`limit` must be a positive integer. Received: {limit!r}.")

    model = keras.saving.load_model(run / "checkpoint.keras", compile=False)
    images, labels = _test_images(config, limit)
    stats = _NORMALIZATIONS[_DEFAULTS[config.pipeline]["normalization"]]
    unit_model = _normalizing_model(model, images.shape[1:], stats)

    side = min(images.shape[1:3])
    occlusion_layout = {"patch_size": 16} if side >= 128 else {"grid": (8, 8)}
    occlusion = occlusion_robustness(
        unit_model, images, labels, batch_size=batch_size, **occlusion_layout
    )
    fgsm = fgsm_error(
        unit_model, images, labels, FGSM_EPSILON, batch_size=batch_size, clip=(0, 1)
    )
    if cifar100_c is not None:
        if tuple(images.shape[1:]) != (32, 32, 3):
            raise ValueError(
                "CIFAR-100-C images are 32x32 RGB; this run's model takes "
                f"{tuple(images.shape[1:])} images."
            )
        corruption = cifar100_c_robustness(
            unit_model, cifar100_c, limit=limit, batch_size=batch_size
        )
    else:
        corruption = generated_corruption_robustness(
            unit_model,
            images,
            labels,
            batch_size=batch_size,
            data_format="channels_last",
        )
    results: dict[str, Any] = {
        "run_dir": str(run),
        "backend": keras.backend.backend(),
        "dataset": config.dataset,
        "num_images": len(images),
        "inputs": "images in [0, 1]; the recipe's normalisation is applied "
        "inside the evaluated model",
        "clean_top1": top1_accuracy(unit_model, images, labels, batch_size),
        "occlusion": {
            "fill": "black (0 in [0, 1] pixels)",
            **occlusion_layout,
            "top1": occlusion,
        },
        "fgsm": {
            "epsilon": FGSM_EPSILON,
            "space": "[0, 1] pixels, clipped to [0, 1]",
            "error": fgsm,
        },
        "corruption": corruption,
    }
    if config.dataset == "occluded":
        results["lam_fidelity"] = _fidelity(model, config, images, stats, limit)
    results = _plain(results)
    (run / "evaluation.json").write_text(json.dumps(results, indent=1, allow_nan=False))
    return results


def _evaluate(args: argparse.Namespace) -> int:
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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `keras-sumix` (one sub-command per task)."""
    parser = argparse.ArgumentParser(
        prog="keras-sumix",
        description="Mixup layers and SUMix for Keras 3 (backend: KERAS_BACKEND).",
    )
    from keras_sumix import __version__

    parser.add_argument(
        "--version", action="version", version=f"keras-sumix {__version__}"
    )
    commands = parser.add_subparsers(
        dest="command", required=True, help="the task (COMMAND --help: its options)"
    )
    from keras_sumix.layers import registry

    show = commands.add_parser(
        "show", help="PNG grid of mixers applied to a batch, with each lam."
    )
    # A learned mixer (AutoMix) mixes by a trained model's features: not here.
    shown = registry.names(needs_features=False)
    show.add_argument(
        "mixers",
        nargs="*",
        default=shown,
        help=f"mixer names: {', '.join(shown)} (default: all; AutoMix, a "
        "learned mixer, needs its trained model)",
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
    show.set_defaults(run=_show)

    from keras_sumix.losses import (
        LAMBDA_MODES,
        REDUCTIONS,
        REGULARIZER_LOGITS,
        REGULARIZERS,
    )
    from keras_sumix.models.variants import VARIANTS
    from keras_sumix.recipes import RECIPES
    from keras_sumix.training import BACKBONES, DATASETS, OPTIMIZERS, PIPELINES

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
    run.add_argument(
        "--dataset",
        choices=DATASETS,
        help="occluded (embedded, the default without --data-dir), a paper "
        "dataset, or folder (the default with --data-dir): your own images, "
        "one subfolder per class",
    )
    run.add_argument(
        "--data-dir",
        dest="data_dir",
        help="where the dataset lies: for --dataset folder, a folder of class "
        "subfolders (or of train/ and val/ folders of them); a TFDS data_dir "
        "or an official layout for the paper datasets",
    )
    run.add_argument(
        "--validation-fraction",
        dest="validation_fraction",
        type=float,
        help="--dataset folder without train/ and val/ folders: share of each "
        "class held out for testing (default 0.2)",
    )
    run.add_argument("--backbone", choices=BACKBONES, help="the network")
    run.add_argument(
        "--weights",
        help="local .weights.h5 file for the backbone, or hub:PRESET for a "
        "keras-hub preset's backbone (a name such as hub:resnet_18_imagenet, "
        "downloaded from Kaggle, or a local preset directory, hub:DIR)",
    )
    run.add_argument(
        "--mixer",
        type=str.lower,
        choices=registry.names(),
        help="the mixing method (any case: CutMix or cutmix)",
    )
    run.add_argument("--alpha", type=float, help="Beta concentration")
    run.add_argument(
        "--sumix",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="SUMixModel (default) or the MixupModel baseline (--no-sumix)",
    )
    run.add_argument(
        "--variant",
        choices=sorted(VARIANTS),
        help="SUMix as published (paper, the default) or the variant the "
        "study supports (recommended); the options below override it",
    )
    run.add_argument(
        "--gamma", type=float, help="SUMix regulariser weight (default: paper's)"
    )
    run.add_argument(
        "--lambda-mode",
        dest="lambda_mode",
        choices=LAMBDA_MODES,
        help="how SUMix corrects lam",
    )
    run.add_argument(
        "--regularizer", choices=REGULARIZERS, help="SUMix uncertainty regulariser"
    )
    run.add_argument(
        "--reduction", choices=REDUCTIONS, help="SUMix regulariser reduction"
    )
    run.add_argument(
        "--semantic-scale",
        dest="semantic_scale",
        type=float,
        help="SUMix semantic-distance scale",
    )
    run.add_argument(
        "--distance-scale",
        dest="distance_scale",
        type=float,
        help="SUMix distance scale",
    )
    run.add_argument(
        "--raw-pass-gradient",
        dest="raw_pass_gradient",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="gradient through SUMix's raw pass (--no-raw-pass-gradient: "
        "the cheaper step)",
    )
    run.add_argument(
        "--saliency-pass",
        dest="saliency_pass",
        choices=("separate", "raw"),
        help="where a saliency mixer's saliency comes from",
    )
    run.add_argument(
        "--regularizer-logits",
        dest="regularizer_logits",
        choices=REGULARIZER_LOGITS,
        help="the logits SUMix's regulariser reads",
    )
    run.add_argument(
        "--regularizer-temperature",
        dest="regularizer_temperature",
        type=float,
        help="temperature of SUMix's regulariser",
    )
    run.add_argument(
        "--pipeline", choices=PIPELINES, help="augmentation recipe (make_pipeline)"
    )
    run.add_argument(
        "--image-size",
        dest="image_size",
        type=_positive_int,
        help="image side the pipeline resizes to (--dataset folder: 32 under "
        "the cifar pipeline)",
    )
    run.add_argument(
        "--rand-augment",
        dest="rand_augment",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="RandAugment on the training images (the ViT recipes' default)",
    )
    run.add_argument("--optimizer", choices=OPTIMIZERS, help="sgd or adamw")
    run.add_argument("--epochs", type=_positive_int, help="training epochs")
    run.add_argument(
        "--batch-size", dest="batch_size", type=_positive_int, help="batch size"
    )
    run.add_argument(
        "--learning-rate",
        "--lr",
        dest="learning_rate",
        type=float,
        help="peak learning rate (cosine decay to 0)",
    )
    run.add_argument("--momentum", type=float, help="SGD momentum")
    run.add_argument(
        "--weight-decay", dest="weight_decay", type=float, help="weight decay"
    )
    run.add_argument(
        "--warmup-epochs",
        dest="warmup_epochs",
        type=int,
        help="epochs of linear learning-rate warm-up",
    )
    run.add_argument("--clipnorm", type=float, help="global gradient-norm clip")
    run.add_argument("--seed", type=int, help="seed of everything random")
    run.add_argument("--limit", type=_positive_int, help="first N examples only")
    run.add_argument(
        "--output-dir",
        dest="output_dir",
        default="runs/run",
        help="run folder: config, checkpoint, history, results (default "
        "runs/run); an interrupted run there is resumed, a finished one or "
        "another config's refused",
    )
    run.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run already in --output-dir",
    )
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.set_defaults(run=_train)

    demo = commands.add_parser(
        "demo",
        help="train MCE and SUMix (authors' formula; variant='recommended') "
        "with CutMix on the study's embedded setting over 3 seeds (under 5 min); "
        "print test top-1 and lambda fidelity, mean and spread.",
    )
    demo.add_argument("--quick", action="store_true", help="small run (< 1 min)")
    demo.add_argument(
        "--epochs", type=_positive_int, default=None, help="epochs per run"
    )
    demo.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=None,
        help="seeds of every method (default: 0 1 2; --quick: 0 1)",
    )
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.add_argument(
        "--output",
        type=Path,
        default=Path("outputs/demo"),
        help="folder for results.json and mixes.png (default: outputs/demo)",
    )
    demo.set_defaults(run=_demo)

    from keras_sumix.study.command import add_arguments as add_study_arguments

    study = commands.add_parser(
        "study",
        help="the SUMix study: MCE vs SUMix variants x mixers x datasets x seeds "
        "(JSON-lines record, summary.json, study.md, study.png); recorded runs "
        "are skipped.",
    )
    add_study_arguments(study)
    study.set_defaults(run=_study)

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
    evaluate.set_defaults(run=_evaluate)
    return parser


#: What the user can fix (an invalid setting, a missing file or package, a
#: run folder in the way, a download that failed): the message alone, exit 2.
USER_ERRORS = (
    ValueError,
    TypeError,
    ImportError,
    FileNotFoundError,
    FileExistsError,
    ConnectionError,
)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point. A user error (`USER_ERRORS`: an invalid setting, a
    missing file or optional package, a run folder in the way, a keras-hub
    preset that cannot be downloaded) gives its message alone and exit code
    2; a diverged training run (NaN/inf loss) its message and exit code 1;
    anything else keeps its traceback."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except USER_ERRORS as error:
        print(f"keras-sumix {args.command}: error: {error}", file=sys.stderr)
        return 2
    except FloatingPointError as error:  # training.TrainingDiverged
        print(f"keras-sumix {args.command}: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
