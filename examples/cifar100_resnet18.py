"""CIFAR-100 with ResNet-18 (CIFAR stem), the paper's recipe: SGD lr 0.1,
momentum 0.9, wd 1e-4, batch 100, cosine, 800 epochs, pad-4 crop + flip.

    python examples/cifar100_resnet18.py --data-dir ~/tensorflow_datasets
    python examples/cifar100_resnet18.py --no-sumix          # the MCE baseline
    python examples/cifar100_resnet18.py --recipe cifar100-rx50

CIFAR-100 comes through TensorFlow Datasets (prepare it once with
`tfds build cifar100` or `load_cifar100(download=True)` on a machine with
internet). `--smoke` trains one epoch on a few images (used by the tests,
with `tfds.testing.mock_data`).
"""

from __future__ import annotations

from _recipe_cli import run

SMOKE = {"limit": 8, "epochs": 1, "batch_size": 4}


def main(argv=None):
    return run(
        __doc__, ["cifar100-r18", "cifar100-rx50", "cifar100-wrn28-8"], argv, SMOKE
    )


if __name__ == "__main__":
    main()
