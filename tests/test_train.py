"""Training end to end on synthetic cells: run folder, resume, cross-validation, CLI, predict."""

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from safetensors.torch import load_file

from blastseg.config import load_config, validate
from blastseg.datasets.layouts import Sample, scan_dataset
from blastseg.datasets.splits import kfold_splits, split_samples
from blastseg.errors import BlastsegError
from blastseg.io import read_image, read_mask
from blastseg.postprocess import InstancesFile
from blastseg.segment.checkpoint import save_checkpoint
from blastseg.segment.networks import create_model
from blastseg.segment.recipe import SegmentConfig
from blastseg.training.augment import AugmentConfig, build_augmentation
from blastseg.training.classifier_recipe import ClassifyConfig
from blastseg.training.recipe import TrainConfig
from blastseg.training.runs import SEGMENTATION_RUN, owned_files
from blastseg.training.segmentation import Monitor, model_card, train
from tests.synthetic import synthetic_cell


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "blastseg", *map(str, args)], capture_output=True, text=True, cwd=cwd)


def recipe(data: Path, **optim) -> dict:
    return {
        "data": {"path": str(data), "crop_size": 64, "split": [0.6, 0.2, 0.2]},
        "model": {"name": "unet", "encoder": "resnet18", "depth": 3, "decoder_channels": [16, 8, 8]},
        "output": "cell+nucleus",
        "optim": {"epochs": 2, "batch_size": 2, "steps_per_epoch": 2, "lr": 1e-3, **optim},
    }


def test_split_is_seeded_stratified_and_disjoint():
    samples = [Sample(Path(f"{g}/{i}.bmp"), group=g) for g in ("D1", "D2") for i in range(20)]
    first, again = split_samples(samples, (0.7, 0.15, 0.15), 3), split_samples(samples, (0.7, 0.15, 0.15), 3)
    assert first == again != split_samples(samples, (0.7, 0.15, 0.15), 4)
    everything = first["train"] + first["val"] + first["test"]
    assert len(everything) == len(set(everything)) == 40
    assert sum(i.startswith("D2/") for i in first["test"]) == 3
    folds = kfold_splits(samples, 5, 0.15, seed=0)
    tests = [i for fold in folds for i in fold["test"]]
    assert sorted(tests) == sorted(everything)  # test parts partition the data
    assert all(not set(f["test"]) & set(f["train"] + f["val"]) for f in folds)
    with pytest.raises(BlastsegError, match="summing to 1"):
        split_samples(samples, (0.5, 0.1, 0.1), 0)


def test_augmentation_keeps_mask_labels_and_is_seeded():
    image, labels = synthetic_cell((70, 90))
    transform = build_augmentation(AugmentConfig(probability=1.0), crop_size=64)
    transform.set_random_seed(5)
    first = transform(image=image, mask=labels)
    transform.set_random_seed(5)
    again = transform(image=image, mask=labels)
    assert first["image"].shape == (64, 64, 3) and first["mask"].shape == (64, 64)
    assert set(np.unique(first["mask"])) <= {0, 1, 2}  # nearest-neighbour for masks: no blended labels
    np.testing.assert_array_equal(first["mask"], again["mask"])
    assert not np.array_equal(first["image"][:64, :64], image[:64, :64])


class Interrupt(Monitor):
    def epoch_end(self, record):
        if record["epoch"] == 1:
            raise KeyboardInterrupt


@pytest.mark.slow
@pytest.mark.parametrize("schedule", ["plateau", "poly"])
def test_interrupted_run_resumes_to_the_same_weights(cells_dataset, tmp_path, schedule):
    config = TrainConfig.model_validate(recipe(cells_dataset, schedule=schedule))
    straight = train(config, tmp_path / "straight")
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "resumed", monitor=Interrupt())
    assert json.loads((tmp_path / "resumed" / "last.json").read_text())["metrics"]["epoch"] == 1
    resumed = train(None, tmp_path / "resumed", resume=True)
    assert resumed.epochs == straight.epochs == 2
    for name in ("last", "best"):
        a = load_file(tmp_path / "straight" / f"{name}.safetensors")
        b = load_file(tmp_path / "resumed" / f"{name}.safetensors")
        assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)
    history = list(csv.DictReader((tmp_path / "resumed" / "metrics.csv").open()))
    assert [row["epoch"] for row in history] == ["1", "2"]
    if schedule == "poly":  # lr x (1 - epoch / epochs) ^ 0.9 after each of the two epochs
        assert [float(row["lr"]) for row in history] == pytest.approx([1e-3 * 0.5**0.9, 0.0])
    with pytest.raises(BlastsegError, match="already holds a run"):
        train(config, tmp_path / "straight")
    other = TrainConfig.model_validate({**recipe(cells_dataset), "model": {"name": "unetplusplus", "depth": 3, "decoder_channels": [16, 8, 8]}})
    with pytest.raises(BlastsegError, match="was trained as unet/resnet18"):
        train(other, tmp_path / "straight", resume=True)


