"""The study (`study/`, `python -m study`), the demo (`study.demo`,
`make demo`) and the digits loader the study trains on.

The quick grid is trained once, under torch only (the fastest backend
for it here; the study is a script, not a property of a backend). The
loader, the grid's structure and the argument checks run on every backend.
"""

from __future__ import annotations

import ast
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import BACKEND, load_script

from keras_sumix.data import DIGITS_NUM_CLASSES, load_digits_split
from keras_sumix.models.pooling import token_pooling_of
from keras_sumix.models.variants import resolve_options
from study import (
    DEFAULT_OUTPUT,
    FULL,
    METHODS,
    PARTS,
    QUICK,
    RUNS_FILE,
    Cell,
    RunSpec,
    StudyConfig,
    build_grid,
    demo,
    read_records,
    run_study,
    summarise,
)
from study.command import QUICK_OUTPUT, main
from study.config import QUICK_FINE_TUNE, ROOT, STUDY_VIT, ViTSettings
from study.grid import P_VARIANT, V_EPOCHS, part_entries
from study.runner import (
    cell_of,
    evaluation_epochs,
    make_mixer,
    matching,
    measured_dataset,
)

# The quick grid runs eagerly (`QUICK.run_eagerly`): torch's eager steps
# take half of TensorFlow's here (parts A, V, G: 21 s against 38 s).
TRAINED_ON = "torch"
trained_once = pytest.mark.skipif(
    BACKEND != TRAINED_ON, reason=f"the quick study is trained once, under {TRAINED_ON}"
)


def _script(name: str):
    """Import a script of `benchmarks/` as a module."""
    return load_script(ROOT / "benchmarks" / name)


# ---------------------------------------------------------------------- #
# The digits loader (every backend; NumPy only)
# ---------------------------------------------------------------------- #
def test_digits_split_shapes_range_balance_and_determinism():
    train, test = load_digits_split("train"), load_digits_split("test")
    assert train.images.shape == (899, 32, 32, 3)
    assert test.images.shape == (898, 32, 32, 3)
    for split in (train, test):
        assert split.images.dtype == np.float32 and split.labels.dtype == np.int32
        assert split.images.min() >= 0 and split.images.max() <= 1
        assert split.images.max() == pytest.approx(1.0, abs=0.05)
        # Grey images: the three channels are equal.
        assert np.array_equal(split.images[..., 0], split.images[..., 2])
    # Stratified: each class split as round(0.5 * its size).
    counts_train = np.bincount(train.labels, minlength=DIGITS_NUM_CLASSES)
    counts_test = np.bincount(test.labels, minlength=DIGITS_NUM_CLASSES)
    totals = counts_train + counts_test
    assert totals.sum() == 1797
    assert np.array_equal(counts_test, np.round(0.5 * totals).astype(int))
    # Deterministic; another seed, another split; the size is an argument.
    again = load_digits_split("train")
    assert np.array_equal(again.images, train.images)
    assert np.array_equal(again.labels, train.labels)
    other = load_digits_split("train", seed=1)
    assert not np.array_equal(other.images, train.images)
    small = load_digits_split("test", image_size=16, test_fraction=0.8)
    assert small.images.shape == (1438, 16, 16, 3)


def test_digits_split_rejects_bad_arguments():
    with pytest.raises(ValueError, match="split"):
        load_digits_split("validation")
    with pytest.raises(ValueError, match="image_size"):
        load_digits_split("train", image_size=4)
    with pytest.raises(ValueError, match="test_fraction"):
        load_digits_split("train", test_fraction=1.0)


def test_digits_without_scikit_learn_names_the_package(monkeypatch):
    """No `study` extra: the library's digits loader asks for scikit-learn
    itself."""
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match="`pip install scikit-learn`") as error:
        load_digits_split("train")
    assert "keras-sumix[" not in str(error.value)


# ---------------------------------------------------------------------- #
# The grid (every backend; no training)
# ---------------------------------------------------------------------- #
def test_full_grid_structure():
    runs = build_grid(FULL)
    keys = [run.key for run in runs]
    assert len(keys) == len(set(keys)) == 423
    per_part = {p: sum(run.part == p for run in runs) for p in PARTS}
    # Shared cells are trained once, in the first part listing them:
    # D's default t are A's distance modes, E's default at batch 64 is A's
    # SUMix, F's CutMix rows are A's, S's shares A's, B's and C's, R's and
    # N's batch-64 rows are S's, G's CutMix and PuzzleMix rows A's, P's and F's,
    # T's MCE row V's, L's MCE and recommended rows P's (W shares none).
    expected = {
        **{"A": 30, "B": 21, "C": 48, "D": 24, "E": 18, "F": 18, "S": 66},
        **{"R": 36, "N": 72, "P": 18, "G": 12, "V": 9, "T": 6, "L": 12, "M": 9},
        "W": 24,
    }
    assert per_part == expected
    clean = METHODS["mce_clean"]
    assert dict(clean.options) == {"lambda_mode": "area", "regularizer": "none"}
    assert {run.seed for run in runs} == set(FULL.seeds)
    assert {run.cell.batch_size for run in runs} == {32, 64, 128}


