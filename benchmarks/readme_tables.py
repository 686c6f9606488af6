"""Regenerate the generated tables of README.md and docs/*.md from
benchmarks/results/*.json.

    python benchmarks/readme_tables.py              # every table
    python benchmarks/readme_tables.py mixers step  # only these

Each table sits between `<!-- NAME:start -->` and `<!-- NAME:end -->`
markers, in every file that has them (README.md and the pages under docs/):
the study's full tables on the docs' study page and a summary in the README,
the benchmarks on the docs' benchmarks page, ... Every file gets the same
table, with its image links made relative to that file; an image shown on a
docs page is copied into docs/img/ first, since the site is built from docs/
alone. A table whose markers are in no file is an error. A results file that
does not exist yet leaves its table saying so; one in an older format (its
renderer raises ValueError) leaves the table as it was, with a warning.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The demo's and the study's renderers (`study/`, run from a clone).
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"
DOCS = ROOT / "docs"
#: Where images shown on docs pages are copied (inside the mkdocs docs_dir).
DOCS_IMAGES = DOCS / "img"
#: A Markdown image whose target is a path (renderers write them relative to
#: the repository root).
_IMAGE = re.compile(r"(!\[[^\]]*\]\()([^)\s]+)(\))")


#: The tf.data sections of `mixers.json`, as the mixers table names them.
_MIXER_SECTIONS = (
    ("repeat_batch", "repeat.batch, one-hot"),
    ("batch_repeat", "batch.repeat, one-hot"),
    ("repeat_batch_int", "repeat.batch, integer"),
    ("batch_repeat_int", "batch.repeat, integer"),
    ("jpeg", "JPEG decode"),
    ("constant", "constant batch"),
)


def mixers_table(report: dict) -> str:
    """Throughput in the tf.data pipelines users build, the mixers' share of
    a compiled train step, and the goals, from `mixers.json` (format 3)."""
    if report.get("format") != 3:
        raise ValueError("mixers.json predates format 3 (each pipeline timed alone)")
    sections, machine = report["sections"], report["machine"]
    shown = [(key, name) for key, name in _MIXER_SECTIONS if key in sections]
    lines = []
    if shown:
        first = sections[shown[0][0]]
        shape = "x".join(str(v) for v in first["image_shape"])
        lines += [
            f"Measured {first['date_start'][:10]}, `KERAS_BACKEND="
            f"{machine['backend']}` (the layers run as TensorFlow ops inside "
            f"tf.data), batch {first['batch_size']} x {shape} float32, each "
            "layer mapped with `num_parallel_calls=AUTOTUNE` then `prefetch(2)`; "
            f"median (min-max) of {first['repeats']} repeats, each pipeline timed "
            "alone (fresh iterator, warm-up until steady), load average "
            f"{first['loadavg_start']} -> {first['loadavg_end']} on 2 shared "
            "cores, so compare ratios; allocator: "
            + (
                ", ".join(f"`{k}={v}`" for k, v in machine.get("allocator", {}).items())
                or "glibc's defaults"
            )
            + ". The pipelines:",
            "",
        ]
        lines += [f"- {name}: `{sections[key]['pipeline']}`" for key, name in shown]
        header = ["layer"]
        for _, name in shown:
            header += [f"{name} img/s", "x keras CutMix"]
        lines += [
            "",
            "| " + " | ".join(header) + " |",
            "|---" + "|--:" * (len(header) - 1) + "|",
        ]
        rows = {
            key: {r["key"]: r for r in sections[key]["entries"]} for key, _ in shown
        }
        for entry in sections[shown[0][0]]["entries"]:
            cells = [entry["label"]]
            for key, _ in shown:
                row = rows[key].get(entry["key"])
                cells += (
                    ["-", "-"]
                    if row is None
                    else [
                        f"{row['median_img_s']:,.0f} "
                        f"({min(row['repeats_img_s']):,.0f}-"
                        f"{max(row['repeats_img_s']):,.0f})",
                        f"{row['x_keras_cutmix']:.2f}x",
                    ]
                )
            lines.append("| " + " | ".join(cells) + " |")
    step = sections.get("step")
    if step:
        blocks = step["backends"]
        lines += [
            "",
            f"Inside a compiled train step (`{step['pipeline']}`): each mixer's "
            "share of the step without mixing, measured as the step with the "
            "mixer over a step without timed right next to it (median over "
            "rounds; the step's own noise on this shared CPU is +-10-20% per "
            "round) and as "
            "the mixer's `mix` compiled alone at the same shape (what the goal "
            "judges).",
            "",
            "| mixer | "
            + " | ".join(
                f"{b['backend']} ({b['compiler']}): step +share | mix alone"
                for b in blocks
            )
            + " |",
            "|---" + "|--:|--:" * len(blocks) + "|",
        ]
        by_backend = [{r["mixer"]: r for r in b["rows"]} for b in blocks]
        for row in blocks[0]["rows"]:
            if row["mixer"] == "none":
                cells = [
                    "no mixing (s/step)",
                    *(
                        v
                        for rows in by_backend
                        for v in (f"{rows['none']['seconds_per_step']:.3g} s", "")
                    ),
                ]
            else:
                cells = [row["label"]]
                for rows in by_backend:
                    r = rows[row["mixer"]]
                    cells += [
                        f"{100 * r['step_share']:+.1f}%",
                        f"{1e3 * r['mix_alone_seconds']:.2f} ms "
                        f"({100 * r['mix_alone_share']:.3f}%)",
                    ]
            lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "| goal | measured | result |", "|---|--:|---|"]
    for goal in report["goals"]:
        verdict = ("PASS" if goal["passed"] else "FAIL") + (
            " (stretch)" if goal["stretch"] else ""
        )
        if goal["section"] == "step":
            measured = f"{100 * goal['share']:.3f}%"
            text = goal["goal"]
        else:
            measured = f"{goal['ratio']:.2f}x"
            text = f"{goal['goal']} ({goal['section']})"
        lines.append(f"| {text} | {measured} | {verdict} |")
    return "\n".join(lines)


def markdown_beside(filename: str):
    """A renderer that takes the Markdown table a benchmark wrote next to its
    JSON (same name, `.md`)."""

    def render(report: dict) -> str:
        path = RESULTS / Path(filename).with_suffix(".md")
        return path.read_text().strip() if path.exists() else json.dumps(report)

    render.__doc__ = f"The table of `{Path(filename).with_suffix('.md')}`."
    return render


def demo_table(report: dict) -> str:
    """The demo's comparison, from `demo/results.json`."""
    from study.demo import format_table

    return format_table(report)


