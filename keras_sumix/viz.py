"""Pictures of what the mixers do (matplotlib, no display needed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from keras_sumix.layers.base import MixResult


def _to_numpy(x: Any) -> np.ndarray:
    import keras

    return np.asarray(keras.ops.convert_to_numpy(x))


def mix_grid(
    images: Any,
    results: Mapping[str, MixResult],
    path: str | Path,
    annotations: Mapping[str, Mapping[str, Sequence[float]]] | None = None,
    data_format: str = "channels_last",
) -> Path:
    """Save a PNG grid: the clean batch, then one row per mixer, each mixed
    image captioned with its lam (and any extra per-sample values).

    Args:
        images: the clean batch `(N, H, W, C)` (values in [0, 1] or [0, 255]).
        results: row name -> the `MixResult` of mixing `images`.
        path: output PNG path (parent folders are created).
        annotations: optional row name -> {label: per-sample values}, drawn
            under lam (e.g. `{"CutMix": {"true": [...], "sumix": [...]}}`).
        data_format: layout of `images` and of the results' images.

    Returns:
        The path written.

    Example:

    >>> import numpy as np, keras_sumix
    >>> x = np.random.rand(4, 16, 16, 3)
    >>> res = {"CutMix": keras_sumix.layers.CutMix(seed=0).mix(x)}
    >>> keras_sumix.viz.mix_grid(x, res, "/tmp/grid.png").name
    'grid.png'
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not results:
        raise ValueError("`results` must hold at least one mixer's MixResult.")
    annotations = annotations or {}

    def prepare(batch):
        batch = _to_numpy(batch).astype("float32")
        if data_format == "channels_first":
            batch = np.transpose(batch, (0, 2, 3, 1))
        if batch.max() > 1.5:
            batch = batch / 255.0
        batch = np.clip(batch, 0, 1)
        return batch[..., 0] if batch.shape[-1] == 1 else batch

    clean = prepare(images)
    n = clean.shape[0]
    rows = [("clean", clean, None, None, {})]
    for name, result in results.items():
        rows.append(
            (
                name,
                prepare(result.images),
                _to_numpy(result.lam),
                _to_numpy(result.permutation),
                annotations.get(name, {}),
            )
        )
    fig, axes = plt.subplots(
        len(rows), n, figsize=(1.6 * n, 1.9 * len(rows)), squeeze=False
    )
    for r, (name, batch, lam, perm, extra) in enumerate(rows):
        for i in range(n):
            ax = axes[r, i]
            ax.imshow(batch[i], cmap="gray" if batch.ndim == 3 else None)
            ax.set_xticks([])
            ax.set_yticks([])
            if lam is not None:
                lines = [f"λ={lam[i]:.2f} ←{perm[i]}"]
                lines += [f"{k}={float(v[i]):.2f}" for k, v in extra.items()]
                ax.set_xlabel("\n".join(lines), fontsize=7)
            elif r == 0:
                ax.set_title(f"#{i}", fontsize=8)
        axes[r, 0].set_ylabel(name, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
