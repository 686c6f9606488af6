"""Running the study: train the grid's runs not yet recorded, then
summarise every recorded run and write the report."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras

from study.config import FULL, RESULTS, StudyConfig, check_seeds
from study.grid import MIXER_LABELS, build_grid, check_parts
from study.report import write_report
from study.runner import (
    RUNS_FILE,
    StudyData,
    append_record,
    estimate_seconds,
    matching,
    read_records,
    train_run,
)
from study.summary import summarise

#: Default output folder (in the repository, wherever the study is run from).
DEFAULT_OUTPUT = RESULTS / "study"


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def _check_output(output_dir: Any) -> Path:
    if not isinstance(output_dir, (str, Path)) or not str(output_dir):
        raise TypeError(
            f"`output_dir` must be a folder path. Received: output_dir={output_dir!r}."
        )
    path = Path(output_dir)
    if path.exists() and not path.is_dir():
        raise ValueError(
            f"`output_dir` must be a folder. Received: output_dir={str(path)!r}, "
            "which is a file."
        )
    return path


def summarise_study(
    output_dir: str | Path = DEFAULT_OUTPUT,
    config: StudyConfig = FULL,
    seeds: Sequence[int] | None = None,
    command: str | None = None,
) -> dict[str, Any]:
    """Summarise the runs recorded in `output_dir/runs.jsonl` (made with
    `config` on the current backend) and write `summary.json`, `study.md`
    and `study.png` there.

    Args:
        output_dir: the study's folder.
        config: the study's config.
        seeds: seeds to include (None: `config.seeds`).
        command: the command line to cite in the report.

    Returns:
        The summary.
    """
    output_dir = _check_output(output_dir)
    records = read_records(output_dir / RUNS_FILE)
    summary = summarise(records, config, keras.backend.backend(), seeds, command)
    write_report(summary, output_dir)
    return summary


def run_study(
    config: StudyConfig = FULL,
    parts: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    output_dir: str | Path = DEFAULT_OUTPUT,
    command: str | None = None,
    estimate: bool = True,
    verbose: int = 1,
) -> dict[str, Any]:
    """Train every run of the selected parts not yet recorded, appending
    each finished run to `output_dir/runs.jsonl`, then summarise all the
    recorded runs (every part; seeds `config.seeds` and `seeds`) into
    `summary.json`, `study.md` and `study.png`.

    A rerun skips the runs already recorded with the same settings and
    backend, so the study can be run in chunks (`parts=["A"]`, then
    `["B"]`, ...) or resumed after an interruption.

    Args:
        config: the study's settings (`FULL`, or `QUICK` for the quick grid).
        parts: the parts to run (None: all of `study.PARTS`).
        seeds: the seeds (None: `config.seeds`).
        output_dir: where the record and the report go.
        command: the command line, cited in the report.
        estimate: print an estimate of the time left before starting (from
            the recorded runs, else from a short timed run of MCE and SUMix).
        verbose: 0 silent, 1 one line per run, 2 also Keras progress.

    Returns:
        The summary (see `study.summarise`).
    """
    if not isinstance(config, StudyConfig):
        raise TypeError(f"`config` must be a StudyConfig. Received: config={config!r}.")
    parts = check_parts(parts)
    seeds = config.seeds if seeds is None else check_seeds(seeds)
    output_dir = _check_output(output_dir)
    if verbose not in (0, 1, 2):
        raise ValueError(f"`verbose` must be 0, 1 or 2. Received: verbose={verbose!r}.")
    runs_file = output_dir / RUNS_FILE
    backend = keras.backend.backend()
    recorded = matching(read_records(runs_file), config, backend)
    runs = build_grid(config, parts, seeds)
    todo = [run for run in runs if run.key not in recorded]
    data = StudyData(config)
    if verbose:
        print(
            f"study: parts {', '.join(parts)}, seeds {list(seeds)}, backend "
            f"{backend}: {len(runs)} runs, {len(runs) - len(todo)} already "
            f"recorded in {runs_file}, {len(todo)} to train.",
            flush=True,
        )
        if todo and estimate:
            seconds = estimate_seconds(todo, config, data, recorded)
            print(f"study: estimated time for them: {_minutes(seconds)}.", flush=True)
    start = time.perf_counter()
    for index, run in enumerate(todo, 1):
        record = train_run(run, config, data, verbose=max(verbose - 1, 0))
        record["command"] = command
        append_record(runs_file, record)
        if verbose:
            cell = run.cell
            fidelity = (
                f", lam r {record['pearson']:+.2f} MAE {record['mae']:.3f}"
                if record["pearson"] is not None
                else ""
            )
            print(
                f"[{index}/{len(todo)}] {run.part} {cell.dataset} "
                f"{MIXER_LABELS[cell.mixer]} | {run.label} | seed {run.seed}: "
                f"top-1 {100 * record['final_top1']:.1f}% (median "
                f"{100 * record['median_top1']:.1f}%){fidelity}, "
                f"{record['seconds_per_epoch']:.2f} s/epoch, "
                f"{record['total_seconds']:.0f} s; elapsed "
                f"{_minutes(time.perf_counter() - start)}",
                flush=True,
            )
    keras.backend.clear_session()
    summary_seeds = sorted(set(config.seeds) | set(seeds))
    summary = summarise_study(output_dir, config, summary_seeds, command)
    if verbose:
        print(
            f"study: {summary['runs_found']} of {summary['runs_expected']} runs "
            f"summarised -> {output_dir}/summary.json, study.md, study.png",
            flush=True,
        )
    return summary
