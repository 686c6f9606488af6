"""The study's command line, shared by `keras-sumix study` and
`benchmarks/study.py`."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

import keras

from keras_sumix.study.config import FULL, QUICK
from keras_sumix.study.driver import DEFAULT_OUTPUT, run_study, summarise_study
from keras_sumix.study.grid import PARTS

#: Default output folder of `--quick`.
QUICK_OUTPUT = Path("benchmarks/results/study_quick")


def _part(text: str) -> str:
    name = text.upper()
    if name not in PARTS:
        raise argparse.ArgumentTypeError(
            f"unknown part {text!r}; choose from {', '.join(PARTS)}"
        )
    return name


def _seed(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the study's options to `parser`.

    Args:
        parser: an argument parser (or sub-parser).

    Returns:
        The parser.
    """
    parser.add_argument(
        "--quick",
        action="store_true",
        help="the quick grid (tiny data, 2 epochs, 1 seed; under a minute)",
    )
    parser.add_argument(
        "--parts",
        "--part",
        nargs="+",
        type=_part,
        default=None,
        metavar="PART",
        help="parts to run: " + "; ".join(PARTS.values()) + " (default: all)",
    )
    parser.add_argument(
        "--seeds",
        nargs="+",
        type=_seed,
        default=None,
        metavar="SEED",
        help=f"seeds (default: {' '.join(map(str, FULL.seeds))}; quick: 0)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help=f"output folder (default: {DEFAULT_OUTPUT}; quick: {QUICK_OUTPUT})",
    )
    parser.add_argument(
        "--summary-only",
        action="store_true",
        help="train nothing: summarise the recorded runs and write the report",
    )
    parser.add_argument(
        "--no-estimate",
        dest="estimate",
        action="store_false",
        help="skip the time estimate before training",
    )
    parser.add_argument("--quiet", action="store_true", help="no per-run lines")
    parser.add_argument(
        "--keras-progress", action="store_true", help="show Keras progress bars"
    )
    return parser


def command_line(args: argparse.Namespace, program: str) -> str:
    """The command that reproduces `args` (the options that change what is
    trained or where it goes), with the backend, to cite in the report.

    Args:
        args: the parsed arguments.
        program: how the study was invoked, e.g. `"keras-sumix study"`.

    Returns:
        A shell command line.
    """
    words = [program]
    if args.quick:
        words.append("--quick")
    if args.parts:
        words += ["--parts", *args.parts]
    if args.seeds:
        words += ["--seeds", *map(str, args.seeds)]
    if args.output:
        words += ["--output", shlex.quote(str(args.output))]
    backend = keras.backend.backend()
    return f"KERAS_BACKEND={backend} " + " ".join(words)


def run_from_args(args: argparse.Namespace, program: str = "keras-sumix study") -> int:
    """Run (or summarise) the study as parsed by `add_arguments`.

    Args:
        args: the parsed arguments.
        program: how the study was invoked (cited in the report).

    Returns:
        The exit status (0).
    """
    config = QUICK if args.quick else FULL
    output = args.output or (QUICK_OUTPUT if args.quick else DEFAULT_OUTPUT)
    command = command_line(args, program)
    if args.summary_only:
        summary = summarise_study(output, config, args.seeds, command)
        print(
            f"study: {summary['runs_found']} of {summary['runs_expected']} runs "
            f"summarised -> {output}/summary.json, study.md, study.png"
        )
        return 0
    verbose = 0 if args.quiet else (2 if args.keras_progress else 1)
    run_study(
        config,
        parts=args.parts,
        seeds=args.seeds,
        output_dir=output,
        command=command,
        estimate=args.estimate and not args.quick,
        verbose=verbose,
    )
    return 0
