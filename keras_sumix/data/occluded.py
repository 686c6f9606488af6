"""The embedded dataset: small objects on cluttered backgrounds, with masks.

Generated procedurally (NumPy, vectorised over the batch), seeded, no
download. Every image carries the mask of its object, so the true label share
of a mixed image is computable (`true_lam`): this is where the label mismatch
that SUMix targets (a box that cuts the object out) can be measured.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from keras_sumix._validation import check_int, check_number

SHAPES = ("disc", "square", "triangle", "cross", "ring")
# Two families of object colour; the class is (shape, family).
_FAMILIES = (
    np.array([[0.95, 0.25, 0.15], [0.95, 0.55, 0.1], [0.9, 0.2, 0.5]], "float32"),
    np.array([[0.15, 0.45, 0.95], [0.1, 0.75, 0.55], [0.4, 0.25, 0.9]], "float32"),
)
OCCLUDED_NUM_CLASSES = len(SHAPES) * len(_FAMILIES)
OCCLUDED_CLASS_NAMES = tuple(
    f"{'warm' if f == 0 else 'cool'}_{s}" for s in SHAPES for f in range(2)
)


class OccludedObjects(NamedTuple):
    """A generated split.

    Attributes:
        images: float32 `(N, H, W, 3)` in [0, 1].
        labels: int32 `(N,)`, indices into the set's class names
            (`OCCLUDED_CLASS_NAMES` here, `FINE_GRAINED_CLASS_NAMES` for
            `fine_grained_objects`).
        masks: bool `(N, H, W)`, True on the object's pixels.
    """

    images: np.ndarray
    labels: np.ndarray
    masks: np.ndarray


def pixel_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column coordinates, shaped `(1, size, 1)` and `(1, 1, size)`
    to broadcast against `(N, size, size)`."""
    grid = np.arange(size, dtype="float32")
    return grid[None, :, None], grid[None, None, :]


def cluttered_background(
    rng: np.random.Generator, n: int, size: int, clutter: int
) -> np.ndarray:
    """`(n, size, size, 3)` float32 backgrounds: smooth colour gradients and
    pixel noise in muted tones, then `clutter` small grey-ish blobs per image
    (neutral tones, never an object's colour). Shared by the embedded sets;
    draws from `rng` in a fixed order (same seed, same images)."""
    ys, xs = pixel_grid(size)
    low = rng.random((n, 3, 3, 3), dtype="float32") * 0.5 + 0.2
    up = np.linspace(0, 2, size, dtype="float32")
    i0 = np.minimum(up.astype(int), 1)
    t = (up - i0)[None, :, None, None]
    rows = low[:, i0] * (1 - t) + low[:, i0 + 1] * t
    t = (up - i0)[None, None, :, None]
    background = rows[:, :, i0] * (1 - t) + rows[:, :, i0 + 1] * t
    images = background + rng.normal(0, 0.04, (n, size, size, 3)).astype("float32")
    for _ in range(clutter):
        cy, cx = rng.random((2, n, 1, 1), dtype="float32") * size
        r = (0.04 + 0.06 * rng.random((n, 1, 1), dtype="float32")) * size
        blob = (ys - cy) ** 2 + (xs - cx) ** 2 <= r * r
        tone = rng.random((n, 1, 1, 1), dtype="float32") * 0.6 + 0.2
        images = np.where(blob[..., None], tone, images)
    return images


def _shape_masks(kind, dy, dx, radius):
    """Boolean masks of each sample's shape; coordinates relative to the
    centre, `radius` the half-size, all broadcast to (N, H, W)."""
    ady, adx = np.abs(dy), np.abs(dx)
    dist = np.sqrt(dy * dy + dx * dx)
    arm = radius * 0.35
    masks = np.stack(
        [
            dist <= radius,  # disc
            np.maximum(ady, adx) <= radius * 0.85,  # square
            (dy <= radius * 0.8) & (dy >= 1.6 * adx - radius),  # triangle
            ((ady <= arm) & (adx <= radius)) | ((adx <= arm) & (ady <= radius)),
            (dist <= radius) & (dist >= radius * 0.55),  # ring
        ]
    )
    return np.take_along_axis(masks, kind[None, :, None, None], axis=0)[0]