def test_fine_tuning_starts_from_a_checkpoint_of_the_same_network(cells_dataset, tmp_path):
    source = recipe(cells_dataset, epochs=1, steps_per_epoch=1)
    config = TrainConfig.model_validate(source)
    save_checkpoint(tmp_path / "source", create_model(config.model_spec()), model_card(config, {}))  # an untrained network: weights of its own
    tuned = TrainConfig.model_validate({**source, "init_from": str(tmp_path / "source"), "optim": {**source["optim"], "lr": 1e-12}})
    train(tuned, tmp_path / "tuned")
    start, end = load_file(tmp_path / "source.safetensors"), load_file(tmp_path / "tuned" / "best.safetensors")
    learned = [k for k in start if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]  # batch-norm statistics move in any epoch
    assert all(np.allclose(start[k].numpy(), end[k].numpy(), atol=1e-6) for k in learned)  # a step of 1e-12 leaves the source's weights
    assert "starting from the weights of" in json.loads((tmp_path / "tuned" / "best.json").read_text())["trained_on"]
    other = {**source, "model": {**source["model"], "decoder_channels": [32, 16, 8]}, "init_from": str(tmp_path / "source")}
    with pytest.raises(
        BlastsegError, match=r"init_from .*source is unet/resnet18 \(depth 3\) with output cell\+nucleus, but this recipe builds .*decoder \[32, 16, 8\]"
    ):
        validate(TrainConfig, other, "r.yaml")


@pytest.mark.slow
def test_train_evaluate_predict_through_the_cli(cells_dataset, tmp_path):
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(recipe(cells_dataset, epochs=3, steps_per_epoch=3)))
    run = tmp_path / "run"
    trained = cli("train", "--config", tmp_path / "tiny.yaml", "--out", run)
    assert trained.returncode == 0, trained.stderr
    expected = {
        "config.yaml",
        "split.json",
        "metrics.csv",
        "curves.png",
        "best.safetensors",
        "best.json",
        "last.safetensors",
        "last.json",
        "last_state.pt",
        "test_metrics.json",
        "test_per_image.csv",
    }
    assert expected <= {p.name for p in run.iterdir()}
    split = json.loads((run / "split.json").read_text())
    assert [len(split[p]) for p in ("train", "val", "test")] == [6, 2, 2]
    test = json.loads((run / "test_metrics.json").read_text())
    assert set(test["test"]) == {"nucleus", "cell"} and test["test"]["cell"]["all"]["dice"]["n"] == 2
    assert len(list(csv.DictReader((run / "metrics.csv").open()))) == 3
    assert read_image(run / "curves.png").shape[2] == 3

    again = cli("train", "--config", tmp_path / "tiny.yaml", "--out", run)
    assert again.returncode == 2 and "--resume" in again.stderr and "Traceback" not in again.stderr

    evaluated = cli("evaluate", "--checkpoint", run, "--data", cells_dataset, "--out", tmp_path / "eval")
    assert evaluated.returncode == 0, evaluated.stderr
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    for target in ("nucleus", "cell"):
        assert set(summary["metrics"][target]["all"]) >= {"dice", "iou", "ssim", "precision", "recall"}

    images = sorted((cells_dataset / "images").iterdir())[:3]
    predicted = cli("predict", *images, "--checkpoint", run / "best.json", "--out", tmp_path / "pred", "--min-cell-area", "1")
    assert predicted.returncode == 0, predicted.stderr
    names = {p.name for p in (tmp_path / "pred").iterdir()}
    assert {"c00_mask.png", "c00_overlay.png", "c02_mask.png", "cells.csv"} <= names
    assert read_mask(tmp_path / "pred" / "c00_mask.png").shape == (64, 72)
    header = (tmp_path / "pred" / "cells.csv").read_text().splitlines()[0]
    assert header.startswith("image,cell_id,x,y,bbox_x0,bbox_y0,bbox_x1,bbox_y1,area,") and ",nucleus_area," in header