def study_table(report: dict) -> str:
    """The study's tables and plot, from `study/summary.json`."""
    from study import format_markdown

    return (
        format_markdown(report, heading="###")
        + "\n\n![accuracy vs lambda fidelity](benchmarks/results/study/study.png)"
    )


#: The README's study summary: rows (method key, label) and columns
#: (dataset, mixer, backbone, header), looked up in parts A-C, F, P, G, V and L of
#: `study/summary.json`.
_SUMMARY_METHODS = (
    ("mce", "MCE (MixupModel)"),
    ("sumix", "SUMix as published (the defaults)"),
    ("distance_ps", '`lambda_mode="distance", reduction="per_sample"` (t = 2)'),
    ("recommended", '`variant="recommended"` (the same, t = 4, the cheap step)'),
    ("mce_decouple", "MCE + DecoupleMix (`decouple_weight=0.1`; part L)"),
    ("recommended_decouple", '`variant="recommended"` + DecoupleMix (part L)'),
)
_SUMMARY_COLUMNS = (
    ("occluded", "cutmix", "cnn", "CutMix"),
    ("occluded", "fmix", "cnn", "FMix"),
    ("occluded", "saliencymix", "cnn", "SaliencyMix"),
    ("occluded", "resizemix", "cnn", "ResizeMix"),
    ("occluded", "mixup", "cnn", "MixUp"),
    ("occluded", "puzzlemix", "cnn", "PuzzleMix"),
    ("occluded", "automix", "cnn", "AutoMix"),
    ("digits", "cutmix", "cnn", "digits, CutMix"),
    ("occluded", "cutmix", "vit", "small ViT, CutMix"),
    ("fine_grained", "cutmix", "pretrained", "fine-grained, pretrained, CutMix"),
)
_SUMMARY_PARTS = ("A", "B", "C", "F", "P", "G", "V", "L", "W")