def test_part_g_is_automix_beside_cutmix_and_puzzlemix():
    entries = part_entries("G", FULL)
    methods = ["mce", "sumix", "distance_ps"]
    assert [(e.cell.mixer, e.cell.method) for e in entries] == [
        (x, m) for x in ("cutmix", "puzzlemix", "automix") for m in methods
    ] + [("cutmix", "recommended"), ("automix", "recommended")]
    assert {e.cell.dataset for e in entries} == {"occluded"}
    mixer = make_mixer("automix", FULL, seed=0, steps=500)
    assert (mixer.feature_layer, mixer.momentum_steps) == ("stage2", 500)
    assert mixer.alpha == 1.0  # the paper's, for PuzzleMix and AutoMix


def test_part_f_is_puzzlemix_beside_cutmix_with_either_saliency():
    entries = part_entries("F", FULL)
    cells = [(e.cell.mixer, e.cell.method) for e in entries]
    methods = ["mce", "mce_clean", "sumix", "distance_ps"]
    assert cells == [("cutmix", m) for m in methods] + [
        ("puzzlemix", m) for m in [*methods, "sumix_rs", "distance_ps_rs"]
    ]
    options = {e.cell.method: e.cell.model_options() for e in entries}
    assert options["sumix_rs"] == {"saliency_pass": "raw"}
    assert options["distance_ps_rs"] == {
        "lambda_mode": "distance",
        "reduction": "per_sample",
        "saliency_pass": "raw",
        "distance_scale": 2.0,  # parts A-C's, so the CutMix rows are A's cells
    }
    part_a = {run.key for run in build_grid(FULL, parts=["A"])}
    runs = build_grid(FULL, parts=["A", "F"])
    assert {r.key for r in runs if r.part == "F"}.isdisjoint(part_a)
    assert all(r.cell.mixer == "puzzlemix" for r in runs if r.part == "F")
    with pytest.raises(ValueError, match="saliency of a mixer"):
        Cell("occluded", "cutmix", "sumix_rs")


def test_part_s_is_the_cheap_step_beside_the_faithful_one():
    entries = part_entries("S", FULL)
    assert len(entries) == 2 * 3 * 6
    assert {e.cell.mixer for e in entries} == {"cutmix", "fmix", "saliencymix"}
    assert {e.cell.dataset for e in entries} == {"occluded", "digits"}
    options = {e.cell.method: e.cell.model_options() for e in entries}
    assert options["sumix_fast"] == {"raw_pass_gradient": False}
    assert options["distance_ps_fast"] == {
        "lambda_mode": "distance",
        "reduction": "per_sample",
        "raw_pass_gradient": False,
        "distance_scale": 2.0,
    }
    # The faithful rows are the cells of parts A-C; only what they lack is new.
    earlier = {run.key for run in build_grid(FULL, parts=list("ABC"))}
    new = [run for run in build_grid(FULL, parts=list("ABCS")) if run.part == "S"]
    assert len(new) == 66 and not earlier & {run.key for run in new}
    assert {run.cell.method for run in new if run.cell.dataset == "occluded"} == {
        "mce_clean",
        "sumix_fast",
        "distance_ps_fast",
    }


def test_part_r_is_the_negative_regulariser_beside_part_s():
    entries = part_entries("R", FULL)
    assert len(entries) == 2 * 3 * 6
    options = {e.cell.method: e.cell.model_options() for e in entries}
    assert options["sumix_neg"] == {"regularizer_logits": "negative"}
    assert options["distance_ps_neg"] == {
        "lambda_mode": "distance",
        "reduction": "per_sample",
        "regularizer_logits": "negative",
        "distance_scale": 2.0,  # part S's, so the exp rows are its cells
    }
    earlier = {run.key for run in build_grid(FULL, parts=list("ABCS"))}
    new = [r for r in build_grid(FULL, parts=list("ABCSR")) if r.part == "R"]
    assert len(new) == 36 and not earlier & {r.key for r in new}
    assert {r.cell.method for r in new} == {"sumix_neg", "distance_ps_neg"}
    assert {e.cell.key for e in entries} - {r.cell.key for r in new} <= {
        r.cell.key for r in build_grid(FULL, parts=["S"])
    }