@pytest.mark.slow
def test_cross_validation_reports_mean_and_std(cells_dataset, tmp_path):
    (tmp_path / "cv.yaml").write_text(yaml.safe_dump(recipe(cells_dataset, epochs=1, steps_per_epoch=1)))
    result = cli("train", "--config", tmp_path / "cv.yaml", "--out", tmp_path / "cv", "--folds", "2")
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "cv" / "cv_summary.json").read_text())
    assert summary["folds"] == 2 and len(summary["test"]["nucleus"]["dice"]["folds"]) == 2
    assert (tmp_path / "cv" / "fold_2" / "best.safetensors").is_file()
    tests = [json.loads((tmp_path / "cv" / f"fold_{i}" / "split.json").read_text())["test"] for i in (1, 2)]
    assert sorted(tests[0] + tests[1]) == sorted(f"{cells_dataset.name}/{p.stem}" for p in (cells_dataset / "images").iterdir())
    for folder in (tmp_path / "cv", tmp_path / "cv" / "fold_1"):  # every file a run writes is one --overwrite may replace
        assert sorted(folder.iterdir()) == owned_files(folder, SEGMENTATION_RUN)


@pytest.mark.slow
def test_bad_recipes_fail_in_one_line_before_anything_is_written(cells_dataset, tmp_path):
    bad = recipe(cells_dataset)
    bad["optim"]["epoch"] = 3
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    result = cli("train", "--config", tmp_path / "bad.yaml", "--out", tmp_path / "run")
    assert result.returncode == 2 and "unknown key 'optim.epoch'; valid keys: epochs, batch_size" in result.stderr
    bad = {**recipe(cells_dataset), "loss": [{"name": "tversky", "alpah": 0.3}]}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    assert "unknown key 'alpah'; valid keys: alpha, beta" in cli("train", "--config", tmp_path / "bad.yaml", "--out", tmp_path / "run").stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    bad = {**recipe(cells_dataset), "data": {"path": str(empty)}}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    result = cli("train", "--config", tmp_path / "bad.yaml", "--out", tmp_path / "run")
    assert result.returncode == 2 and "no images found" in result.stderr
    assert not (tmp_path / "run").exists()
    resume = cli("train", "--resume", "--out", tmp_path / "nothing")
    assert resume.returncode == 2 and "nothing to resume" in resume.stderr


def test_scanned_folder_feeds_training(cells_dataset):
    samples = scan_dataset(cells_dataset)
    assert len(samples) == 10 and all(s.mask is not None for s in samples)


def test_multiclass_grey_input_and_summed_losses_train(cells_dataset, tmp_path):
    spec = recipe(cells_dataset, epochs=1, steps_per_epoch=1)
    spec["model"]["in_channels"] = 1
    spec["output"] = "multiclass"
    spec["loss"] = [{"name": "focal", "weight": 1.0}, {"name": "tversky", "weight": 0.5, "alpha": 0.3, "beta": 0.7}]
    result = train(TrainConfig.model_validate(spec), tmp_path / "run")
    assert set(result.test) == {"nucleus", "cell"}
    card = json.loads((tmp_path / "run" / "best.json").read_text())
    assert card["output"] == "multiclass" and card["model"]["classes"] == 3 and card["model"]["in_channels"] == 1
    with pytest.raises(ValueError, match="in_channels\n  Input should be 1 or 3"):
        TrainConfig.model_validate({**spec, "model": {"in_channels": 4}})


SCHEMAS = {"segmentation": TrainConfig, "classifier": ClassifyConfig, "classical": SegmentConfig, "instances": InstancesFile}


@pytest.mark.parametrize("recipe_file", sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_recipe_says_its_kind_and_validates(recipe_file):
    kind = yaml.safe_load(recipe_file.read_text())["kind"]
    assert load_config(recipe_file, SCHEMAS[kind]).kind == kind


def test_a_recipe_of_another_kind_is_refused_naming_the_kind(tmp_path):
    (tmp_path / "rf.yaml").write_text("kind: classifier\ndata: {path: cells}\n")
    with pytest.raises(BlastsegError, match="rf.yaml: kind: Input should be 'segmentation'"):
        load_config(tmp_path / "rf.yaml", TrainConfig)


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("data", "layout", "zeng", "data.layout: unknown dataset layout 'zeng'; valid: allidb1, allidb2, bccd, folder, zheng"),
        ("data", "mask_encoding", "grey", "data.mask_encoding: unknown mask encoding 'grey'; valid: allidb2_grey"),
        ("optim", "device", "gpu", "optim.device: unknown device 'gpu'; valid: auto, cpu, cuda"),
        ("data", "preprocess", ["sharpen"], "data.preprocess: unknown preprocessing step 'sharpen'"),
    ],
)
def test_recipe_values_are_checked_when_the_recipe_loads(tmp_path, section, key, value, message):
    spec = {"data": {"path": "cells"}, "optim": {}}
    spec[section][key] = value
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(BlastsegError, match=re.escape(f"r.yaml: {message}")):
        load_config(tmp_path / "r.yaml", TrainConfig)
