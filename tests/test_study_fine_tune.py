"""The study's part W: the fine-grained embedded data (`dataset=
"fine_grained"`) fine-tuned from the pretrained start (`backbone=
"pretrained"`), its settings (`study.config.FineTuneSettings`) and its
report line. The quick study (tests/test_study.py) trains part W's quick cell;
these check what it does not: the grid, the data, the settings' record and
that the start is the preset's weights."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import BACKEND, run_once

from keras_sumix.data import FINE_GRAINED_NUM_CLASSES
from study import FULL, QUICK, Cell, RunSpec, build_grid
from study.config import (
    QUICK_FINE_TUNE,
    STUDY_FINE_TUNE,
    FineTuneSettings,
    fine_tune_settings,
)
from study.grid import W_BATCH_SIZE, W_EPOCHS, part_entries
from study.report import format_markdown
from study.runner import StudyData, backbone_settings, matching, num_classes

only_torch = run_once("torch", "the study's grid, data and settings are NumPy")


@only_torch
def test_part_w_is_four_methods_by_two_mixers_paired_by_seed():
    entries = part_entries("W", FULL)
    cells = [(e.cell.mixer, e.cell.method) for e in entries]
    assert cells == [
        (mixer, method)
        for mixer in ("cutmix", "fmix")
        for method in ("mce", "mce_clean", "sumix", "recommended")
    ]
    for entry in entries:
        cell = entry.cell
        assert (cell.dataset, cell.backbone) == ("fine_grained", "pretrained")
        assert cell.batch_size == W_BATCH_SIZE and cell.run_epochs(FULL) == W_EPOCHS
    runs = [r for r in build_grid(FULL) if r.part == "W"]
    assert len(runs) == 8 * len(FULL.seeds)
    # Paired by seed: every cell has every seed.
    for entry in entries:
        seeds = {r.seed for r in runs if r.cell == entry.cell}
        assert seeds == set(FULL.seeds)
    assert "fine_grained|fmix|sumix|b32|pretrained|e6|seed2" in {r.key for r in runs}
    (quick,) = part_entries("W", QUICK)
    assert quick.cell.backbone == "pretrained" and quick.cell.run_epochs(QUICK) == 1


@only_torch
def test_fine_grained_goes_with_the_pretrained_start_only():
    with pytest.raises(ValueError, match="backbone='pretrained'"):
        Cell("fine_grained", "cutmix", "mce")
    with pytest.raises(ValueError, match="dataset='fine_grained'"):
        Cell("occluded", "cutmix", "mce", backbone="pretrained")
    with pytest.raises(ValueError, match="pretrain"):
        FineTuneSettings(pretrain=(("widths", 3),))
    with pytest.raises(ValueError, match="train_images"):
        FineTuneSettings(train_images=1)
    assert fine_tune_settings(FULL) is STUDY_FINE_TUNE
    assert fine_tune_settings(QUICK) is QUICK_FINE_TUNE


@only_torch
def test_fine_grained_splits_have_64_classes_and_masks():
    data = StudyData(QUICK)
    size = QUICK_FINE_TUNE.image_size
    train_x, train_y = data.split("fine_grained", "train")
    test_x, _ = data.split("fine_grained", "test")
    assert train_x.shape == (QUICK_FINE_TUNE.train_images, size, size, 3)
    assert test_x.shape[0] == QUICK_FINE_TUNE.test_images
    assert not np.array_equal(train_x[:2], test_x[:2])  # other data seeds
    assert train_y.max() < FINE_GRAINED_NUM_CLASSES == num_classes("fine_grained")
    held_out = data.fidelity("fine_grained")
    assert held_out.masks.shape == (QUICK_FINE_TUNE.fidelity_samples, size, size)
    assert held_out.masks.any(axis=(1, 2)).all()
    assert data.fidelity("occluded").images.shape[1:] == (32, 32, 3)


@only_torch
def test_fine_tune_records_match_only_their_own_settings():
    settings = backbone_settings("pretrained", FULL)
    # What a run records survives JSON (the pretrain pairs become a dict).
    assert json.loads(json.dumps(settings)) == settings == STUDY_FINE_TUNE.to_dict()
    base = {"signature": FULL.signature(), "backend": "tensorflow"}
    mine = {**base, "key": "mine", "backbone": "pretrained"}
    mine["backbone_settings"] = settings
    other = {**mine, "key": "other", "backbone_settings": QUICK_FINE_TUNE.to_dict()}
    assert set(matching([mine, other], FULL, "tensorflow")) == {"mine"}


@run_once("torch", "one tiny run of the study's engine (3 s), as the quick study")
def test_pretrained_start_is_the_presets_weights_and_is_reported(tmp_path, monkeypatch):
    """The run's backbone is the pretrained preset (not random weights);
    the record carries the settings and the start; the report says what
    part W stands in for."""
    from keras_sumix.models import from_hub
    from study.runner import build_backbone, pretrained_start, train_run
    from study.summary import summarise

    pytest.importorskip("keras_hub")
    monkeypatch.setenv("KERAS_SUMIX_CACHE", str(tmp_path))
    (entry,) = part_entries("W", QUICK)
    shape = (QUICK_FINE_TUNE.image_size,) * 2 + (3,)
    start = pretrained_start(QUICK_FINE_TUNE)
    built = build_backbone(entry.cell, QUICK, shape)
    preset = from_hub(start.preset).get_weights()
    random = from_hub(start.preset, load_weights=False).get_weights()
    weights = built.get_weights()
    assert len(weights) == len(preset) > 0
    assert all(np.array_equal(a, b) for a, b in zip(weights, preset, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(random, preset, strict=True))
    record = train_run(
        RunSpec("W", entry.label, entry.cell, 0), QUICK, StudyData(QUICK)
    )
    assert record["backbone_settings"] == QUICK_FINE_TUNE.to_dict()
    assert record["pretrained_start"]["key"] == start.info["key"]
    assert record["pearson"] is not None and 0 <= record["mae"] <= 1
    markdown = format_markdown(summarise([record], QUICK, BACKEND, seeds=(0,)))
    assert "- Part W (synthetic; the stand-in for the paper's Table 2" in markdown
    assert "`pretrain_backbone(image_size=32, num_images=16" in markdown
