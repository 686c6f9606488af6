"""DeiT-Small / Swin-Tiny on CIFAR-100 at 224 px, the paper's Table 3 recipe:
AdamW (lr 1e-3 for DeiT-S, 5e-4 for Swin-T, weight decay 0.05), 200 epochs,
batch 100, RandAugment, cosine decay after a 20-epoch warm-up, gradient
clipping at norm 5; CutMix alpha 2.0, FMix 1.0 (the paper's ViT values).

    python examples/cifar100_vit.py --data-dir ~/tensorflow_datasets
    python examples/cifar100_vit.py --recipe cifar100-swin-t --mixer fmix
    python examples/cifar100_vit.py --no-sumix          # the MCE baseline

The networks are keras-hub's (`pip install 'keras-sumix[hub]'`), trained from
scratch. CIFAR-100 comes through TensorFlow Datasets (prepare it once with
`tfds build cifar100`). `--smoke` trains one epoch on a few images at 32 px
(the tests run it with a tiny network).
"""

from __future__ import annotations

from _recipe_cli import run

SMOKE = {"limit": 8, "epochs": 1, "batch_size": 4, "image_size": 32, "warmup_epochs": 0}


def main(argv=None):
    return run(__doc__, ["cifar100-deit-s", "cifar100-swin-t"], argv, SMOKE)


if __name__ == "__main__":
    main()
