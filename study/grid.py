"""The study's grid: the methods compared, the cells (dataset x mixer x
method x options x batch size) of each part, and the runs (cells x seeds).

Parts (`PARTS`):

- A: every method with CutMix on the embedded data (incl. the clean-pass
  control and the paper's Table 6 regulariser ablation);
- B: a subset of methods with CutMix on scikit-learn's digits (real images);
- C: the other mixers (FMix, SaliencyMix, ResizeMix, MixUp) x {MCE, SUMix,
  SUMix distance mode with each reduction} on the embedded data;
- D: a sweep of `distance_scale` (distance mode, each reduction);
- E: a sweep of `semantic_scale` (reference mode), including its default
  (the batch size) at batch 32, 64 and 128;
- F: PuzzleMix x {MCE, MCE + clean pass, SUMix as published, the distance
  mode (per-sample reduction)}, the SUMix methods also with the saliency of
  their own raw pass (`saliency_pass="raw"`) instead of a separate one, on
  the embedded data; beside the same methods with CutMix (part A's cells);
- S: the cheap step (`raw_pass_gradient=False`) against the faithful one,
  for SUMix as published and the distance mode (per-sample reduction), with
  MCE and the clean-pass control, on both datasets with CutMix, FMix and
  SaliencyMix;
- R: the regulariser with `regularizer_logits="negative"` (its logits
  `-(alpha + beta)`, which carry gradient) against the authors' form
  (`"exp"`), for SUMix as published and the distance mode (per-sample
  reduction), beside part S's cells (MCE, the clean-pass control, the
  authors' form);
- N: batch size 32 and 128 for the clean-pass control and the distance
  mode (per-sample reduction), on part S's datasets and mixers (batch 64 is
  part S's cells);
- P: `SUMixModel(variant="recommended")` as the library sets it (its
  `distance_scale`, the cheap step), beside MCE, the clean-pass control and
  the paper variant, on part S's datasets and mixers: the evidence table of
  the recommended variant;
- G: AutoMix x {MCE, SUMix as published, the distance mode (per-sample
  reduction), `variant="recommended"`} on the embedded data, beside the
  same methods with CutMix (parts A's and P's cells) and PuzzleMix (part
  F's, without the recommended variant); its runs also record the held-out
  masks' per-pixel std and object preference;
- V: MCE, SUMix as published and the distance mode (per-sample reduction)
  with CutMix on the embedded data, trained with a small vision transformer
  instead of `small_cnn` (`STUDY_VIT`; its own optimizer and `V_EPOCHS`);
- T: TransMix (`label_lam="attention"`: the class token's attention lam)
  with MCE and with SUMix as published, beside part V's CutMix MCE, on the
  same small ViT and data.
- L: DecoupleMix's decoupled regulariser (`decouple_weight=0.1`, the
  reference's) on MCE and on `variant="recommended"`, beside both without
  it (part P's cells), with CutMix and FMix on the embedded data.
- M: ManifoldMix (MixUp of hidden features at a drawn stage) x {MCE, SUMix
  as published, `variant="recommended"`} on the embedded data (CNN); no
  lambda fidelity (the mix has no pixel mask).
- W: fine-tuning a pretrained start (`backbone="pretrained"`:
  `keras_sumix.models.pretrain_backbone`'s keras-hub ResNet, loaded with
  `from_hub`) on the fine-grained embedded data (`fine_grained_objects`, 64
  classes, with masks) with CutMix and FMix x {MCE, the clean-pass control,
  SUMix as published, `variant="recommended"`} (`STUDY_FINE_TUNE`,
  `W_EPOCHS`): the stand-in for the paper's Table 2.

A cell shared by two parts (e.g. SUMix's default in A and in E) is one set
of runs, recorded once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from keras_sumix._validation import check_choice, check_int
from keras_sumix.layers import registry
from keras_sumix.losses import DEFAULT_DISTANCE_SCALE
from study.config import STUDY_VIT, StudyConfig, check_seeds

#: The `distance_scale` of the distance-mode methods in parts A-C: the
#: library's default when the study was run. Part D sweeps it, and moved the
#: library's default (`DEFAULT_DISTANCE_SCALE`) to 4.
STUDY_DISTANCE_SCALE = 2.0

#: The `decouple_weight` of the DecoupleMix methods (part L): the eta of the
#: reference's base configs.
DECOUPLE_WEIGHT = 0.1

#: The networks a cell can train: `small_cnn` (parts A-F) or the small ViT of
#: part V (`study.config.STUDY_VIT`).
BACKBONES = ("cnn", "vit", "pretrained")

#: The datasets; `"fine_grained"` (part W) is fine-tuned from the pretrained
#: start only (`study.config.FineTuneSettings`).
DATASETS = ("occluded", "digits", "fine_grained")
#: The mixers a cell may use: every registered one (`layers.registry`).
MIXER_NAMES = tuple(registry.names())
#: Display names of the mixers.
MIXER_LABELS = {name: registry.label(name) for name in MIXER_NAMES}


@dataclass(frozen=True)
class Method:
    """A training method: `MixupModel` (`sumix=False`) or `SUMixModel` with
    `options`.

    Attributes:
        label: display name. sumix: SUMixModel or MixupModel.
        options: the model's keyword arguments, as `(name, value)` pairs.
    """

    label: str
    sumix: bool = True
    options: tuple[tuple[str, Any], ...] = ()

    def option(self, name: str, default: Any = None) -> Any:
        """One of `options`, or `default`."""
        return dict(self.options).get(name, default)


#: The methods of the study, by key.
METHODS: dict[str, Method] = {
    "mce": Method("MCE (MixupModel)", sumix=False),
    "mce_clean": Method(
        "MCE + clean pass, no loss (area, regularizer none)",
        options=(("lambda_mode", "area"), ("regularizer", "none")),
    ),
    "sumix": Method("SUMix reference / reduction reference (paper default)"),
    "sumix_ps": Method(
        "SUMix reference / reduction per_sample",
        options=(("reduction", "per_sample"),),
    ),
    "distance": Method(
        "SUMix distance / reduction reference",
        options=(("lambda_mode", "distance"),),
    ),
    "distance_ps": Method(
        "SUMix distance / reduction per_sample",
        options=(("lambda_mode", "distance"), ("reduction", "per_sample")),
    ),
    "area": Method(
        "SUMix area (regulariser alone)",
        options=(("lambda_mode", "area"),),
    ),
    "reg_none": Method(
        "Table 6: reference, regularizer none",
        options=(("regularizer", "none"),),
    ),
    "reg_semantic": Method(
        "Table 6: reference, regularizer semantic",
        options=(("regularizer", "semantic"),),
    ),
    "reg_uncertainty": Method(
        "Table 6: reference, regularizer uncertainty",
        options=(("regularizer", "uncertainty"),),
    ),
    "sumix_fast": Method(
        "SUMix reference / reduction reference, the cheap step "
        "(raw_pass_gradient=False)",
        options=(("raw_pass_gradient", False),),
    ),
    "distance_ps_fast": Method(
        "SUMix distance / reduction per_sample, the cheap step "
        "(raw_pass_gradient=False)",
        options=(
            ("lambda_mode", "distance"),
            ("reduction", "per_sample"),
            ("raw_pass_gradient", False),
        ),
    ),
    "sumix_neg": Method(
        "SUMix reference / reduction reference, regulariser logits -(alpha + beta)",
        options=(("regularizer_logits", "negative"),),
    ),
    "distance_ps_neg": Method(
        "SUMix distance / reduction per_sample, regulariser logits -(alpha + beta)",
        options=(
            ("lambda_mode", "distance"),
            ("reduction", "per_sample"),
            ("regularizer_logits", "negative"),
        ),
    ),
    "recommended": Method(
        'SUMixModel(variant="recommended")',
        options=(("variant", "recommended"),),
    ),
    "transmix": Method(
        "TransMix (MixupModel, label_lam='attention')",
        sumix=False,
        options=(("label_lam", "attention"),),
    ),
    "transmix_sumix": Method(
        "TransMix + SUMix as published (the attention lam corrected)",
        options=(("label_lam", "attention"),),
    ),
    "mce_decouple": Method(
        f"MCE + DecoupleMix (decouple_weight={DECOUPLE_WEIGHT:g})",
        sumix=False,
        options=(("decouple_weight", DECOUPLE_WEIGHT),),
    ),
    "recommended_decouple": Method(
        f'SUMixModel(variant="recommended") + DecoupleMix '
        f"(decouple_weight={DECOUPLE_WEIGHT:g})",
        options=(("variant", "recommended"), ("decouple_weight", DECOUPLE_WEIGHT)),
    ),
    "sumix_rs": Method(
        "SUMix reference / reduction reference, saliency of the raw pass",
        options=(("saliency_pass", "raw"),),
    ),
    "distance_ps_rs": Method(
        "SUMix distance / reduction per_sample, saliency of the raw pass",
        options=(
            ("lambda_mode", "distance"),
            ("reduction", "per_sample"),
            ("saliency_pass", "raw"),
        ),
    ),
}


@dataclass(frozen=True)
class Cell:
    """One configuration trained with every seed.

    Attributes:
        dataset: one of `DATASETS`. mixer: one of `MIXER_NAMES`.
        method: a key of `METHODS`. batch_size: training batch (None: the
            study's default). distance_scale: `t` of the distance mode
            (distance methods only; None: `STUDY_DISTANCE_SCALE`).
            semantic_scale: `s` (SUMix methods only; None: the batch size).
        backbone: one of `BACKBONES` (`"cnn"`: `small_cnn`; `"pretrained"`
            with `"fine_grained"` only). epochs:
            training epochs (None: the study's, `StudyConfig.epochs`).
    """

    dataset: str
    mixer: str
    method: str
    batch_size: int | None = None
    distance_scale: float | None = None
    semantic_scale: float | None = None
    backbone: str = "cnn"
    epochs: int | None = None

    def __post_init__(self) -> None:
        check_choice("dataset", self.dataset, DATASETS)
        check_choice("mixer", self.mixer, MIXER_NAMES)
        check_choice("method", self.method, tuple(METHODS))
        check_int("batch_size", self.batch_size, 2, allow_none=True)
        check_choice("backbone", self.backbone, BACKBONES)
        check_int("epochs", self.epochs, 1, allow_none=True)
        if (self.dataset == "fine_grained") != (self.backbone == "pretrained"):
            raise ValueError(
                "The fine-grained data are fine-tuned from the pretrained "
                "start, and the pretrained start only on them: use "
                "dataset='fine_grained' with backbone='pretrained'. Received: "
                f"dataset={self.dataset!r}, backbone={self.backbone!r}."
            )
        method = METHODS[self.method]
        if self.distance_scale is not None and (
            method.option("lambda_mode") != "distance"
        ):
            raise ValueError(
                "`distance_scale` applies to distance-mode methods only. "
                f"Received: distance_scale={self.distance_scale!r} for "
                f"method={self.method!r}."
            )
        if self.semantic_scale is not None and not method.sumix:
            raise ValueError(
                "`semantic_scale` applies to SUMix methods only. Received: "
                f"semantic_scale={self.semantic_scale!r} for method={self.method!r}."
            )
        if method.option("label_lam") == "attention" and self.backbone != "vit":
            raise ValueError(
                f"method={self.method!r} (TransMix) reads the class token's "
                "attention of the ViT. Received: backbone="
                f"{self.backbone!r}; use backbone='vit'."
            )
        if method.option("saliency_pass") == "raw" and not (
            registry.mixer_class(self.mixer).needs_saliency
        ):
            raise ValueError(
                f"method={self.method!r} takes the saliency of a mixer that "
                "needs one (PuzzleMix) from the raw pass. Received: "
                f"mixer={self.mixer!r}, which takes none."
            )

    def resolved(self, config: StudyConfig) -> Cell:
        """The cell with its defaults filled in (batch size, distance scale;
        epochs equal to the study's become None), so that equal
        configurations have equal keys."""
        distance = self.distance_scale
        if distance is None and METHODS[self.method].option("lambda_mode") == (
            "distance"
        ):
            distance = STUDY_DISTANCE_SCALE
        return Cell(
            self.dataset,
            self.mixer,
            self.method,
            self.batch_size or config.batch_size,
            None if distance is None else float(distance),
            None if self.semantic_scale is None else float(self.semantic_scale),
            self.backbone,
            None if self.epochs == config.epochs else self.epochs,
        )

    def run_epochs(self, config: StudyConfig) -> int:
        """The epochs a run of the cell trains (its own, else the study's)."""
        return self.epochs or config.epochs

    @property
    def key(self) -> str:
        """A stable id: dataset|mixer|method|b<batch>[|t<t>][|s<s>][|<backbone>]
        [|e<epochs>] (call it on a `resolved` cell). The backbone and the
        epochs appear only when they are not the defaults (`"cnn"`, the
        study's), so the keys of the CNN cells are those they were recorded
        under before the backbone was a dimension."""
        parts = [self.dataset, self.mixer, self.method, f"b{self.batch_size}"]
        if self.distance_scale is not None:
            parts.append(f"t{self.distance_scale:g}")
        if self.semantic_scale is not None:
            parts.append(f"s{self.semantic_scale:g}")
        if self.backbone != "cnn":
            parts.append(self.backbone)
        if self.epochs is not None:
            parts.append(f"e{self.epochs}")
        return "|".join(parts)

    def model_options(self) -> dict[str, Any]:
        """The model's keyword arguments of the cell (empty for MCE)."""
        options = dict(METHODS[self.method].options)
        if self.distance_scale is not None:
            options["distance_scale"] = self.distance_scale
        if self.semantic_scale is not None:
            options["semantic_scale"] = self.semantic_scale
        return options


@dataclass(frozen=True)
class Entry:
    """A cell as a part shows it: a row label and the cell."""

    label: str
    cell: Cell


@dataclass(frozen=True)
class RunSpec:
    """One training run: a resolved cell and a seed.

    Attributes:
        part: the first part that lists the cell. label: its row label there.
        cell: the resolved cell. seed: the run's seed.
    """

    part: str
    label: str
    cell: Cell
    seed: int = field(default=0)

    @property
    def key(self) -> str:
        """The cell's key and the seed."""
        return f"{self.cell.key}|seed{self.seed}"


#: Titles of the parts.
PARTS: dict[str, str] = {
    "A": "A. Methods (CutMix, embedded occluded objects)",
    "B": "B. Real images (CutMix, scikit-learn digits)",
    "C": "C. Other mixers (embedded occluded objects)",
    "D": "D. distance_scale sweep (distance mode, both reductions, CutMix, embedded)",
    "E": "E. semantic_scale sweep (reference mode, CutMix, embedded)",
    "F": (
        "F. PuzzleMix (saliency from a separate pass, or from SUMix's raw "
        "pass), beside CutMix (embedded)"
    ),
    "S": (
        "S. The cheap step (raw_pass_gradient=False) against the faithful one "
        "(CutMix, FMix, SaliencyMix; embedded and digits)"
    ),
    "R": (
        "R. The regulariser's logits: -(alpha + beta) against the authors' "
        "exp(-(alpha + beta)) (CutMix, FMix, SaliencyMix; embedded and digits)"
    ),
    "N": (
        "N. Batch size 32, 64 and 128: the clean-pass control and the "
        "distance mode (CutMix, FMix, SaliencyMix; embedded and digits)"
    ),
    "P": (
        'P. SUMixModel(variant="recommended") beside MCE, the clean-pass '
        "control and the paper (CutMix, FMix, SaliencyMix; embedded and digits)"
    ),
    "G": ("G. AutoMix (a learned mixer), beside CutMix and PuzzleMix (embedded)"),
    "V": (
        f"V. Vision transformer (small ViT: {STUDY_VIT.num_layers} layers, width "
        f"{STUDY_VIT.hidden_dim}, {STUDY_VIT.num_heads} heads, patch "
        f"{STUDY_VIT.patch_size}; AdamW; CutMix, embedded)"
    ),
    "T": (
        "T. TransMix: the class token's attention lam, with MCE and with "
        "SUMix, beside CutMix MCE (part V's small ViT, embedded)"
    ),
    "L": (
        "L. DecoupleMix (the decoupled regulariser) on MCE and on the "
        "recommended variant (CutMix, FMix; embedded)"
    ),
    "M": (
        "M. ManifoldMix (hidden features mixed at a drawn stage) with MCE, "
        "SUMix and the recommended variant (embedded)"
    ),
    "W": (
        "W. Fine-tuning a pretrained start on the fine-grained data (CutMix, "
        "FMix; the stand-in for the paper's Table 2)"
    ),
}

_A_METHODS = (
    "mce",
    "mce_clean",
    "sumix",
    "sumix_ps",
    "distance",
    "distance_ps",
    "area",
    "reg_none",
    "reg_semantic",
    "reg_uncertainty",
)
_B_METHODS = (
    "mce",
    "mce_clean",
    "sumix",
    "sumix_ps",
    "distance",
    "distance_ps",
    "area",
)
_C_MIXERS = ("fmix", "saliencymix", "resizemix", "mixup")
_C_METHODS = ("mce", "sumix", "distance", "distance_ps")
_D_SCALES = (0.5, 1.0, 2.0, 4.0, 8.0)
_E_SCALES = (1.0, 4.0, 16.0, 256.0)
_E_BATCHES = (32, 128)
_F_METHODS = ("mce", "mce_clean", "sumix", "distance_ps")
_F_RAW_SALIENCY = ("sumix_rs", "distance_ps_rs")
_S_MIXERS = ("cutmix", "fmix", "saliencymix")
#: Parts S, R, N and P's datasets.
_S_DATASETS = ("occluded", "digits")
_S_METHODS = (
    "mce",
    "mce_clean",
    "sumix",
    "sumix_fast",
    "distance_ps",
    "distance_ps_fast",
)
_R_METHODS = (
    "mce",
    "mce_clean",
    "sumix",
    "sumix_neg",
    "distance_ps",
    "distance_ps_neg",
)
#: Part N's methods: the distance mode and its control, the clean pass (MCE
#: is in part S, at batch 64 only, to keep the whole study under 3 hours).
_N_METHODS = ("mce_clean", "distance_ps")
_N_BATCHES = (32, 64, 128)
_P_METHODS = ("mce", "mce_clean", "sumix", "recommended")
#: The options of `variant="recommended"` when part P trained it: a test
#: holds `keras_sumix.models.variants.VARIANTS["recommended"]` to them, since
#: the cells' keys name the variant, not its options (a changed variant needs
#: a new method key, and new runs).
P_VARIANT = {
    "lambda_mode": "distance",
    "regularizer": "both",
    "distance_scale": 4.0,
    "reduction": "per_sample",
    "raw_pass_gradient": False,
    "regularizer_logits": "exp",
}
_G_METHODS = ("mce", "sumix", "distance_ps")
#: Part L's mixers and methods (MCE and the recommended variant are part P's).
_L_MIXERS = ("cutmix", "fmix")
_L_METHODS = ("mce", "mce_decouple", "recommended", "recommended_decouple")
_G_MIXERS = ("cutmix", "puzzlemix", "automix")
_V_METHODS = ("mce", "sumix", "distance_ps")
#: Part M's methods (ManifoldMix).
_M_METHODS = ("mce", "sumix", "recommended")
#: Part T's methods (its MCE cell is part V's).
_T_METHODS = ("mce", "transmix", "transmix_sumix")
#: Epochs of part V's runs (None: the study's, `StudyConfig.epochs`).
V_EPOCHS: int | None = None
#: Part W's mixers and methods, its batch (the notebook's) and epochs.
_W_MIXERS = ("cutmix", "fmix")
_W_METHODS = ("mce", "mce_clean", "sumix", "recommended")
W_BATCH_SIZE = 32
W_EPOCHS = 6


def _label(method: str) -> str:
    return METHODS[method].label


def _across_datasets_and_mixers(methods: tuple[str, ...]) -> list[Entry]:
    """`methods` on both datasets with part S's mixers (parts S, R, P)."""
    return [
        Entry(f"{dataset}, {MIXER_LABELS[x]}: {_label(m)}", Cell(dataset, x, m))
        for dataset in _S_DATASETS
        for x in _S_MIXERS
        for m in methods
    ]


def _full_part(part: str, config: StudyConfig) -> list[Entry]:
    if part == "A":
        return [Entry(_label(m), Cell("occluded", "cutmix", m)) for m in _A_METHODS]
    if part == "B":
        return [Entry(_label(m), Cell("digits", "cutmix", m)) for m in _B_METHODS]
    if part == "C":
        return [
            Entry(f"{MIXER_LABELS[x]}: {_label(m)}", Cell("occluded", x, m))
            for x in _C_MIXERS
            for m in _C_METHODS
        ]
    if part in ("V", "T"):
        return [
            Entry(
                _label(m),
                Cell("occluded", "cutmix", m, backbone="vit", epochs=V_EPOCHS),
            )
            for m in (_V_METHODS if part == "V" else _T_METHODS)
        ]
    if part == "F":
        return [
            Entry(f"{MIXER_LABELS[x]}: {_label(m)}", Cell("occluded", x, m))
            for x in ("cutmix", "puzzlemix")
            for m in _F_METHODS
        ] + [
            Entry(
                f"{MIXER_LABELS['puzzlemix']}: {_label(m)}",
                Cell("occluded", "puzzlemix", m),
            )
            for m in _F_RAW_SALIENCY
        ]
    if part == "S":
        return _across_datasets_and_mixers(_S_METHODS)
    if part == "L":
        return [
            Entry(f"{MIXER_LABELS[x]}: {_label(m)}", Cell("occluded", x, m))
            for x in _L_MIXERS
            for m in _L_METHODS
        ]
    if part == "M":
        return [
            Entry(f"ManifoldMix: {_label(m)}", Cell("occluded", "manifoldmix", m))
            for m in _M_METHODS
        ]
    if part == "W":
        return [
            Entry(
                f"{MIXER_LABELS[x]}: {_label(m)}",
                Cell(
                    "fine_grained",
                    x,
                    m,
                    W_BATCH_SIZE,
                    backbone="pretrained",
                    epochs=W_EPOCHS,
                ),
            )
            for x in _W_MIXERS
            for m in _W_METHODS
        ]
    if part == "R":
        return _across_datasets_and_mixers(_R_METHODS)
    if part == "P":
        return _across_datasets_and_mixers(_P_METHODS)
    if part == "G":
        return [
            Entry(f"{MIXER_LABELS[x]}: {_label(m)}", Cell("occluded", x, m))
            for x in _G_MIXERS
            for m in _G_METHODS
        ] + [
            # Part P's CutMix cell, and AutoMix with the recommended variant.
            Entry(
                f"{MIXER_LABELS[x]}: {_label('recommended')}",
                Cell("occluded", x, "recommended"),
            )
            for x in ("cutmix", "automix")
        ]
    if part == "N":
        return [
            Entry(
                f"{dataset}, {MIXER_LABELS[x]}, batch {b}: {_label(m)}",
                Cell(dataset, x, m, batch_size=b),
            )
            for dataset in _S_DATASETS
            for x in _S_MIXERS
            for b in _N_BATCHES
            for m in _N_METHODS
        ]
    if part == "D":
        return [
            Entry(
                f"{name}, t={t:g}"
                + (" (parts A-C)" if t == STUDY_DISTANCE_SCALE else "")
                + (" (library default)" if t == DEFAULT_DISTANCE_SCALE else ""),
                Cell("occluded", "cutmix", method, distance_scale=t),
            )
            for method, name in (
                ("distance", "distance"),
                ("distance_ps", "distance per_sample"),
            )
            for t in _D_SCALES
        ]
    batch = config.batch_size
    entries = [
        Entry(
            f"s = batch size ({batch}), the default",
            Cell("occluded", "cutmix", "sumix", batch_size=batch),
        )
    ]
    entries += [
        Entry(
            f"s={s:g}, batch {batch}",
            Cell("occluded", "cutmix", "sumix", batch, semantic_scale=s),
        )
        for s in _E_SCALES
    ]
    entries += [
        Entry(
            f"s = batch size ({b}), the default",
            Cell("occluded", "cutmix", "sumix", batch_size=b),
        )
        for b in _E_BATCHES
    ]
    return entries


def _quick_part(part: str, config: StudyConfig) -> list[Entry]:
    """A few cells per part that together take every code path: each
    `(label prefix, dataset, mixer, method, Cell options)`, labelled with
    the prefix and the method's label unless `label=` says otherwise."""
    half = max(config.batch_size // 2, 2)
    cells = {
        "A": [("", "occluded", "cutmix", m, {}) for m in ("mce", "distance_ps")],
        "B": [("", "digits", "cutmix", "sumix", {})],
        "C": [("ResizeMix: ", "occluded", "resizemix", "sumix", {})],
        "D": [
            ("", "occluded", "cutmix", "distance", {"distance_scale": 4.0}),
        ],
        "E": [
            (
                "",
                "occluded",
                "cutmix",
                "sumix",
                {"batch_size": half, "semantic_scale": 4.0},
            ),
        ],
        "F": [("PuzzleMix: ", "occluded", "puzzlemix", "distance_ps_rs", {})],
        "S": [("digits, FMix: ", "digits", "fmix", "distance_ps_fast", {})],
        "R": [
            (
                "occluded, SaliencyMix: ",
                "occluded",
                "saliencymix",
                "distance_ps_neg",
                {},
            )
        ],
        "N": [
            (
                f"digits, CutMix, batch {half}: ",
                "digits",
                "cutmix",
                "distance_ps",
                {"batch_size": half},
            )
        ],
        "P": [("digits, SaliencyMix: ", "digits", "saliencymix", "recommended", {})],
        "G": [("AutoMix: ", "occluded", "automix", "sumix", {})],
        "V": [
            ("", "occluded", "cutmix", m, {"backbone": "vit"})
            for m in ("mce", "distance_ps")
        ],
        "T": [("", "occluded", "cutmix", "transmix_sumix", {"backbone": "vit"})],
        "L": [("FMix: ", "occluded", "fmix", "recommended_decouple", {})],
        "M": [("ManifoldMix: ", "occluded", "manifoldmix", "sumix", {})],
        "W": [
            (
                "CutMix: ",
                "fine_grained",
                "cutmix",
                "recommended",
                {"backbone": "pretrained", "epochs": 1},
            )
        ],
    }
    labels = {"D": "distance, t=4", "E": f"s=4, batch {half}"}
    return [
        Entry(
            labels.get(part, prefix + _label(method)),
            Cell(dataset, mixer, method, **options),
        )
        for prefix, dataset, mixer, method, options in cells[part]
    ]


def check_parts(parts: Any) -> tuple[str, ...]:
    """Validate part names (None: all, in order).

    Args:
        parts: a sequence of names in `PARTS` (case-insensitive), or None.

    Returns:
        The parts, upper-case, in the order of `PARTS`.
    """
    if parts is None:
        return tuple(PARTS)
    if isinstance(parts, str):
        parts = [parts]
    if not hasattr(parts, "__iter__"):
        raise TypeError(
            f"`parts` must be a sequence of part names. Received: parts={parts!r}."
        )
    names = []
    for part in parts:
        name = part.upper() if isinstance(part, str) else part
        if name not in PARTS:
            raise ValueError(
                f"`parts` must name parts among {tuple(PARTS)}. Received: "
                f"parts={list(parts)!r}."
            )
        names.append(name)
    if not names:
        raise ValueError("`parts` must name at least one part. Received: [].")
    return tuple(p for p in PARTS if p in names)


def part_entries(part: str, config: StudyConfig) -> list[Entry]:
    """The rows of one part, cells resolved (defaults filled in).

    Args:
        part: a name in `PARTS`.
        config: the study's config (`quick` picks the quick grid).

    Returns:
        The part's entries, in display order.
    """
    (part,) = check_parts([part])
    build = _quick_part if config.quick else _full_part
    return [Entry(e.label, e.cell.resolved(config)) for e in build(part, config)]


def build_grid(
    config: StudyConfig,
    parts: Any = None,
    seeds: Any = None,
) -> list[RunSpec]:
    """The runs of the selected parts, each run once (a cell shared by two
    parts belongs to the first), ordered part by part, then seed by seed.

    Args:
        config: the study's config.
        parts: part names (None: all).
        seeds: seeds (None: `config.seeds`).

    Returns:
        The runs.
    """
    parts = check_parts(parts)
    seeds = config.seeds if seeds is None else check_seeds(seeds)
    runs, seen = [], set()
    for part in parts:
        entries = part_entries(part, config)
        for seed in seeds:
            for entry in entries:
                run = RunSpec(part, entry.label, entry.cell, seed)
                if run.key not in seen:
                    seen.add(run.key)
                    runs.append(run)
    return runs