def test_part_n_is_three_batch_sizes_with_the_controls():
    entries = part_entries("N", FULL)
    assert len(entries) == 2 * 3 * 3 * 2
    assert {e.cell.batch_size for e in entries} == {32, 64, 128}
    assert {e.cell.method for e in entries} == {"mce_clean", "distance_ps"}
    new = [r for r in build_grid(FULL, parts=list("ABCSN")) if r.part == "N"]
    # Batch 64 is part S's cells; batches 32 and 128 are new.
    assert len(new) == 72 and {r.cell.batch_size for r in new} == {32, 128}
    assert all(r.cell.distance_scale == 2.0 for r in new if "distance" in r.key)


def test_part_p_trains_the_recommended_variant_as_the_library_sets_it():
    entries = part_entries("P", FULL)
    assert len(entries) == 2 * 3 * 4
    options = {e.cell.method: e.cell.model_options() for e in entries}
    assert options["recommended"] == {"variant": "recommended"}
    assert options["sumix"] == {}  # the paper variant
    # Its runs were made with these options (the others at their defaults):
    # a changed variant is a new cell.
    assert resolve_options("recommended") == {**resolve_options(), **P_VARIANT}
    new = [r for r in build_grid(FULL, parts=list("ABCSP")) if r.part == "P"]
    assert len(new) == 18 and {r.cell.method for r in new} == {"recommended"}
    assert all(r.cell.distance_scale is None for r in new)  # the variant's t


def _row(method, seeds, top1, dataset="occluded", pearson=0.5):
    stat = {"mean": sum(top1) / len(top1), "std": 0.0, "values": top1}
    return {
        "dataset": dataset,
        "mixer": "cutmix",
        "method": method,
        "batch_size": 64,
        "distance_scale": None,
        "semantic_scale": None,
        "n": len(top1),
        "seeds": seeds,
        "final_top1": stat,
        "pearson": {"mean": pearson},
    }


def test_variants_table_pairs_runs_by_seed():
    report = {
        "seeds": [0, 1, 2],
        "backend": "tensorflow",
        "config": {"epochs": 40, "batch_size": 64},
        "parts": {
            "S": {
                "rows": [
                    _row("mce", [0, 1, 2], [0.80, 0.90, 0.70]),
                    _row("sumix", [0, 1, 2], [0.70, 0.70, 0.70], pearson=-0.5),
                ]
            },
            # Seed 1 of the variant is missing: only seeds 0 and 2 pair.
            "P": {"rows": [_row("recommended", [0, 2], [0.85, 0.69], pearson=0.8)]},
        },
    }
    table = _script("readme_tables.py").study_variants_table(report)
    (line,) = [row for row in table.splitlines() if row.startswith("| occluded")]
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[0] == "occluded, CutMix"
    assert cells[2] == "not run"  # no clean-pass control recorded
    assert cells[4] == "77.0 ± 0.0"
    # (0.85 - 0.80, 0.69 - 0.70) -> +2.0 mean, one seed of two positive.
    assert cells[5] == "+2.0 (1/2 seeds > 0)"
    assert cells[6] == "-"
    assert cells[7] == "+7.0 (1/2 seeds > 0)"  # (+15, -1) against the paper
    assert cells[8] == "-0.50 / 0.80"


def test_part_v_is_three_methods_on_the_vit_with_every_seed():
    entries = part_entries("V", FULL)
    assert [e.cell.method for e in entries] == ["mce", "sumix", "distance_ps"]
    for entry in entries:
        cell = entry.cell
        assert (cell.dataset, cell.mixer) == ("occluded", "cutmix")
        assert cell.backbone == "vit"
        assert cell.batch_size == FULL.batch_size and cell.semantic_scale is None
        assert cell.run_epochs(FULL) == (V_EPOCHS or FULL.epochs)
        assert entry.label == METHODS[cell.method].label
    # The authors' formula as published; the distance mode at parts A-C's t.
    assert entries[1].cell.model_options() == {}
    assert entries[2].cell.model_options() == {
        "lambda_mode": "distance",
        "reduction": "per_sample",
        "distance_scale": 2.0,
    }
    runs = build_grid(FULL, parts=["V"])
    assert len(runs) == 9 and {r.seed for r in runs} == set(FULL.seeds)
    assert all("|vit" in r.key for r in runs)
    assert "occluded|cutmix|sumix|b64|vit|seed1" in {r.key for r in runs}
    assert [e.cell.method for e in part_entries("V", QUICK)] == ["mce", "distance_ps"]
    assert all(e.cell.backbone == "vit" for e in part_entries("V", QUICK))


