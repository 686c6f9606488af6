"""The embedded fine-grained dataset: one kind of bird, 64 species that differ
in small details, on cluttered backgrounds, with masks.

Every image shows the same coarse object (an oval body, a round head, a
wedge of tail) at a random position, size and facing. What tells the 64
classes apart is what tells birds apart in CUB-200: the pattern of the body
(plain, barred, spotted, two-tone), the colour of the head and the colour of
the tail, 4 x 4 x 4 combinations. The head and the tail are small, so a box
that cuts one of them out removes what the label depends on: the label
mismatch that SUMix targets, in the setting of fine-grained fine-tuning.
Generated with NumPy, vectorised over the batch and seeded like
`occluded_objects`; the object mask of every image is returned, so the true
label share of a mix is known (`true_lam`).
"""

from __future__ import annotations

import numpy as np

from keras_sumix._validation import check_int
from keras_sumix.data.occluded import (
    OccludedObjects,
    cluttered_background,
    pixel_grid,
)

PATTERNS = ("plain", "barred", "spotted", "two_tone")
HEAD_COLOURS = {
    "red": (0.85, 0.12, 0.12),
    "yellow": (0.95, 0.85, 0.1),
    "blue": (0.15, 0.35, 0.9),
    "white": (0.96, 0.96, 0.96),
}
TAIL_COLOURS = {
    "black": (0.05, 0.05, 0.05),
    "orange": (0.95, 0.5, 0.05),
    "green": (0.1, 0.6, 0.2),
    "violet": (0.55, 0.2, 0.7),
}
FINE_GRAINED_NUM_CLASSES = len(PATTERNS) * len(HEAD_COLOURS) * len(TAIL_COLOURS)
FINE_GRAINED_CLASS_NAMES = tuple(
    f"{pattern}_{head}_head_{tail}_tail"
    for pattern in PATTERNS
    for head in HEAD_COLOURS
    for tail in TAIL_COLOURS
)
_BODY = np.array((0.55, 0.4, 0.25), "float32")  # every species: a brown body


def fine_grained_objects(
    num_images: int, image_size: int = 64, seed: int = 0, clutter: int = 10
) -> OccludedObjects:
    """Generate the embedded fine-grained dataset (64 classes).

    Class `label` is `(pattern, head colour, tail colour)` =
    `(label // 16, label // 4 % 4, label % 4)` over `PATTERNS`,
    `HEAD_COLOURS` and `TAIL_COLOURS`; `FINE_GRAINED_CLASS_NAMES[label]` names
    it. Within a class, position, size (half-length 22-32 % of the side),
    facing (left or right), the body's shade and the background vary. Same
    seed, same data.

    Args:
        num_images: number of images (0 gives empty arrays).
        image_size: side in pixels, at least 32. Defaults to 64 (fine-tuning
            sizes are 64 to 96).
        seed: seed of the generator, a non-negative integer.
        clutter: distractor blobs per image (neutral tones).

    Returns:
        An `OccludedObjects(images, labels, masks)`: float32 images in
        [0, 1], int32 labels in `[0, 64)`, bool object masks (body, head and
        tail).

    Example:

    >>> from keras_sumix.data import fine_grained_objects
    >>> data = fine_grained_objects(8, seed=1)
    >>> data.images.shape, data.labels.shape, data.masks.shape
    ((8, 64, 64, 3), (8,), (8, 64, 64))
    """
    check_int("num_images", num_images, 0)
    check_int("image_size", image_size, 32)
    check_int("seed", seed, 0)
    check_int("clutter", clutter, 0)
    rng = np.random.default_rng(seed)
    n, size = num_images, image_size
    labels = rng.integers(0, FINE_GRAINED_NUM_CLASSES, n).astype("int32")
    pattern, head, tail = labels // 16, labels // 4 % 4, labels % 4
    ys, xs = pixel_grid(size)
    images = cluttered_background(rng, n, size, clutter)

    # Geometry: body half-axes (a, b), facing d (+1: head on the right).
    a = ((0.22 + 0.1 * rng.random(n)) * size).astype("float32")[:, None, None]
    b = 0.55 * a
    facing = np.where(rng.random(n) < 0.5, -1.0, 1.0).astype("float32")[:, None, None]
    reach = 1.9 * a  # the bird spans about [-1.5 a, 1.4 a] along its axis
    cy = b + 0.4 * b + rng.random((n, 1, 1), dtype="float32") * (size - 2.8 * b)
    cx = reach * 0.8 + rng.random((n, 1, 1), dtype="float32") * (size - 1.6 * reach)
    along = facing * (xs - cx)  # towards the head
    across = ys - cy
    body = (along / a) ** 2 + (across / b) ** 2 <= 1.0
    head_r = 0.42 * b
    head_mask = (along - 0.95 * a) ** 2 + (across + 0.35 * b) ** 2 <= head_r**2
    behind = -along - 0.8 * a
    tail_mask = (behind >= 0) & (behind <= 0.7 * a)
    tail_mask = tail_mask & (np.abs(across) <= 0.12 * b + 0.6 * behind)
    masks = body | head_mask | tail_mask

    # Colours: the body's shade varies per image; the pattern darkens part of
    # it (bars across the body, a grid of spots, or its lower half lightened).
    shade = (0.85 + 0.3 * rng.random((n, 1, 1, 1))).astype("float32")
    body_colour = np.broadcast_to(_BODY * shade, (n, size, size, 3))
    period = a / 2.5
    barred = np.sin(np.pi * along / period) > 0.2
    spot_y = np.abs(((across / period) % 1.0) - 0.5)
    spot_x = np.abs(((along / period) % 1.0) - 0.5)
    spotted = spot_y**2 + spot_x**2 <= 0.06
    lower = across > 0.1 * b
    marked = np.select(
        [pattern[:, None, None] == k for k in range(1, 4)],
        [barred, spotted, np.zeros_like(lower)],
        default=np.zeros_like(lower),
    )
    colour = np.where(marked[..., None], body_colour * 0.45, body_colour)
    two_tone = ((pattern[:, None, None] == 3) & lower)[..., None]
    colour = np.where(two_tone, np.minimum(body_colour * 1.6, 1.0), colour)
    heads = np.array(list(HEAD_COLOURS.values()), "float32")[head][:, None, None]
    tails = np.array(list(TAIL_COLOURS.values()), "float32")[tail][:, None, None]
    colour = np.where(tail_mask[..., None], tails, colour)
    colour = np.where(head_mask[..., None], heads, colour)
    images = np.where((body | head_mask | tail_mask)[..., None], colour, images)
    return OccludedObjects(np.clip(images, 0, 1).astype("float32"), labels, masks)
