"""Evaluation protocols."""

from keras_sumix.evaluation.fidelity import kept_mask, lam_fidelity, pearson

__all__ = ["kept_mask", "lam_fidelity", "pearson"]