def test_cnn_keys_and_records_are_those_stored_before_the_backbone():
    # The default backbone and the study's epochs add nothing to a key.
    cell = Cell("occluded", "cutmix", "distance_ps").resolved(FULL)
    assert cell.key == "occluded|cutmix|distance_ps|b64|t2"
    same = Cell("occluded", "cutmix", "distance_ps", epochs=FULL.epochs)
    assert same.resolved(FULL) == cell
    vit = Cell("occluded", "cutmix", "mce", backbone="vit", epochs=7).resolved(FULL)
    assert vit.key == "occluded|cutmix|mce|b64|vit|e7"
    assert vit.run_epochs(FULL) == 7 and cell.run_epochs(FULL) == FULL.epochs
    with pytest.raises(ValueError, match="backbone"):
        Cell("occluded", "cutmix", "mce", backbone="resnet")
    with pytest.raises(ValueError, match="epochs"):
        Cell("occluded", "cutmix", "mce", epochs=0)
    # The stored study: every CNN run still matches a cell of the grid, key
    # by key, and parts A-F are complete.
    records = read_records(ROOT / "benchmarks" / "results" / "study" / RUNS_FILE)
    backend = records[0]["backend"]
    cnn = [r for r in records if r.get("backbone", "cnn") == "cnn"]
    assert len(cnn) >= 159
    found = matching(cnn, FULL, backend)
    assert set(found) == {r["key"] for r in cnn}
    assert {run.key for run in build_grid(FULL, parts=list("ABCDEF"))} <= set(found)
    for record in cnn:
        assert cell_of(record).key == record["cell"]


def test_vit_records_match_only_their_own_settings():
    base = {"signature": FULL.signature(), "backend": "tensorflow"}
    old_cnn = {**base, "key": "cnn"}  # recorded before the backbone was
    vit = {
        **base,
        "key": "vit",
        "backbone": "vit",
        "backbone_settings": STUDY_VIT.to_dict(),
    }
    other = {
        **vit,
        "key": "other",
        "backbone_settings": {**STUDY_VIT.to_dict(), "num_layers": 1},
    }
    unlabelled = {**base, "key": "unlabelled", "backbone": "vit"}
    found = matching([old_cnn, vit, other, unlabelled], FULL, "tensorflow")
    assert set(found) == {"cnn", "vit"}
    with pytest.raises(ValueError, match="hidden_dim"):
        ViTSettings(hidden_dim=30, num_heads=4)
    with pytest.raises(ValueError, match="learning_rate"):
        ViTSettings(learning_rate=0.0)


def test_study_vit_builds_with_its_pinned_size():
    pytest.importorskip("keras_hub")
    from study.runner import study_vit, vit_optimizer

    vit = STUDY_VIT
    shape = (vit.patch_size, vit.num_layers, vit.num_heads, vit.hidden_dim)
    assert shape == (4, 4, 4, 64) and vit.mlp_dim == 128
    model = study_vit((32, 32, 3))
    # patch embedding 3,136 + class token 64 + position 65 x 64 + 4 layers x
    # 33,472 (attention 16,640, MLP 16,576, two norms 256) + final norm 128.
    assert model.count_params() == 141_376
    # 64 patch tokens and the class token, which the training models pool.
    assert model.output_shape == (None, 65, STUDY_VIT.hidden_dim)
    assert token_pooling_of(model) == STUDY_VIT.pooling == "class_token"
    assert not model.non_trainable_weights  # no batch norm
    mean = study_vit((32, 32, 3), ViTSettings(pooling="mean"))
    assert mean.output_shape == (None, 64, 64) and token_pooling_of(mean) == "mean"
    optimizer = vit_optimizer(STUDY_VIT, steps=130, steps_per_epoch=13)
    schedule = optimizer._learning_rate
    assert float(schedule(0)) == 0.0
    assert float(schedule(52)) == pytest.approx(STUDY_VIT.learning_rate)
    assert float(schedule(130)) == pytest.approx(0.0, abs=1e-9)
    assert optimizer.global_clipnorm == STUDY_VIT.clipnorm


