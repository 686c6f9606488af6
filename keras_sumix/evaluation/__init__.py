"""Evaluation protocols.

- Reporting: `top1_accuracy`, `median_of_last` and the `MedianTop1`
  callback (median top-1 of the last 10 epochs; 5 on ImageNet).
- Occlusion robustness: `occlusion_robustness` (top-1 per masking ratio).
- Corruption robustness: `cifar100_c_robustness` (official CIFAR-100-C),
  and a generated subset for other datasets (`corrupt`,
  `generated_corruption_robustness`; not comparable to CIFAR-100-C).
- White-box FGSM: `fgsm_error` and `input_gradient`.
- Lambda fidelity: `lam_fidelity`, `true_share`, `pearson`.
"""

from keras_sumix.evaluation.corruption import (
    CIFAR100_C_SOURCE,
    GENERATED_CORRUPTIONS,
    GENERATED_SOURCE,
    cifar100_c_robustness,
    corrupt,
    generated_corruption_robustness,
)
from keras_sumix.evaluation.fgsm import fgsm_error, input_gradient
from keras_sumix.evaluation.fidelity import lam_fidelity, pearson, true_share
from keras_sumix.evaluation.occlusion import (
    DEFAULT_OCCLUSION_RATIOS,
    occlusion_masks,
    occlusion_robustness,
)
from keras_sumix.evaluation.reporting import MedianTop1, median_of_last, top1_accuracy

__all__ = [
    "CIFAR100_C_SOURCE",
    "DEFAULT_OCCLUSION_RATIOS",
    "GENERATED_CORRUPTIONS",
    "GENERATED_SOURCE",
    "MedianTop1",
    "cifar100_c_robustness",
    "corrupt",
    "fgsm_error",
    "generated_corruption_robustness",
    "input_gradient",
    "lam_fidelity",
    "median_of_last",
    "occlusion_masks",
    "occlusion_robustness",
    "pearson",
    "top1_accuracy",
    "true_share",
]