def study_summary_table(report: dict) -> str:
    """A short summary of the study, from `study/summary.json`: top-1 of the
    three headline methods per mixer and dataset (`small_cnn`) and with the
    small ViT of part V, and CutMix's lam fidelity (`small_cnn`)."""

    def mean_std(stat: dict, scale: float, digits: int) -> str:
        if stat["mean"] is None:
            return "-"
        text = f"{scale * stat['mean']:.{digits}f}"
        if stat["std"] is None:
            return text
        return f"{text} ± {scale * stat['std']:.{digits}f}"

    rows: dict[tuple[str, str, str, str], dict] = {}
    for key in _SUMMARY_PARTS:
        for row in report["parts"].get(key, {}).get("rows", []):
            if row.get("semantic_scale") is None and row["n"]:
                backbone = row.get("backbone", "cnn")
                rows.setdefault(
                    (row["dataset"], row["mixer"], row["method"], backbone), row
                )
    seeds = len(report["seeds"])
    epochs = report["config"]["epochs"]
    vit_epochs = sorted(
        {
            row.get("epochs") or epochs
            for row in report["parts"].get("V", {}).get("rows", [])
        }
    )
    vit = report.get("vit")
    vit_text = (
        f"a small ViT ({vit['num_layers']} layers, width "
        f"{vit['hidden_dim']}, patch {vit['patch_size']}, AdamW, "
        f"{'/'.join(map(str, vit_epochs))} epochs; part V) on the embedded data"
        if vit and vit_epochs
        else "a small ViT on the embedded data (part V)"
    )
    lines = [
        f"Test top-1 %, mean ± std over {seeds} seeds (backend "
        f"{report['backend']}; `small_cnn`, {epochs} epochs, unless stated); "
        "the first seven columns on the embedded occluded objects (PuzzleMix: "
        "part F, saliency from a separate pass; AutoMix: part G), the eighth on "
        "scikit-learn's "
        f"digits, the ninth {vit_text}, the last the pretrained start "
        "fine-tuned on the synthetic fine-grained data (part W: the stand-in "
        "for the paper's Table 2, other settings); lam r: Pearson correlation of "
        "the training lam with the true label share (CutMix, embedded, "
        "`small_cnn`).",
        "",
        "| method | "
        + " | ".join(header for *_, header in _SUMMARY_COLUMNS)
        + " | lam r |",
        "|---" * (len(_SUMMARY_COLUMNS) + 2) + "|",
    ]
    for method, label in _SUMMARY_METHODS:
        cells = [label]
        for dataset, mixer, backbone, _ in _SUMMARY_COLUMNS:
            row = rows.get((dataset, mixer, method, backbone))
            cells.append(mean_std(row["final_top1"], 100, 1) if row else "not run")
        row = rows.get(("occluded", "cutmix", method, "cnn"))
        cells.append(mean_std(row["pearson"], 1, 2) if row else "not run")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


#: The variants table's columns (method key, header): part P's cells.
_VARIANT_COLUMNS = (
    ("mce", "MCE"),
    ("mce_clean", "MCE + clean pass (control)"),
    ("sumix", '`variant="paper"`'),
    ("recommended", '`variant="recommended"`'),
)


def _paired(row: dict, base: dict) -> str:
    """`row - base` in top-1 points, mean over the seeds both have, and how
    many of those seeds are positive."""
    mine = dict(zip(row["seeds"], row["final_top1"]["values"], strict=True))
    theirs = dict(zip(base["seeds"], base["final_top1"]["values"], strict=True))
    seeds = sorted(set(mine) & set(theirs))
    if not seeds:
        return "-"
    diffs = [100 * (mine[s] - theirs[s]) for s in seeds]
    up = sum(d > 0 for d in diffs)
    return f"{sum(diffs) / len(diffs):+.1f} ({up}/{len(diffs)} seeds > 0)"


def study_variants_table(report: dict) -> str:
    """The evidence for `SUMixModel(variant="recommended")`, from
    `study/summary.json` (part P and the cells it shares): per dataset and
    mixer, the final top-1 of MCE, the clean-pass control, the paper variant
    and the recommended one, their differences paired by seed, and lam
    fidelity on the embedded data."""
    from keras_sumix.layers import registry

    rows = {}
    for part in report["parts"].values():
        for row in part["rows"]:
            plain = row.get("semantic_scale") is None
            if row["n"] and plain and row.get("backbone", "cnn") == "cnn":
                key = (row["dataset"], row["mixer"], row["method"], row["batch_size"])
                rows.setdefault(key, row)
    cells = [
        (row["dataset"], row["mixer"])
        for row in report["parts"].get("P", {}).get("rows", [])
    ]
    batch = report["config"]["batch_size"]
    lines = [
        "Test top-1 %, mean ± std over seeds "
        f"{', '.join(map(str, report['seeds']))} (backend "
        f"{report['backend']}; `small_cnn`, {report['config']['epochs']} epochs, "
        f"batch {batch}; part P of the study); differences in top-1 points, "
        "paired by seed; lam r: Pearson correlation of the training lam with "
        "the true label share (paper / recommended; embedded data only).",
        "",
        "| data, mixer | "
        + " | ".join(header for _, header in _VARIANT_COLUMNS)
        + " | recommended - MCE | recommended - control | recommended - paper"
        " | lam r |",
        "|---" * (len(_VARIANT_COLUMNS) + 5) + "|",
    ]
    for dataset, mixer in dict.fromkeys(cells):
        found = [
            rows.get((dataset, mixer, method, batch)) for method, _ in _VARIANT_COLUMNS
        ]
        text = [f"{dataset}, {registry.label(mixer)}"]
        text += [
            "not run"
            if row is None
            else f"{100 * row['final_top1']['mean']:.1f} ± "
            f"{100 * (row['final_top1']['std'] or 0):.1f}"
            for row in found
        ]
        mce, control, paper, recommended = found
        for base in (mce, control, paper):
            ok = base is not None and recommended is not None
            text.append(_paired(recommended, base) if ok else "-")
        if dataset == "occluded" and paper and recommended:
            text.append(
                f"{paper['pearson']['mean']:.2f} / {recommended['pearson']['mean']:.2f}"
            )
        else:
            text.append("-")
        lines.append("| " + " | ".join(text) + " |")
    return "\n".join(lines)


