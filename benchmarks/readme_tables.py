"""Regenerate the benchmark tables in README.md from benchmarks/results/*.json.

    python benchmarks/readme_tables.py

Each table sits between `<!-- NAME:start -->` and `<!-- NAME:end -->` markers
in the README; a results file that does not exist yet leaves its table
saying so.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def mixers_table(report: dict) -> str:
    """Throughput in tf.data and the goals, from `mixers.json`."""
    machine, settings = report["machine"], report["settings"]
    shape = "x".join(str(v) for v in settings["image_shape"])
    lines = [
        f"Measured {machine['date'][:10]}, backend {machine['backend']}, batch "
        f"{settings['batch_size']} x {shape}, median of {settings['repeats']} "
        "round-robin repeats; other processes shared the 2 cores, so compare ratios.",
        "",
        "| layer (tf.data map) | img/s | x keras CutMix |",
        "|---|--:|--:|",
    ]
    for entry in report["entries"]:
        if entry["pipeline"] != "tf.data" or entry["key"] == "identity":
            continue
        lines.append(
            f"| {entry['label']} | {entry['median_img_s']:,.0f} | "
            f"{entry['x_keras_cutmix']:.2f}x |"
        )
    lines += ["", "| goal | measured | result |", "|---|--:|---|"]
    for goal in report["goals"]:
        verdict = "PASS" if goal["passed"] else "FAIL"
        lines.append(f"| {goal['goal']} | {goal['ratio']:.2f}x | {verdict} |")
    return "\n".join(lines)


def step_table(report: dict) -> str:
    """SUMix / MCE step times per backend, from `step_overhead.json`."""
    path = RESULTS / "step_overhead.md"
    return path.read_text().strip() if path.exists() else json.dumps(report)


def demo_table(report: dict) -> str:
    """The demo's comparison, from `demo/results.json`."""
    from keras_sumix.demo import format_table

    return format_table(report)


def study_table(report: dict) -> str:
    """The study's tables and plot, from `study/summary.json`."""
    from keras_sumix.study import format_markdown

    return (
        format_markdown(report, heading="####")
        + "\n\n![accuracy vs lambda fidelity](benchmarks/results/study/study.png)"
    )


TABLES = {
    "mixers": ("mixers.json", mixers_table),
    "step": ("step_overhead.json", step_table),
    "demo": ("demo/results.json", demo_table),
    "study": ("study/summary.json", study_table),
}


def main() -> None:
    """Rewrite every marked table of README.md."""
    readme = ROOT / "README.md"
    text = readme.read_text()
    for name, (filename, render) in TABLES.items():
        path = RESULTS / filename
        body = (
            render(json.loads(path.read_text()))
            if path.exists()
            else f"_Not measured yet: run the script that writes `{filename}`._"
        )
        pattern = re.compile(
            rf"(<!-- {name}:start -->\n)(?:.*?\n)?(<!-- {name}:end -->)", re.S
        )
        if not pattern.search(text):
            raise SystemExit(f"README.md has no <!-- {name}:start/end --> markers")
        text = pattern.sub(
            lambda m, body=body: m.group(1) + body + "\n" + m.group(2), text
        )
    readme.write_text(text)


if __name__ == "__main__":
    main()
