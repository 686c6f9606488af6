"""What every benchmark script does last: write its report as JSON, and as
Markdown next to it (same name, `.md`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path


def write_report(
    report: dict, output: Path, markdown: Callable[[dict], str], indent: int = 2
) -> str:
    """Write `report` to `output` (JSON) and `markdown(report)` next to it.

    Args:
        report: the benchmark's results (JSON-serialisable).
        output: the `.json` path; its folder is created if missing.
        markdown: renders the report as Markdown.
        indent: JSON indentation.

    Returns:
        The Markdown written (the scripts print it).
    """
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=indent) + "\n")
    text = markdown(report)
    output.with_suffix(".md").write_text(text)
    return text
