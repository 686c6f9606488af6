"""Aggregating recorded runs into per-cell statistics (mean, std, n over
seeds), part by part."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

from study.config import STUDY_VIT, StudyConfig, check_seeds, fine_tune_settings
from study.grid import METHODS, PARTS, RunSpec, part_entries
from study.runner import matching

#: Per-run numbers aggregated for every cell (occlusion is added per ratio).
METRICS = (
    "final_top1",
    "median_top1",
    "pearson",
    "mae",
    "mask_std",
    "object_preference",
    "seconds_per_epoch",
)


def stats(values: Iterable[Any]) -> dict[str, Any]:
    """Mean, sample standard deviation (ddof=1) and count of the values that
    are not None.

    Args:
        values: numbers or None (a missing measure).

    Returns:
        `{"mean", "std", "n", "values"}`; `mean` is None when no value is
        there, `std` when fewer than two are.
    """
    kept = [float(v) for v in values if v is not None]
    array = np.asarray(kept, dtype="float64")
    return {
        "mean": float(array.mean()) if kept else None,
        "std": float(array.std(ddof=1)) if len(kept) > 1 else None,
        "n": len(kept),
        "values": kept,
    }


def _row(
    label: str, cell: Any, records: list[dict[str, Any]], config: StudyConfig
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "label": label,
        "cell": cell.key,
        "dataset": cell.dataset,
        "mixer": cell.mixer,
        "method": cell.method,
        "method_label": METHODS[cell.method].label,
        "batch_size": cell.batch_size,
        "distance_scale": cell.distance_scale,
        "semantic_scale": cell.semantic_scale,
        "backbone": cell.backbone,
        "epochs": cell.run_epochs(config),
        "n": len(records),
        "seeds": [r["seed"] for r in records],
        "diverged": sum(bool(r.get("diverged")) for r in records),
    }
    for metric in METRICS:
        row[metric] = stats(r.get(metric) for r in records)
    row["occlusion"] = {
        f"{ratio:g}": stats(r["occlusion"].get(f"{ratio:g}") for r in records)
        for ratio in config.occlusion_ratios
    }
    skipped = {r["fidelity"].get("skipped") for r in records} - {None}
    row["fidelity_skipped"] = sorted(skipped)[0] if skipped else None
    return row


def summarise(
    records: Iterable[dict[str, Any]],
    config: StudyConfig,
    backend: str,
    seeds: Sequence[int] | None = None,
    command: str | None = None,
) -> dict[str, Any]:
    """Aggregate the recorded runs of every part of the grid.

    Only records made with `config`'s settings (its `signature`) on
    `backend` and with one of `seeds` count; a cell lists the runs found
    (`n`), so a study run in chunks summarises what is done so far.

    Args:
        records: run records (`read_records`).
        config: the study's config (settings and grid).
        backend: the Keras backend the runs were made with.
        seeds: seeds to include (None: `config.seeds`).
        command: the command line that wrote this summary, for the report
            (the commands that trained the runs are listed in `commands`).

    Returns:
        A plain-JSON dict: settings (`config`, `vit`, part V's network and
        optimizer, and `fine_tune`, part W's data, pretrained start and
        optimizer), `runs_expected` / `runs_found`, and
        per part (`parts[name]`) its `title` and `rows` (label, cell fields,
        `n`, and `{"mean", "std", "n", "values"}` of `final_top1`,
        `median_top1`, `pearson`, `mae`, `mask_std`, `object_preference`
        (recorded since part G measures them), `seconds_per_epoch` and of
        `occlusion[ratio]`).
    """
    if not isinstance(backend, str) or not backend:
        raise TypeError(f"`backend` must be a backend name. Received: {backend!r}.")
    seeds = config.seeds if seeds is None else check_seeds(seeds)
    found = matching(records, config, backend)
    parts, expected, present, commands = {}, set(), set(), []
    for part, title in PARTS.items():
        rows = []
        for entry in part_entries(part, config):
            keys = [RunSpec(part, entry.label, entry.cell, s).key for s in seeds]
            expected.update(keys)
            runs = [found[k] for k in keys if k in found]
            present.update(r["key"] for r in runs)
            commands += [r.get("command") for r in runs]
            rows.append(_row(entry.label, entry.cell, runs, config))
        parts[part] = {"title": title, "rows": rows}
    return {
        "backend": backend,
        "signature": config.signature(),
        "config": config.to_dict(),
        "vit": STUDY_VIT.to_dict(),
        "fine_tune": fine_tune_settings(config).to_dict(),
        "seeds": list(seeds),
        "command": command,
        "commands": list(dict.fromkeys(c for c in commands if c)),
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "runs_expected": len(expected),
        "runs_found": len(present),
        "parts": parts,
    }
