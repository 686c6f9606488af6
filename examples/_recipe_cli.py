"""Shared command line of the recipe examples (each example is a few lines
over `keras_sumix.training`)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from keras_sumix.recipes import paper_gamma
from keras_sumix.training import TrainConfig, train


def run(
    description: str,
    recipes: Sequence[str],
    argv: Sequence[str] | None,
    smoke: dict[str, Any],
) -> dict[str, Any]:
    """Parse the example's arguments and train.

    Args:
        description: the example's docstring.
        recipes: the recipes it offers (the first is the default).
        argv: command line (None: `sys.argv`).
        smoke: overrides of `--smoke` (tiny data, one epoch).

    Returns:
        The run's results.
    """
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recipe", choices=recipes, default=recipes[0])
    parser.add_argument("--data-dir", help="dataset folder (or TFDS data_dir)")
    parser.add_argument(
        "--weights",
        default=None,
        help="'none' (random init, offline), a local .weights.h5 file, or "
        "hub:<keras-hub preset>: a name, e.g. hub:resnet_18_imagenet (a "
        "download from Kaggle), or a local preset directory, hub:DIR "
        "(default: the recipe's, random init for most)",
    )
    parser.add_argument("--mixer", default="cutmix")
    parser.add_argument("--sumix", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument(
        "--gamma",
        type=float,
        help="SUMix regulariser weight (default: the paper's for the recipe and "
        "mixer, appendix A.1; 0.5 where it gives none)",
    )
    parser.add_argument("--seed", type=int, help="seed of everything random")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--output-dir", default="runs/example")
    parser.add_argument("--smoke", action="store_true", help="tiny, for the tests")
    args = parser.parse_args(argv)
    overrides = {
        "data_dir": args.data_dir,
        "weights": None if args.weights == "none" else args.weights,
        "mixer": args.mixer,
        "sumix": args.sumix,
        "gamma": paper_gamma(args.recipe, args.mixer)
        if args.gamma is None
        else args.gamma,
        "seed": args.seed,
        "epochs": args.epochs,
        "output_dir": args.output_dir,
    }
    if args.smoke:
        overrides.update(smoke)
    config = TrainConfig.from_recipe(args.recipe, **overrides)
    if args.weights == "none":  # random init, even for a recipe with weights
        config.weights = None
    results = train(config, verbose=0 if args.smoke else "auto")
    print(f"test top-1 {100 * results['test_top1']:.2f}% ({config.output_dir})")
    return results
