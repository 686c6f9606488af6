"""The study's report: Markdown tables (one per part) and a plot of
accuracy against lambda fidelity, from a summary (`summarise`)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

#: File names written into the output folder.
SUMMARY_FILE = "summary.json"
MARKDOWN_FILE = "study.md"
PLOT_FILE = "study.png"


def _pct(stat: dict[str, Any]) -> str:
    """`mean ± std` of a share, in percent."""
    if stat["mean"] is None:
        return "-"
    text = f"{100 * stat['mean']:.1f}"
    return text if stat["std"] is None else f"{text} ± {100 * stat['std']:.1f}"


def _num(stat: dict[str, Any], digits: int = 2) -> str:
    if stat["mean"] is None:
        return "-"
    text = f"{stat['mean']:.{digits}f}"
    return text if stat["std"] is None else f"{text} ± {stat['std']:.{digits}f}"


def _measured(row: dict[str, Any], metric: str) -> bool:
    """Whether `row` has a mean of `metric` (a measure added later is
    missing from older records)."""
    return (row.get(metric) or {}).get("mean") is not None


def _settings(summary: dict[str, Any]) -> list[str]:
    config = summary["config"]
    alpha = "the paper's per mixer" if config["alpha"] is None else config["alpha"]
    digits_limit = config.get("digits_limit")
    digits = (
        f"first {digits_limit} of each split"
        if digits_limit
        else f"{round(100 * (1 - config['digits_test_fraction']))}% of each class "
        "for training, the rest for test"
    )
    lines = [
        f"Backend {summary['backend']}; {summary['runs_found']} of "
        f"{summary['runs_expected']} runs recorded; mean ± std over seeds "
        f"{summary['seeds']} (n per row).",
        "",
        f"- Embedded occluded objects: {config['occluded_train']} training / "
        f"{config['occluded_test']} test images, 32x32, object half-size "
        f"{config['min_scale']}-{config['max_scale']} of the side, "
        f"{config['clutter']} distractor blobs; lambda fidelity on "
        f"{config['fidelity_samples']} held-out images (Pearson r and MAE of "
        "the training lam against `true_lam`).",
        f"- Digits (scikit-learn `load_digits`, 8x8 upsampled to 32x32 RGB): {digits}.",
        "- Parts A-F, S, R, N, P, G: `small_cnn`, SGD (Nesterov momentum "
        f"{config['momentum']}, "
        f"weight decay {config['weight_decay']}), LR {config['learning_rate']} "
        f"cosine-decayed to 0, {config['epochs']} epochs, batch "
        f"{config['batch_size']} unless stated; mixer alpha {alpha}.",
        *_automix_settings(summary),
        *_vit_settings(summary),
        *_fine_tune_settings(summary),
        f"- Top-1: after the last epoch, and the median of the last "
        f"{config['median_last']} epochs (the paper's protocol). Occlusion: "
        "top-1 with that share of a 4x4 grid of cells masked to 0. s/epoch: "
        "median training seconds of an epoch (evaluation excluded).",
    ]
    trained = summary.get("commands") or []
    if trained:
        lines += ["", "Runs trained by: " + ", ".join(f"`{c}`" for c in trained)]
    if summary.get("command") and summary["command"] not in trained:
        lines += ["", f"Summarised by: `{summary['command']}`"]
    return lines


def _automix_settings(summary: dict[str, Any]) -> list[str]:
    """The settings line of part G (none for a summary without it)."""
    if "G" not in summary["parts"]:
        return []
    from study.runner import AUTOMIX_FEATURE_LAYER

    return [
        f"- Part G: AutoMix reads `small_cnn`'s `{AUTOMIX_FEATURE_LAYER}` (8x8) "
        "of its momentum copy (training mode: batch norm on the batch's "
        "statistics), whose momentum follows the layer's default tied to the "
        "run's steps (from `1 - 1 / (1 % of the steps)` to 0.999999 on the "
        "cosine); its other settings are the layer's defaults (no lam "
        "channel). Lambda fidelity: held-out mixes by the trained model's mix "
        "block. Mask std: the per-pixel std of each held-out mask (0: a "
        "uniform blend). Object preference: the mean kept share on the "
        "image's object minus that on its background, in points (0: the mask "
        "ignores the objects)."
    ]


def _vit_settings(summary: dict[str, Any]) -> list[str]:
    """The settings line of part V (none for a summary without it)."""
    vit = summary.get("vit")
    rows = summary["parts"].get("V", {}).get("rows", [])
    if not vit or not rows:
        return []
    epochs = sorted({row.get("epochs") or summary["config"]["epochs"] for row in rows})
    clip = vit["clipnorm"]
    features = (
        "the class token"
        if vit.get("pooling", "class_token") == "class_token"
        else "the mean of the patch tokens"
    )
    return [
        "- Part V: a small ViT instead of `small_cnn` (keras-hub's "
        f"`ViTBackbone`, `deit_small`'s architecture, at 32x32: patch "
        f"{vit['patch_size']}, {vit['num_layers']} layers, width "
        f"{vit['hidden_dim']}, {vit['num_heads']} heads, MLP {vit['mlp_dim']}, "
        f"features = {features}), AdamW (LR {vit['learning_rate']} after "
        f"a {vit['warmup_epochs']}-epoch linear warm-up, cosine-decayed to 0, "
        f"weight decay {vit['weight_decay']}"
        + (f", gradient norm clipped at {clip:g}" if clip else "")
        + f"), {'/'.join(map(str, epochs))} epochs, batch "
        f"{summary['config']['batch_size']}.",
    ]


def _fine_tune_settings(summary: dict[str, Any]) -> list[str]:
    """The settings line of part W (none for a summary without it)."""
    settings = summary.get("fine_tune")
    rows = summary["parts"].get("W", {}).get("rows", [])
    if not settings or not rows:
        return []
    epochs = sorted({row.get("epochs") or summary["config"]["epochs"] for row in rows})
    batches = sorted({row["batch_size"] for row in rows})
    arguments = ", ".join(f"{k}={v!r}" for k, v in settings["pretrain"].items())
    alpha = "the paper's per mixer" if settings["alpha"] is None else settings["alpha"]
    return [
        "- Part W (synthetic; the stand-in for the paper's Table 2, CUB-200 / "
        "FGVC-Aircraft fine-tuning): `fine_grained_objects` (64 classes, "
        f"{settings['image_size']} px, {settings['clutter']} distractor blobs), "
        f"{settings['train_images']} training / {settings['test_images']} test "
        f"images, lambda fidelity on {settings['fidelity_samples']} held-out "
        "images; the network is the keras-hub ResNet pretrained on the "
        f"embedded coarse task by `pretrain_backbone({arguments})`, loaded "
        "with `from_hub` and "
        f"fine-tuned whole with Adam (LR {settings['learning_rate']:g}, "
        f"constant), {'/'.join(map(str, epochs))} epochs, batch "
        f"{'/'.join(map(str, batches))}, mixer alpha {alpha}.",
    ]


def format_markdown(summary: dict[str, Any], heading: str = "####") -> str:
    """The study's tables as Markdown.

    Args:
        summary: the dict `summarise` returns (or `summary.json`).
        heading: Markdown heading marker of each part's title.

    Returns:
        The settings, then one table per part.
    """
    from study.runner import MASKED_DATASETS

    ratios = summary["config"]["occlusion_ratios"]
    lines = _settings(summary)
    notes: dict[str, int] = {}
    for part in summary["parts"].values():
        rows = part["rows"]
        fidelity = any(row["dataset"] in MASKED_DATASETS for row in rows)
        last = summary["config"]["median_last"]
        header = ["method", "n", "top-1 % (final)", f"top-1 % (median of last {last})"]
        if fidelity:
            header += ["lam fidelity r", "lam MAE"]
        masks = any(_measured(row, "object_preference") for row in rows)
        if masks:
            header += ["mask std", "object preference (points)"]
        header += [f"top-1 % {100 * r:g}% occluded" for r in ratios] + ["s/epoch"]
        lines += [
            "",
            f"{heading} {part['title']}",
            "",
            "| " + " | ".join(header) + " |",
            "|" + "---|" * len(header),
        ]
        for row in rows:
            cells = [row["label"], str(row["n"])]
            if row["n"] == 0:
                lines.append(
                    "| " + " | ".join(cells + ["not run"] * (len(header) - 2)) + " |"
                )
                continue
            cells += [_pct(row["final_top1"]), _pct(row["median_top1"])]
            if fidelity:
                reason = row.get("fidelity_skipped")
                if reason:
                    mark = notes.setdefault(reason, len(notes) + 1)
                    cells += [f"n/a ({mark})", f"n/a ({mark})"]
                else:
                    cells += [_num(row["pearson"]), _num(row["mae"], 3)]
            if masks:
                cells += (
                    [_num(row["mask_std"], 3), _pct(row["object_preference"])]
                    if _measured(row, "object_preference")
                    else ["not recorded"] * 2
                )
            cells += [_pct(row["occlusion"][f"{r:g}"]) for r in ratios]
            cells.append(_num(row["seconds_per_epoch"]))
            if row.get("diverged"):
                cells[0] += f" ({row['diverged']} diverged)"
            lines.append("| " + " | ".join(cells) + " |")
    if notes:
        lines.append("")
        lines += [f"({mark}) {reason}." for reason, mark in notes.items()]
    return "\n".join(lines)


_PLOT_PARTS = ("A", "C", "D", "E", "F", "P", "G", "V", "W")


def plot(summary: dict[str, Any], path: str | Path) -> Path:
    """Accuracy against lambda fidelity: one panel per part with fidelity
    (A, C, D, E, F, P, G, V, W), one point per row (mean final top-1 against mean
    Pearson r, error bars one std over seeds).

    Args:
        summary: the dict `summarise` returns.
        path: the PNG to write.

    Returns:
        The path written.
    """
    from matplotlib.figure import Figure

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure = Figure(figsize=(21, 15), layout="constrained")
    axes = figure.subplots(3, 3).ravel()
    markers = "osD^vP*Xhp<>"
    parts = [p for p in _PLOT_PARTS if p in summary["parts"]]
    for ax in axes[len(parts) :]:
        ax.set_axis_off()
    for ax, part in zip(axes, parts, strict=False):
        rows = [
            row
            for row in summary["parts"][part]["rows"]
            if row["pearson"]["mean"] is not None
            and row["final_top1"]["mean"] is not None
        ]
        ax.set_title(textwrap.fill(summary["parts"][part]["title"], 60), fontsize=9)
        ax.set_xlabel("lam fidelity: Pearson r (training lam vs true_lam)")
        ax.set_ylabel("test top-1 (%), final epoch")
        ax.axvline(0, color="0.8", lw=0.8)
        for i, row in enumerate(rows):
            x, y = row["pearson"], row["final_top1"]
            ax.errorbar(
                x["mean"],
                100 * y["mean"],
                xerr=x["std"] or 0,
                yerr=100 * (y["std"] or 0),
                fmt=markers[i % len(markers)],
                capsize=3,
                label=row["label"],
            )
        if rows:
            ax.legend(fontsize=6.5, loc="best")
        else:
            ax.text(
                0.5,
                0.5,
                "no run with a fidelity measure yet",
                ha="center",
                transform=ax.transAxes,
            )
    figure.suptitle(
        f"SUMix study ({summary['backend']}): test top-1 against lambda fidelity, "
        "mean ± std over seeds (MixUp, ResizeMix and the digits have no fidelity "
        "measure)",
        fontsize=10,
    )
    figure.savefig(path, dpi=110)
    return path


def write_report(summary: dict[str, Any], output_dir: str | Path) -> dict[str, Path]:
    """Write `summary.json`, `study.md` and `study.png` into `output_dir`.

    Args:
        summary: the dict `summarise` returns.
        output_dir: the study's output folder.

    Returns:
        `{"summary", "markdown", "plot"}` paths.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "summary": output_dir / SUMMARY_FILE,
        "markdown": output_dir / MARKDOWN_FILE,
        "plot": output_dir / PLOT_FILE,
    }
    paths["summary"].write_text(json.dumps(summary, indent=1, allow_nan=False))
    paths["markdown"].write_text(format_markdown(summary) + "\n")
    plot(summary, paths["plot"])
    return paths
