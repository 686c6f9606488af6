"""Tiny on-disk fixture trees in the official dataset layouts, written by the
tests (no real data is available offline)."""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

COLOURS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30)]
AIRCRAFT_CLASSES = ["Boeing 737-300", "A320", "Cessna 172", "DHC-8-100"]


def write_jpeg(path, height: int, width: int, colour) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    image = np.empty((height, width, 3), "uint8")
    image[...] = np.asarray(colour, "uint8")
    tf.io.write_file(str(path), tf.io.encode_jpeg(image, quality=98))


def write(path, lines) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")


def aircraft_tree(root):
    """`fgvc-aircraft-2013b/` under `root`; returns (trainval, test) rows."""
    base = root / "fgvc-aircraft-2013b" / "data"
    write(base / "variants.txt", AIRCRAFT_CLASSES)
    trainval = [("0034309", 0), ("0034958", 2), ("0037511", 3), ("1043122", 0)]
    test = [("2201391", 1), ("0062765", 2)]
    for name, rows in (("trainval", trainval), ("test", test)):
        write(
            base / f"images_variant_{name}.txt",
            [f"{i} {AIRCRAFT_CLASSES[c]}" for i, c in rows],
        )
        for i, c in rows:
            write_jpeg(base / "images" / f"{i}.jpg", 50, 36, COLOURS[c])
    return trainval, test


def cub_tree(tmp_path):
    """`CUB_200_2011/` under `tmp_path`; returns the class names."""
    root = tmp_path / "CUB_200_2011"
    classes = ["001.Black_footed_Albatross", "002.Laysan_Albatross", "003.Sooty"]
    write(root / "classes.txt", [f"{i + 1} {c}" for i, c in enumerate(classes)])
    # id -> (1-based class, is_train); listed out of order on purpose.
    table = {3: (3, 1), 1: (1, 1), 2: (2, 0), 10: (1, 0), 4: (2, 1)}
    images = {i: f"{classes[c - 1]}/img_{i}.jpg" for i, (c, _) in table.items()}
    write(root / "images.txt", [f"{i} {p}" for i, p in images.items()])
    write(root / "image_class_labels.txt", [f"{i} {c}" for i, (c, _) in table.items()])
    write(root / "train_test_split.txt", [f"{i} {t}" for i, (_, t) in table.items()])
    for i, (c, _) in table.items():
        write_jpeg(root / "images" / images[i], 20, 28, COLOURS[c - 1])
    return classes


def tiny_resnet_backbone(image_shape=(None, None, 3)):
    """A random-weight keras-hub ResNetBackbone (one basic block, ~76k
    parameters); needs keras-hub."""
    import keras_hub

    return keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64],
        stackwise_num_blocks=[1],
        stackwise_num_strides=[1],
        block_type="basic_block",
        use_pre_activation=False,
        image_shape=image_shape,
    )


def tiny_vit_backbone(image_size=32):
    """A random-weight keras-hub ViTBackbone (one layer, width 16)."""
    import keras_hub

    return keras_hub.models.ViTBackbone(
        image_shape=(image_size, image_size, 3),
        patch_size=8,
        num_layers=1,
        num_heads=2,
        hidden_dim=16,
        mlp_dim=32,
    )


def resnet_preset(root):
    """Save a tiny ResNet preset directory under `root`; returns its path."""
    path = root / "tiny_resnet_preset"
    tiny_resnet_backbone().save_to_preset(str(path))
    return path


def image_folder(root, classes=("cats", "dogs"), per_class=5, split=False):
    """A user's own images, one subfolder per class (`split`: under `train/`
    and `val/`), PNGs of different sizes, coloured by class; returns `root`."""
    rng = np.random.default_rng(0)
    parts = [("train", per_class), ("val", 2)] if split else [("", per_class)]
    for part, count in parts:
        for label, name in enumerate(classes):
            for i in range(count):
                height, width = (int(v) for v in rng.integers(12, 40, 2))
                image = np.empty((height, width, 3), "uint8")
                image[...] = np.asarray(COLOURS[label % len(COLOURS)], "uint8")
                path = os.path.join(root, part, name, f"{i}.png")
                os.makedirs(os.path.dirname(path), exist_ok=True)
                tf.io.write_file(path, tf.io.encode_png(image))
    return root