@trained_once  # 3 s; the eager SUMix step of a ViT takes 30 s on JAX
def test_one_tiny_vit_run_trains_and_measures():
    pytest.importorskip("keras_hub")
    from study.runner import StudyData, train_run

    tiny = StudyConfig(
        occluded_train=32,
        occluded_test=16,
        fidelity_samples=16,
        epochs=1,
        batch_size=16,
        median_last=1,
        seeds=(0,),
        quick=True,
        run_eagerly=True,
    )
    cell = Cell("occluded", "cutmix", "distance_ps", backbone="vit").resolved(tiny)
    record = train_run(RunSpec("V", "tiny", cell, 0), tiny, StudyData(tiny))
    assert record["key"] == "occluded|cutmix|distance_ps|b16|t2|vit|seed0"
    assert record["backbone"] == "vit" and record["epochs"] is None
    assert record["backbone_settings"] == STUDY_VIT.to_dict()
    assert record["epochs_run"] == 1 and not record["diverged"]
    assert 0 <= record["final_top1"] <= 1
    assert _finite(record["pearson"]) and 0 <= record["mae"] <= 1


def test_bad_study_arguments_raise_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="parts"):
        run_study(QUICK, parts=["Z"], output_dir=tmp_path)
    with pytest.raises(ValueError, match="seeds"):
        run_study(QUICK, seeds=[0, 0], output_dir=tmp_path)
    with pytest.raises(ValueError, match="seeds"):
        run_study(QUICK, seeds=[-1], output_dir=tmp_path)
    a_file = tmp_path / "file.txt"
    a_file.write_text("")
    with pytest.raises(ValueError, match="output_dir"):
        run_study(QUICK, output_dir=a_file)
    with pytest.raises(TypeError, match="config"):
        run_study({"epochs": 1}, output_dir=tmp_path)
    with pytest.raises(ValueError, match="epochs"):
        StudyConfig(epochs=0)
    with pytest.raises(ValueError, match="min_scale"):
        StudyConfig(min_scale=0.3, max_scale=0.2)
    with pytest.raises(ValueError, match="method"):
        Cell("occluded", "cutmix", "unknown")
    with pytest.raises(ValueError, match="distance_scale"):
        Cell("occluded", "cutmix", "mce", distance_scale=1.0)
    with pytest.raises(ValueError, match="semantic_scale"):
        Cell("occluded", "cutmix", "mce", semantic_scale=1.0)
    assert not (tmp_path / RUNS_FILE).exists()


def test_cli_rejects_unknown_part():
    with pytest.raises(SystemExit) as exit_info:
        main(["--parts", "Z"])
    assert exit_info.value.code == 2


def test_default_outputs_are_in_the_repository_wherever_run_from():
    """The study and the demo run from a clone: their default folders are
    under the repository root, not the working directory."""
    assert ROOT == Path(__file__).resolve().parents[1]
    assert DEFAULT_OUTPUT == ROOT / "benchmarks" / "results" / "study"
    assert QUICK_OUTPUT == ROOT / "benchmarks" / "results" / "study_quick"
    assert demo.DEFAULT_OUTPUT == ROOT / "outputs" / "demo"
    assert all(p.is_absolute() for p in (DEFAULT_OUTPUT, demo.DEFAULT_OUTPUT))


def test_library_does_not_import_the_study():
    """`study/` is not in the wheel: nothing in `keras_sumix` imports it."""
    for path in (ROOT / "keras_sumix").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] != "study", (path, name)
                assert not name.startswith(("keras_sumix.study", "keras_sumix.demo"))


# ---------------------------------------------------------------------- #
# The quick study (trained once, under TRAINED_ON)
# ---------------------------------------------------------------------- #
@pytest.fixture(scope="module")
def quick_study(tmp_path_factory):
    output = tmp_path_factory.mktemp("study")
    summary = run_study(QUICK, output_dir=output, command="quick test", verbose=0)
    return output, summary


def _finite(value) -> bool:
    return value is not None and math.isfinite(value)


