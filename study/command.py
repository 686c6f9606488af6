"""The study's command line, `python -m study` from the repository root
(`make study`), and what it shares with the demo's (`python -m study.demo`)."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import keras

from study.config import FULL, QUICK, RESULTS, ROOT
from study.driver import DEFAULT_OUTPUT, run_study, summarise_study
from study.grid import PARTS

#: How the study is run (cited in its report).
PROGRAM = "python -m study"
#: Default output folder of `--quick` (in the repository).
QUICK_OUTPUT = RESULTS / "study_quick"
#: What the user can fix (an invalid setting, a missing optional package):
#: the message alone and exit status 2; anything else keeps its traceback.
USER_ERRORS = (ValueError, ImportError)


def _shown(path: Path) -> str:
    """A default path as the help shows it (relative to the repository)."""
    return f"{path.relative_to(ROOT)} in the repository"


def _part(text: str) -> str:
    name = text.upper()
    if name not in PARTS:
        raise argparse.ArgumentTypeError(
            f"unknown part {text!r}; choose from {', '.join(PARTS)}"
        )
    return name


def positive_int(text: str) -> int:
    """An argparse type: a positive integer.

    Args:
        text: the argument as typed.

    Returns:
        Its value.
    """
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


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
        help=f"output folder (default: {_shown(DEFAULT_OUTPUT)}; quick: "
        f"{_shown(QUICK_OUTPUT)})",
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
        program: how the study was invoked, e.g. `PROGRAM`.

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


def run_from_args(args: argparse.Namespace, program: str = PROGRAM) -> int:
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


def run_command(
    parser: argparse.ArgumentParser,
    run: Callable[[argparse.Namespace], int],
    argv: Sequence[str] | None = None,
) -> int:
    """Parse `argv` with `parser` and call `run` on the arguments; a user
    error (`USER_ERRORS`) prints `PROG: error: MESSAGE` and gives exit
    status 2, as an invalid option does.

    Args:
        parser: the command's parser.
        run: what the command does, from its parsed arguments to its exit
            status.
        argv: the arguments (None: `sys.argv[1:]`).

    Returns:
        The exit status.
    """
    args = parser.parse_args(argv)
    try:
        return run(args)
    except USER_ERRORS as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2


def main(argv: Sequence[str] | None = None) -> int:
    """The study's command line (`python -m study`).

    Args:
        argv: the arguments (None: `sys.argv[1:]`).

    Returns:
        The exit status: 0, or 2 for an invalid setting.
    """
    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description="The SUMix study: MCE against SUMix's variants x mixers x "
        "datasets x seeds (JSON-lines record, summary.json, study.md, "
        "study.png); recorded runs are skipped. Run it from the repository root.",
    )
    return run_command(add_arguments(parser), run_from_args, argv)
