"""Fine-tune an ImageNet ResNet-18 / ResNeXt-50 on CUB-200-2011 (the paper's
recipe: SGD lr 0.001, momentum 0.9, wd 5e-4, batch 16, 200 epochs, 224 px).

    python examples/finetune_cub.py --data-dir ~/data --weights resnet18.weights.h5
    python examples/finetune_cub.py --recipe cub-rx50 --weights rx50.weights.h5

Data: the official `CUB_200_2011/` folder (images.txt, image_class_labels.txt,
train_test_split.txt, classes.txt, images/) under `--data-dir`, from
https://www.vision.caltech.edu/datasets/cub_200_2011/ ; without it the TFDS
`caltech_birds2011` builder is used. Weights: a local Keras `.weights.h5` of
the backbone (converted ImageNet weights);
`--weights hub:resnet_18_imagenet` loads a keras_hub preset (needs
`pip install keras-hub` and a download). `--weights none` starts from
random weights and works offline. `--smoke`: a few images at 32 px.
"""

from __future__ import annotations

from _recipe_cli import run

SMOKE = {"limit": 8, "epochs": 1, "batch_size": 2, "image_size": 32}


def main(argv=None):
    return run(__doc__, ["cub-r18", "cub-rx50"], argv, SMOKE)


if __name__ == "__main__":
    main()
