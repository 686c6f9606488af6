"""The SUMix study: MCE against SUMix's variants (lambda modes, reductions,
the Table 6 regulariser ablation, and a control for SUMix's extra clean
pass), across mixers and two datasets (the embedded occluded objects, where
the true label share is known, and scikit-learn's digits), with seeds,
lambda fidelity, occlusion robustness and wall-clock; plus sweeps of
`distance_scale` and `semantic_scale`, and three of the methods on a small
vision transformer instead of the CNN (part V; needs keras-hub).

This project's research harness, not part of the installed library: it runs
from a clone, from the repository root (its default output folders are in
the repository, wherever it is run from):

    python -m study                   # the full grid (about 2 h 15 min on 2 CPU cores)
    python -m study --parts A         # one part; recorded runs are skipped
    python -m study --quick           # under a minute (what the tests run)

Modules: `config` (the budget: `StudyConfig`, `FULL`, `QUICK`), `grid`
(methods, parts, cells, runs), `runner` (the data, one run, the JSON-lines
record), `summary` (mean/std per cell), `report` (Markdown and plot),
`driver` (`run_study`), `command` (the command line). `study.demo`
(`make demo`, `python -m study.demo`) trains three of part A's cells with the
same engine.
"""

from study.config import FULL, QUICK, StudyConfig
from study.driver import DEFAULT_OUTPUT, run_study, summarise_study
from study.grid import METHODS, PARTS, Cell, Method, RunSpec, build_grid
from study.report import format_markdown, plot, write_report
from study.runner import (
    RUNS_FILE,
    StudyData,
    read_records,
    train_and_measure,
    train_run,
)
from study.summary import stats, summarise

__all__ = [
    "DEFAULT_OUTPUT",
    "FULL",
    "METHODS",
    "PARTS",
    "QUICK",
    "RUNS_FILE",
    "Cell",
    "Method",
    "RunSpec",
    "StudyConfig",
    "StudyData",
    "build_grid",
    "format_markdown",
    "plot",
    "read_records",
    "run_study",
    "stats",
    "summarise",
    "summarise_study",
    "train_and_measure",
    "train_run",
    "write_report",
]