def long_runs_table(report: dict) -> str:
    """The long-run stability table, from `long_runs.json` (its Markdown
    report, whose title line, e.g. `# Long runs (jax, 2 CPUs, load 4.5)`,
    becomes `Measured on jax, 2 CPUs, load 4.5.`)."""
    path = RESULTS / "long_runs.md"
    if not path.exists():
        return json.dumps(report)
    lines = path.read_text().strip().splitlines()
    title = re.fullmatch(r"#+\s*[^(]*\((.*)\)\s*", lines[0]) if lines else None
    if title:
        lines[0] = f"Measured on {title.group(1)}."
    elif lines and lines[0].startswith("#"):
        lines[0] = lines[0].lstrip("# ")
    return "\n".join(lines)


TABLES = {
    "mixers": ("mixers.json", mixers_table),
    # The same pipelines at 160 px, batch 96.
    "mixers-160": ("mixers_160.json", mixers_table),
    "step": ("step_overhead.json", markdown_beside("step_overhead.json")),
    "step-deit": (
        "step_overhead_deit_small.json",
        markdown_beside("step_overhead_deit_small.json"),
    ),
    "step-swin": (
        "step_overhead_swin_tiny.json",
        markdown_beside("step_overhead_swin_tiny.json"),
    ),
    "xla": ("xla_step.json", markdown_beside("xla_step.json")),
    "method-step": ("method_step.json", markdown_beside("method_step.json")),
    "device": ("device_check.json", markdown_beside("device_check.json")),
    "demo": ("demo/results.json", demo_table),
    "study": ("study/summary.json", study_table),
    "study-summary": ("study/summary.json", study_summary_table),
    "study-variants": ("study/summary.json", study_variants_table),
    "long_runs": ("long_runs.json", long_runs_table),
}


def targets() -> list[Path]:
    """The files whose marked tables are rewritten: README.md and docs/."""
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def localise(body: str, target: Path) -> str:
    """`body` with its image links (relative to the repository root) made
    relative to `target`; for a file under docs/, an image from outside
    docs/ is copied into `DOCS_IMAGES` and linked there."""

    def relink(match: re.Match) -> str:
        link = match.group(2)
        if "://" in link or link.startswith("/"):
            return match.group(0)
        image = ROOT / link
        if DOCS in target.parents and DOCS not in image.parents:
            copy = DOCS_IMAGES / image.name
            if image.exists():
                DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(image, copy)
            image = copy
        relative = Path(os.path.relpath(image, target.parent)).as_posix()
        return match.group(1) + relative + match.group(3)

    return _IMAGE.sub(relink, body)


def render(name: str) -> str | None:
    """The body of table `name`, or None when its results file is in a
    format its renderer does not read (a warning says so)."""
    filename, renderer = TABLES[name]
    path = RESULTS / filename
    if not path.exists():
        return f"_Not measured yet: run the script that writes `{filename}`._"
    try:
        return renderer(json.loads(path.read_text()))
    except ValueError as error:
        print(
            f"readme_tables: {filename} could not be rendered, the {name!r} "
            f"table is left as it was: {error}",
            file=sys.stderr,
        )
        return None


def main(argv: Sequence[str] | None = None) -> None:
    """Rewrite the marked tables (all, or those named) wherever they are."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=f"tables to rewrite (default: all): {', '.join(TABLES)}",
    )
    names = parser.parse_args(argv).names or list(TABLES)
    unknown = [name for name in names if name not in TABLES]
    if unknown:
        parser.error(f"unknown tables {unknown}; expected some of {list(TABLES)}")
    texts = {path: path.read_text() for path in targets()}
    for name in names:
        pattern = re.compile(
            rf"(<!-- {name}:start -->\n)(?:.*?\n)?(<!-- {name}:end -->)", re.S
        )
        holders = [path for path, text in texts.items() if pattern.search(text)]
        if not holders:
            raise SystemExit(
                f"No file has <!-- {name}:start/end --> markers (README.md, docs/)."
            )
        body = render(name)
        if body is None:
            continue
        for path in holders:
            local = localise(body, path)
            texts[path] = pattern.sub(
                lambda m, local=local: m.group(1) + local + "\n" + m.group(2),
                texts[path],
            )
    for path, text in texts.items():
        if text != path.read_text():
            path.write_text(text)


if __name__ == "__main__":
    main()