@trained_once
def test_quick_study_records_every_run_with_finite_values(quick_study):
    output, _ = quick_study
    records = read_records(output / RUNS_FILE)
    expected = {run.key for run in build_grid(QUICK)}
    assert {r["key"] for r in records} == expected
    assert len(records) == len(expected)
    datasets = {r["dataset"] for r in records}
    assert datasets == {"occluded", "digits", "fine_grained"}
    assert {r["part"] for r in records} == set(PARTS)
    for record in records:
        assert record["backend"] == TRAINED_ON
        epochs = cell_of(record).run_epochs(QUICK)  # part W's quick cell: 1
        assert record["epochs_run"] == epochs and not record["diverged"]
        assert 0 <= record["final_top1"] <= 1 and 0 <= record["median_top1"] <= 1
        assert record["top1_history"][-1] == record["final_top1"]
        assert record["seconds_per_epoch"] > 0 and record["total_seconds"] > 0
        assert set(record["occlusion"]) == {"0.25", "0.5"}
        assert all(_finite(v) for v in record["occlusion"].values())
        # The mixers that keep the partner's pixels as they are.
        masked = record["dataset"] in ("occluded", "fine_grained")
        measurable = masked and record["mixer"] in (
            "automix",
            "cutmix",
            "fmix",
            "puzzlemix",
            "saliencymix",
        )
        if measurable:
            assert _finite(record["pearson"]) and 0 <= record["mae"] <= 1
        else:
            assert record["pearson"] is None and "skipped" in record["fidelity"]


@trained_once
def test_quick_study_rerun_skips_recorded_runs(quick_study, capsys):
    output, _ = quick_study
    before = (output / RUNS_FILE).read_text()
    run_study(QUICK, output_dir=output, verbose=1)
    assert (output / RUNS_FILE).read_text() == before
    assert "0 to train" in capsys.readouterr().out


@trained_once
def test_quick_study_summary_matches_numpy(quick_study):
    output, _ = quick_study
    records = read_records(output / RUNS_FILE)
    # Add a second seed (shifted values) so that the std is defined.
    doubled = list(records)
    for record in records:
        fake = json.loads(json.dumps(record))
        fake["seed"] = 1
        fake["key"] = record["key"].replace("|seed0", "|seed1")
        fake["final_top1"] = record["final_top1"] * 0.5 + 0.25
        fake["seconds_per_epoch"] = record["seconds_per_epoch"] * 2
        fake["occlusion"] = {k: 1 - v for k, v in record["occlusion"].items()}
        doubled.append(fake)
    result = summarise(doubled, QUICK, TRAINED_ON, seeds=(0, 1))
    assert result["runs_found"] == result["runs_expected"] == 2 * len(records)
    by_cell: dict[str, list] = {}
    for record in doubled:
        by_cell.setdefault(record["cell"], []).append(record)
    for part in result["parts"].values():
        for row in part["rows"]:
            group = by_cell[row["cell"]]
            assert row["n"] == len(group) == 2
            for metric in ("final_top1", "median_top1", "seconds_per_epoch"):
                values = np.array([r[metric] for r in group], "float64")
                assert row[metric]["mean"] == pytest.approx(values.mean())
                assert row[metric]["std"] == pytest.approx(values.std(ddof=1))
            occluded = np.array([r["occlusion"]["0.5"] for r in group])
            assert row["occlusion"]["0.5"]["mean"] == pytest.approx(occluded.mean())
            assert row["occlusion"]["0.5"]["std"] == pytest.approx(occluded.std(ddof=1))
    # The written summary: one seed, so no std; means are the records'.
    written = json.loads((output / "summary.json").read_text())
    assert written["runs_found"] == len(records)
    assert written["commands"] == ["quick test"]  # what trained the runs
    for part in written["parts"].values():
        for row in part["rows"]:
            (record,) = by_cell[row["cell"]][:1]
            assert row["final_top1"]["mean"] == pytest.approx(record["final_top1"])
            assert row["final_top1"]["std"] is None