def occluded_objects(
    num_images: int,
    image_size: int = 32,
    seed: int = 0,
    min_scale: float = 0.18,
    max_scale: float = 0.34,
    clutter: int = 6,
) -> OccludedObjects:
    """Generate the embedded dataset (10 classes: 5 shapes x 2 colour families).

    Each image holds one object at a random position and scale over a
    cluttered background (smooth colour noise and `clutter` small distractor
    blobs in neutral colours that never match an object's). Same seed, same
    data.

    Args:
        num_images: number of images (0 gives empty arrays).
        image_size: side in pixels. Defaults to 32.
        seed: seed of the generator, a non-negative integer.
        min_scale: smallest object half-size, as a share of the side.
        max_scale: largest object half-size, as a share of the side.
        clutter: distractor blobs per image.

    Returns:
        An `OccludedObjects(images, labels, masks)`.

    Example:

    >>> from keras_sumix.data import occluded_objects
    >>> data = occluded_objects(8, seed=1)
    >>> data.images.shape, data.labels.shape, data.masks.shape
    ((8, 32, 32, 3), (8,), (8, 32, 32))
    """
    check_int("num_images", num_images, 0)
    check_int("image_size", image_size, 8)
    check_int("clutter", clutter, 0)
    check_int("seed", seed, 0)
    check_number("min_scale", min_scale, low=0.0, high=0.5, include_high=False)
    check_number("max_scale", max_scale, low=0.0, high=0.5, include_high=False)
    if not 0 < min_scale <= max_scale < 0.5:
        raise ValueError(
            "Need 0 < min_scale <= max_scale < 0.5. Received: "
            f"min_scale={min_scale!r}, max_scale={max_scale!r}."
        )
    rng = np.random.default_rng(seed)
    n, size = num_images, image_size
    labels = rng.integers(0, OCCLUDED_NUM_CLASSES, n).astype("int32")
    kind, family = labels // 2, labels % 2

    ys, xs = pixel_grid(size)
    images = cluttered_background(rng, n, size, clutter)

    # The object.
    radius = (min_scale + (max_scale - min_scale) * rng.random(n)) * size
    radius = radius.astype("float32")[:, None, None]
    margin = radius * 0.6
    cy = margin + rng.random((n, 1, 1), dtype="float32") * (size - 2 * margin)
    cx = margin + rng.random((n, 1, 1), dtype="float32") * (size - 2 * margin)
    masks = _shape_masks(kind, ys - cy, xs - cx, radius)
    palette = np.stack(_FAMILIES)[family, rng.integers(0, 3, n)]
    shade = 1.0 + 0.12 * np.sin((ys + xs) * 0.9)[..., None]  # mild texture
    colour = np.clip(palette[:, None, None, :] * shade, 0, 1)
    images = np.where(masks[..., None], colour, images)
    return OccludedObjects(np.clip(images, 0, 1).astype("float32"), labels, masks)


def true_lam(
    masks: np.ndarray, permutation: np.ndarray, kept: np.ndarray
) -> np.ndarray:
    """The true label share of each mixed image of a cutting mixer.

    `true_lam = vis_a / (vis_a + vis_b)` where `vis_a` is the fraction of
    object a's pixels still visible in the mixed image (kept from image a)
    and `vis_b` that of its partner's object (pasted from image b). If
    neither object is visible the area share is the only information and
    0.5 is returned.

    Args:
        masks: bool `(N, H, W)` object masks of the clean batch.
        permutation: int `(N,)`, the mixer's pairing.
        kept: `(N, H, W)` weight of image a in each mixed pixel (1 where the
            pixel was kept from a, 0 where pasted from b; soft masks allowed).

    Returns:
        float32 `(N,)`.
    """
    masks = np.asarray(masks, dtype="float32")
    kept = np.asarray(kept, dtype="float32")
    if masks.ndim != 3 or kept.shape != masks.shape:
        raise ValueError(
            "`masks` and `kept` must both be (N, H, W). Received "
            f"{masks.shape} and {kept.shape}."
        )
    partner = masks[np.asarray(permutation)]
    return label_share(masks * kept, partner * (1 - kept), masks, partner)


def label_share(
    visible_a: np.ndarray,
    visible_b: np.ndarray,
    masks_a: np.ndarray,
    masks_b: np.ndarray,
) -> np.ndarray:
    """`vis_a / (vis_a + vis_b)` (0.5 when neither object is visible).

    Args:
        visible_a: `(N, H, W)` weight of object a's pixels in each mixed
            image (its mask, mixed as the image was, partner zeroed).
        visible_b: `(N, H, W)` the same for the partner's object.
        masks_a: `(N, H, W)` object a's masks in the clean images.
        masks_b: `(N, H, W)` the partners' object masks.

    Returns:
        float32 `(N,)`.
    """
    vis_a = visible_a.sum((1, 2)) / np.maximum(masks_a.sum((1, 2)), 1)
    vis_b = visible_b.sum((1, 2)) / np.maximum(masks_b.sum((1, 2)), 1)
    total = vis_a + vis_b
    return np.where(total > 0, vis_a / np.maximum(total, 1e-12), 0.5).astype("float32")