@trained_once
def test_quick_study_report_files(quick_study):
    output, summary = quick_study
    markdown = (output / "study.md").read_text()
    for part in summary["parts"].values():
        assert part["title"] in markdown
        for row in part["rows"]:
            assert row["label"] in markdown
    assert "n/a (1)" in markdown  # ResizeMix fidelity, with its reason
    assert "- Part V: a small ViT" in markdown and "AdamW" in markdown
    png = (output / "study.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


@trained_once
def test_quick_study_cli_and_readme_block(quick_study, capsys):
    output, _ = quick_study
    assert main(["--quick", "--output", str(output), "--quiet"]) == 0
    written = json.loads((output / "summary.json").read_text())
    assert written["command"].endswith(f"python -m study --quick --output {output}")
    assert main(["--quick", "--summary-only", "--output", str(output)]) == 0
    assert main(["--quick", "--seeds", "0", "0", "--output", str(output)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("python -m study: error:")
    tables = _script("readme_tables.py")
    filename, render = tables.TABLES["study"]
    assert filename == "study/summary.json"
    block = render(written)
    assert "A. Methods" in block and "study.png" in block
    # The quick grid's part P: the variant on the digits with SaliencyMix.
    variants = tables.TABLES["study-variants"][1](written)
    (line,) = [row for row in variants.splitlines() if row.startswith("| digits")]
    assert "digits, SaliencyMix" in line and line.count("not run") == 3


@trained_once
def test_quick_study_time_estimate(quick_study):
    from study.runner import StudyData, estimate_seconds

    output, _ = quick_study
    records = matching(read_records(output / RUNS_FILE), QUICK, TRAINED_ON)
    runs = build_grid(QUICK)
    data = StudyData(QUICK)

    # From the recorded runs (both kinds of both backbones are there): no
    # measuring.
    def must_not_measure(backbone):
        raise AssertionError("the recorded runs should have been used")

    # (Part W's quick grid is one SUMix cell: its MCE kind is measured.)
    both = [r for r in runs if r.cell.backbone != "pretrained"]
    recorded = estimate_seconds(both, QUICK, data, records, measure=must_not_measure)
    assert 0 < recorded < 10 * sum(r["total_seconds"] for r in records.values())
    # Nothing recorded: a measured run of each kind per backbone, scaled by
    # training images and epochs.
    asked = []

    def measure(backbone):
        asked.append(backbone)
        scale = 3.0 if backbone == "vit" else 1.0
        return {"mce": 10.0 * scale, "sumix": 20.0 * scale}

    measured = estimate_seconds(runs, QUICK, data, {}, measure=measure)
    assert asked == ["cnn", "pretrained", "vit"]
    images = {"occluded": QUICK.occluded_train, "digits": QUICK.digits_limit}
    images["fine_grained"] = QUICK_FINE_TUNE.train_images
    expected = sum(
        (3.0 if r.cell.backbone == "vit" else 1.0)
        * (20.0 if METHODS[r.cell.method].sumix else 10.0)
        / images[measured_dataset(r.cell.backbone)]
        * images[r.cell.dataset]
        * r.cell.run_epochs(QUICK)
        / QUICK.epochs
        for r in runs
    )
    assert measured == pytest.approx(expected)
    # A part trained for other epochs scales with them.
    vit = [r for r in runs if r.cell.backbone == "vit"]
    longer = [
        RunSpec(r.part, r.label, Cell(**{**r.cell.__dict__, "epochs": 6}), r.seed)
        for r in vit
    ]
    assert estimate_seconds(longer, QUICK, data, {}, measure=measure) == (
        pytest.approx(3 * estimate_seconds(vit, QUICK, data, {}, measure=measure))
    )
    assert estimate_seconds([], QUICK, data, {}) == 0.0


# ---------------------------------------------------------------------- #
# The demo (`make demo`)
# ---------------------------------------------------------------------- #
@trained_once
def test_demo_quick_trains_and_reports(tmp_path, capsys):
    assert demo.main(["--quick", "--quiet", "--output", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    results = json.loads((tmp_path / "results.json").read_text())
    # The printed table is `format_table` of what was written.
    assert demo.format_table(results) in printed
    assert results["seeds"] == list(demo.QUICK_SEEDS) and results["mixer"] == "cutmix"
    names = list(demo.METHODS)
    assert (
        list(results["methods"])
        == names
        == [
            "MCE (MixupModel)",
            "SUMix, authors' formula",
            'SUMix, variant="recommended"',
        ]
    )
    for name in names:
        assert f"| {name} | " in printed
    # One study record per method and seed, all with the demo's settings.
    runs = results["runs"]
    assert len(runs) == len(names) * len(results["seeds"])
    assert len({r["key"] for r in runs}) == len(runs)
    assert {r["signature"] for r in runs} == {demo.demo_config(quick=True).signature()}
    assert all(r["epochs_run"] == results["config"]["epochs"] == 2 for r in runs)
    # The last method is the recommended variant, through its name.
    recommended = results["methods"]['SUMix, variant="recommended"']
    assert recommended["cell"].startswith("occluded|cutmix|recommended|b")
    by_method = {
        name: {r["seed"]: r for r in runs if r["cell"] == row["cell"]}
        for name, row in results["methods"].items()
    }
    mce = by_method["MCE (MixupModel)"]
    for name, row in results["methods"].items():
        top1 = [by_method[name][s]["final_top1"] for s in results["seeds"]]
        assert row["top1"]["values"] == pytest.approx(top1)
        assert row["top1"]["n"] == 2 and all(0.0 <= v <= 1.0 for v in top1)
        assert row["top1"]["mean"] == pytest.approx(np.mean(top1))
        assert row["top1"]["std"] == pytest.approx(np.std(top1, ddof=1))
        # Paired with MCE seed by seed.
        paired = [
            by_method[name][s]["final_top1"] - mce[s]["final_top1"]
            for s in results["seeds"]
        ]
        assert row["top1_vs_mce"]["values"] == pytest.approx(paired)
        for key in ("pearson", "mae"):
            assert row[key]["n"] == 2 and row[key]["std"] is not None
        assert -1.0 <= row["pearson"]["mean"] <= 1.0
        assert 0.0 <= row["mae"]["mean"] <= 1.0
        # Every method is measured on the same held-out mixes.
        assert row["mean_true_lam"]["values"] == pytest.approx(
            results["methods"]["MCE (MixupModel)"]["mean_true_lam"]["values"]
        )
        assert row["seconds"]["n"] == 2 and row["seconds"]["mean"] > 0
    # MCE trains with the area lam, which does not depend on the network:
    # its fidelity is the same for every seed, and no paired difference.
    baseline = results["methods"]["MCE (MixupModel)"]
    assert baseline["top1_vs_mce"]["values"] == [0.0, 0.0]
    assert baseline["pearson"]["std"] == pytest.approx(0.0, abs=1e-12)
    assert baseline["mean_lam"]["mean"] == pytest.approx(
        mce[0]["fidelity"]["mean_area_lam"]
    )
    assert results["total_seconds"] >= sum(r["total_seconds"] for r in runs)
    assert (tmp_path / "mixes.png").read_bytes()[:4] == b"\x89PNG"


def test_demo_config_is_the_study_setting_with_fewer_epochs():
    config = demo.demo_config()
    assert config.epochs == demo.EPOCHS and config.seeds == demo.SEEDS == (0, 1, 2)
    # The data, model and optimiser are the study's; top-1 is measured once.
    for field in ("occluded_train", "occluded_test", "min_scale", "max_scale"):
        assert getattr(config, field) == getattr(FULL, field)
    assert (config.clutter, config.widths) == (FULL.clutter, FULL.widths)
    assert evaluation_epochs(config) == {demo.EPOCHS - 1}
    assert evaluation_epochs(demo.demo_config(7, [3, 5])) == {6}
    assert demo.demo_config(7, [3, 5]).seeds == (3, 5)
    quick = demo.demo_config(quick=True)
    assert quick.occluded_train < config.occluded_train and quick.seeds == (0, 1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"epochs": 0}, "epochs"),
        ({"epochs": 2.5}, "epochs"),
        ({"seeds": []}, "seeds"),
        ({"seeds": [1, 1]}, "seeds"),
    ],
)
def test_demo_config_rejects_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        demo.demo_config(**kwargs)


def test_demo_run_rejects_bad_arguments_before_training(tmp_path):
    with pytest.raises(TypeError, match="config"):
        demo.run({"epochs": 1}, output_dir=tmp_path)
    with pytest.raises(ValueError, match="verbose"):
        demo.run(demo.demo_config(quick=True), output_dir=tmp_path, verbose=3)
    assert not any(tmp_path.iterdir())


def test_demo_cli_rejects_repeated_seeds(capsys):
    assert demo.main(["--quick", "--seeds", "1", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "seeds" in err[0]


def test_demo_table_of_the_committed_results():
    """`format_table` (the README's demo block) reads the committed
    `benchmarks/results/demo/results.json`; an older results dict is
    refused with a ValueError."""
    results = json.loads(
        (ROOT / "benchmarks" / "results" / "demo" / "results.json").read_text()
    )
    table = demo.format_table(results).splitlines()
    header = "| method | test top-1 % | top-1 vs MCE (paired), points |"
    assert table[2].startswith(header)
    rows = table[4:]
    assert [row.split(" | ")[0] for row in rows] == [
        f"| {name}" for name in demo.METHODS
    ]
    assert rows[0].split(" | ")[2] == "—" and all(" ± " in row for row in rows)
    assert f"seeds {', '.join(map(str, results['seeds']))}" in table[0]
    old = {"backend": "tensorflow", "config": {}, "methods": {"MCE": {"top1": 1.0}}}
    with pytest.raises(ValueError, match="results"):
        demo.format_table(old)
    with pytest.raises(ValueError, match="results"):
        demo.format_table([])
