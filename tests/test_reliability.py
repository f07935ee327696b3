"""Hostile input and lost work: every case ends in a correct result or one ``error:`` line (exit 2),
a batch keeps what it finished, and ``--overwrite`` never deletes a user's file.

The hostile files are small and made here: crafted headers claim huge images without holding them."""

import csv
import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
import yaml
from PIL import Image

from blastseg.analysis import analyze, analyze_labels
from blastseg.classify.forest import ForestArrays
from blastseg.classify.model import CellClassifier, ClassifierCard
from blastseg.cli import main
from blastseg.config import load_config
from blastseg.errors import BlastsegError, ImageReadError, ModelFileError
from blastseg.folders import prepare_folder
from blastseg.io import TEMP_SUFFIX, atomic_path, read_image, write_json
from blastseg.postprocess import InstanceRules, cell_instances
from blastseg.segment.checkpoint import load_checkpoint
from blastseg.training.classifier_recipe import ClassifyConfig
from blastseg.training.forest import ForestParams, fit_forest, forest_arrays
from blastseg.training.recipe import TrainConfig
from blastseg.training.runs import CLASSIFIER_RUN, STATE_FILE, load_resume_state, prepare_run
from tests.synthetic import png_claiming, synthetic_cell


def blastseg(capsys, *args):
    """Run the ``blastseg`` program in this process: (exit status, stdout, stderr)."""
    with pytest.raises(SystemExit) as ended:
        main([str(arg) for arg in args])
    out, err = capsys.readouterr()
    return ended.value.code, out, err


def assert_one_line_error(result, *fragments):
    code, _, err = result
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err


def cell_images(folder, count, shape=(96, 96)):
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        image, _ = synthetic_cell(shape, seed=i)
        paths.append(folder / f"{i:03d}.png")
        Image.fromarray(image).save(paths[-1])
    return paths


# -- images ---------------------------------------------------------------------------------------


def test_huge_images_are_refused_from_their_header(tmp_path):
    with pytest.raises(ImageReadError, match="10000x10000 is 100 megapixels, over the limit of 90; raise it with --max-pixels"):
        read_image(png_claiming(tmp_path / "bomb.png", 10_000, 10_000))
    with pytest.raises(ImageReadError, match="not a readable image"):  # allowed, then found to hold no such data
        read_image(tmp_path / "bomb.png", max_pixels=200_000_000)
    with pytest.raises(ImageReadError, match="over the limit"):  # beyond PIL's own bomb limit: still our one line
        read_image(png_claiming(tmp_path / "huge.png", 40_000, 40_000))
    tifffile.imwrite(tmp_path / "huge.tif", shape=(30_000, 30_000), dtype=np.uint8)  # sparse: a few KB on disk
    with pytest.raises(ImageReadError, match="30000x30000 is 900 megapixels"):
        read_image(tmp_path / "huge.tif")
    with pytest.warns(UserWarning, match="zero-size"):
        tifffile.imwrite(tmp_path / "empty.tif", np.zeros((0, 5), np.uint8))
    with pytest.raises(ImageReadError, match="empty.tif"):
        read_image(tmp_path / "empty.tif")
    Image.new("RGB", (50, 40)).save(tmp_path / "ok.png")
    assert read_image(tmp_path / "ok.png", max_pixels=2000).shape == (40, 50, 3)
    with pytest.raises(ImageReadError, match="over the limit of 0"):
        read_image(tmp_path / "ok.png", max_pixels=1999)


def test_in_memory_images_of_any_shape_are_taken_or_refused_in_one_line():
    with pytest.raises(ImageReadError, match="no pixels"):
        analyze(np.zeros((0, 0, 3), np.uint8), classifier=None)
    with pytest.raises(ImageReadError, match="unsupported image shape"):
        analyze(np.zeros(5), classifier=None)
    rgba = np.dstack([synthetic_cell()[0], np.full((96, 96), 255, np.uint8)])
    assert len(analyze(rgba, classifier=None).cells) == 1  # alpha dropped


def test_a_black_or_blank_frame_has_no_cell():
    everything = np.ones((480, 640), np.uint8)  # a segmenter that calls the whole black frame a cell
    assert cell_instances(everything).max() == 0
    result = analyze_labels("black.png", np.zeros((480, 640, 3), np.uint8), everything * 2)
    assert result.cells == []
    assert cell_instances(everything, InstanceRules(max_image_fraction=1.0, min_nucleus_fraction=0)).max() == 1


# -- batches --------------------------------------------------------------------------------------


def test_a_failed_image_is_listed_and_the_rest_are_kept_then_resumed(capsys, tmp_path):
    paths = cell_images(tmp_path / "in", 3)
    good = paths[1].read_bytes()
    paths[1].write_bytes(b"not an image")
    out = tmp_path / "out"
    code, _, err = blastseg(capsys, "segment", *paths, "--method", "otsu", "--target", "cell", "--out", out)
    assert code == 1 and "failed: " + str(paths[1]) + ": not a readable image" in err and "Traceback" not in err
    summary = json.loads((out / "summary.json").read_text())
    assert sorted(summary["per_image"]) == ["000.png", "002.png"] and summary["failed"][0]["image"] == "001.png"
    assert [row["image"] for row in csv.DictReader((out / "cells.csv").open())] == ["000.png", "002.png"]

    assert blastseg(capsys, "segment", *paths, "--method", "otsu", "--out", out)[0] == 2  # not without --skip-existing or --overwrite
    paths[1].write_bytes(good)
    code, _, err = blastseg(capsys, "segment", *paths, "--method", "otsu", "--target", "cell", "--out", out, "--skip-existing")
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["failed"] == [] and summary["images"] == 3 and summary["cells"] == 3
    assert sorted(row["image"] for row in csv.DictReader((out / "cells.csv").open())) == ["000.png", "001.png", "002.png"]
    other = blastseg(capsys, "segment", *paths, "--method", "otsu", "--target", "nucleus", "--out", out, "--skip-existing")
    assert_one_line_error(other, "that batch used other models")


def test_fail_fast_stops_at_the_first_failure(capsys, tmp_path):
    paths = cell_images(tmp_path / "in", 3)
    paths[1].write_bytes(b"")
    code, _, err = blastseg(capsys, "segment", *paths, "--method", "otsu", "--out", tmp_path / "out", "--fail-fast")
    assert code == 1 and "file is empty" in err
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert list(summary["per_image"]) == ["000.png"] and not (tmp_path / "out" / "002_mask.png").exists()


def test_a_killed_row_and_a_stale_temp_file_are_dropped_on_resume(capsys, tmp_path):
    paths = cell_images(tmp_path / "in", 2)
    out = tmp_path / "out"
    assert blastseg(capsys, "segment", paths[0], "--method", "otsu", "--out", out)[0] == 0
    with (out / "cells.csv").open("a") as handle:  # a kill while 001's rows were appended, before summary.json
        handle.write("001.png,1,48.0")
    (out / f".summary.json.x1y2{TEMP_SUFFIX}").write_text("{")
    assert blastseg(capsys, "segment", *paths, "--method", "otsu", "--out", out, "--skip-existing")[0] == 0
    assert [row["image"] for row in csv.DictReader((out / "cells.csv").open())] == ["000.png", "001.png"]
    assert not list(out.glob(f".*{TEMP_SUFFIX}"))


def test_outputs_are_readable_by_others_and_formulas_are_escaped(capsys, tmp_path):
    image, _ = synthetic_cell()
    Image.fromarray(image).save(tmp_path / "=HYPERLINK(1).png")
    old = os.umask(0o022)
    try:
        assert blastseg(capsys, "segment", tmp_path / "=HYPERLINK(1).png", "--method", "otsu", "--out", tmp_path / "out")[0] == 0
    finally:
        os.umask(old)
    for path in (tmp_path / "out").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path
    first = next(csv.DictReader((tmp_path / "out" / "cells.csv").open()))
    assert first["image"] == "'=HYPERLINK(1).png"


def test_an_interrupted_write_leaves_the_old_file_and_no_temp(tmp_path):
    write_json(tmp_path / "a.json", {"v": 1})
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "a.json") as tmp:
        tmp.write_text('{"v": 2')
        raise RuntimeError("killed")
    assert json.loads((tmp_path / "a.json").read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


# -- the command line -----------------------------------------------------------------------------


def test_version_and_usage_errors_are_one_line(capsys):
    code, out, _ = blastseg(capsys, "--version")
    assert code == 0 and out.startswith("blastseg ")
    assert_one_line_error(blastseg(capsys, "predict", "-smear.jpg"), "No such option", "put -- before file names")
    assert_one_line_error(blastseg(capsys, "predict", "--tile-size", "big", "a.jpg"), "--tile-size")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--batch-size", "-1"], "batch_size: Input should be greater than or equal to 1"),
        (["--batch-size", "0"], "batch_size"),
        (["--batch-size", "100000"], "batch_size: Input should be less than or equal to 256"),
        (["--tile-size", "0"], "tile_size"),
        (["--tile-size", "-5"], "tile_size"),
        (["--threshold", "nan"], "threshold"),
        (["--min-cell-area", "-5"], "min_area"),
        (["--min-nucleus-fraction", "nan"], "min_nucleus_fraction"),
        (["--max-pixels", "0"], "max_pixels"),
    ],
)
def test_predict_options_out_of_bounds_are_refused_before_any_work(capsys, tmp_path, args, message):
    image = cell_images(tmp_path, 1)[0]
    assert_one_line_error(blastseg(capsys, "predict", image, "--out", tmp_path / "out", *args), message)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("param", "message"),
    [
        ("sample_size=0", "sample_size"),
        ("blur=4", "blur: must be 0, 1 or odd"),
        ("k=nan", "k"),
        ("k=1000", "k"),
        ("open_size=180000", "open_size: Input should be less than or equal to 255"),  # was a 32 GB structuring element
        ("seed=-1", "seed"),
    ],
)
def test_segmenter_parameters_out_of_bounds_are_refused(capsys, tmp_path, param, message):
    image = cell_images(tmp_path, 1)[0]
    assert_one_line_error(blastseg(capsys, "segment", image, "--method", "kmeans", "-p", param, "--out", tmp_path / "out"), message)


def test_kmeans_on_a_one_pixel_image_finds_nothing(capsys, tmp_path):
    Image.new("RGB", (1, 1), (90, 50, 150)).save(tmp_path / "one.png")
    code, _, err = blastseg(capsys, "segment", tmp_path / "one.png", "--method", "kmeans", "--out", tmp_path / "out")
    assert code == 0, err
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["cells"] == 0


def test_an_out_folder_that_cannot_be_written_is_refused_before_any_work(capsys, tmp_path):
    image = cell_images(tmp_path / "in", 1)[0]
    (tmp_path / "file").write_text("mine")
    for out in (tmp_path / "file", tmp_path / "file" / "sub"):
        for command in (["segment", image, "--method", "otsu"], ["predict", image], ["evaluate", "--data", tmp_path / "in", "--method", "otsu"]):
            assert_one_line_error(blastseg(capsys, *command, "--out", out), str(tmp_path / "file"))
    assert (tmp_path / "file").read_text() == "mine"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_a_read_only_out_folder_is_refused(capsys, tmp_path):
    image = cell_images(tmp_path / "in", 1)[0]
    (tmp_path / "ro").mkdir(mode=0o500)
    assert_one_line_error(blastseg(capsys, "segment", image, "--out", tmp_path / "ro"), "cannot write to --out")


def test_debug_shows_the_traceback(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("BLASTSEG_DEBUG", "1")
    with pytest.raises(ImageReadError):
        main(["segment", str(tmp_path / "a.png"), "--out", str(tmp_path / "o")])
    monkeypatch.delenv("BLASTSEG_DEBUG")  # restored after the test, whatever --debug sets
    with pytest.raises(ImageReadError):
        main(["--debug", "segment", str(tmp_path / "a.png"), "--out", str(tmp_path / "o")])


def test_a_bug_is_one_line_with_status_3(capsys, tmp_path, monkeypatch):
    import blastseg.batch as batch

    def broken(*args, **kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(batch, "segment_with_recipe", broken)
    code, _, err = blastseg(capsys, "segment", cell_images(tmp_path, 1)[0], "--method", "otsu", "--out", tmp_path / "out")
    assert code == 3 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("error: unexpected ZeroDivisionError: division by zero; rerun with BLASTSEG_DEBUG=1")


# -- run folders ----------------------------------------------------------------------------------


def test_overwrite_replaces_only_blastseg_files(tmp_path):
    run = tmp_path / "run"
    (run / "fold_1").mkdir(parents=True)
    for name in ("config.yaml", "best.json", "fold_1/best.json"):
        (run / name).write_text("old")
    (run / "notes.txt").write_text("mine")
    (run / "fold_1" / "mine.png").write_text("mine")
    with pytest.raises(BlastsegError, match="already holds a run"):
        prepare_run(run, overwrite=False)
    prepare_run(run, overwrite=True)
    assert sorted(str(p.relative_to(run)) for p in run.rglob("*")) == ["fold_1", "fold_1/mine.png", "notes.txt"]
    prepare_run(tmp_path / "users", overwrite=False)  # a folder of the user's own files is not a run
    (tmp_path / "users" / "cells.csv").write_text("mine")
    prepare_run(tmp_path / "users", overwrite=False)
    with pytest.raises(BlastsegError, match="already holds a run"):
        prepare_run(tmp_path / "users", overwrite=False, names=CLASSIFIER_RUN)


def test_classify_train_checks_the_data_before_touching_the_run(capsys, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "cv.json").write_text("earlier run")
    (run / "notes.txt").write_text("mine")
    (tmp_path / "rf.yaml").write_text("kind: classifier\ndata: {path: missing}\n")
    assert_one_line_error(blastseg(capsys, "classify", "train", "--config", tmp_path / "rf.yaml", "--out", run, "--overwrite"), "missing")
    assert (run / "cv.json").read_text() == "earlier run" and (run / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("recipe", sorted(p.name for p in (Path(__file__).parents[1] / "configs").glob("*.yaml") if "kind: segmentation" in p.read_text()))
def test_the_shipped_training_recipes_are_valid(recipe):
    config = load_config(Path(__file__).parents[1] / "configs" / recipe, TrainConfig)
    assert config.optim.epochs >= 1 and all(Path(source.path).is_absolute() for source in config.data.train_also)


def test_recipe_paths_are_taken_from_the_recipe_folder(tmp_path, monkeypatch):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "r.yaml").write_text("data: {path: ../data}\nmodel: {encoder_weights_path: w.safetensors}\n")
    monkeypatch.chdir(tmp_path)  # the working directory does not matter
    config = load_config(tmp_path / "configs" / "r.yaml", TrainConfig)
    assert config.data.path == str(tmp_path / "data")
    assert config.model.encoder_weights_path == str(tmp_path / "configs" / "w.safetensors")
    (tmp_path / "configs" / "rf.yaml").write_text("kind: classifier\ndata: {path: cells, labels_csv: l.csv, also: [{path: ../fields}]}\n")
    data = load_config(tmp_path / "configs" / "rf.yaml", ClassifyConfig).data
    assert (data.path, data.labels_csv, data.checkpoint) == (str(tmp_path / "configs" / "cells"), str(tmp_path / "configs" / "l.csv"), "default")
    assert data.also[0].path == str(tmp_path / "fields")


@pytest.mark.parametrize(
    ("optim", "message"),
    [({"lr": ".inf"}, "optim.lr"), ({"lr": ".nan"}, "optim.lr"), ({"batch_size": 100000}, "optim.batch_size"), ({"epochs": 0}, "optim.epochs")],
)
def test_training_numbers_are_bounded_when_the_recipe_loads(capsys, tmp_path, optim, message):
    (tmp_path / "r.yaml").write_text("data: {path: d}\noptim: {" + ", ".join(f"{k}: {v}" for k, v in optim.items()) + "}\n")
    assert_one_line_error(blastseg(capsys, "train", "--config", tmp_path / "r.yaml", "--out", tmp_path / "run"), message)
    assert not (tmp_path / "run").exists()


def test_a_loss_weight_that_is_not_a_number_is_one_line(tmp_path):
    (tmp_path / "r.yaml").write_text("data: {path: d}\nloss: [{name: dice, weight: abc}]\n")
    with pytest.raises(BlastsegError, match="r.yaml: loss: loss 'dice': weight must be a positive finite number, got 'abc'"):
        load_config(tmp_path / "r.yaml", TrainConfig)


def test_more_folds_than_images_is_refused_before_training(capsys, tmp_path):
    data = tmp_path / "data"
    (data / "masks").mkdir(parents=True)
    for i, path in enumerate(cell_images(data / "images", 3)):
        Image.fromarray(np.array([0, 128, 255], np.uint8)[synthetic_cell(seed=i)[1]]).save(data / "masks" / path.name)
    (tmp_path / "r.yaml").write_text(yaml.safe_dump({"data": {"path": str(data)}}))
    result = blastseg(capsys, "train", "--config", tmp_path / "r.yaml", "--out", tmp_path / "cv", "--folds", "5")
    assert_one_line_error(result, "5-fold cross-validation needs at least 5 images; the dataset has 3")
    assert not (tmp_path / "cv").exists()


def test_a_corrupt_resume_state_is_one_line(tmp_path):
    (tmp_path / STATE_FILE).write_bytes(b"\x00" * 10)
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.Adam(model.parameters())
    with pytest.raises(ModelFileError, match="last_state.pt: cannot resume from it"):
        load_resume_state(tmp_path, model, optimizer, torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer), torch.amp.GradScaler("cuda", enabled=False), "cpu")


# -- model files ----------------------------------------------------------------------------------


def forest_file(tmp_path, **changes):
    """A two-class forest on one feature, saved with ``changes`` to its arrays."""
    forest = forest_arrays(fit_forest(np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([0, 0, 1, 1]), ForestParams(n_estimators=5)), 2)
    card = ClassifierCard(kind="random_forest", classes=["a", "b"], features=["area"])
    arrays = {**forest.to_dict(), **changes}
    CellClassifier(card, forest=ForestArrays.from_dict(arrays)).save(tmp_path / "c")
    return tmp_path / "c"


def test_crafted_forests_are_refused_not_run(tmp_path):
    forest = forest_arrays(fit_forest(np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([0, 0, 1, 1]), ForestParams(n_estimators=5)), 2)
    looped = forest.left.copy()
    looped[0] = 0  # the root points to itself: prediction would never end
    with pytest.raises(ModelFileError, match="does not point further into its own tree"):
        CellClassifier.load(forest_file(tmp_path, left=looped))
    with pytest.raises(ModelFileError, match="left must be a 1-D array of integers"):
        CellClassifier.load(forest_file(tmp_path, left=forest.left.astype(np.float32)))
    far = forest.right.copy()
    far[0] = 10**6
    with pytest.raises(ModelFileError, match="does not point further"):
        CellClassifier.load(forest_file(tmp_path, right=far))
    assert CellClassifier.load(forest_file(tmp_path)).proba_of([{"area": 3.0}], []).argmax() == 1


def test_a_fold_without_a_class_keeps_the_probability_columns(tmp_path):
    forest = forest_arrays(fit_forest(np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([0, 0, 2, 2]), ForestParams(n_estimators=5)), 3)
    proba = forest.predict_proba(np.array([[0.0], [3.0]]))
    assert proba.shape == (2, 3) and proba[:, 1].tolist() == [0, 0]  # class 1 was absent: zero, not class 2's column
    assert proba.argmax(axis=1).tolist() == [0, 2] and np.allclose(proba.sum(axis=1), 1)


def test_crafted_cards_are_refused_before_anything_is_allocated(tmp_path):
    card = {"format": "blastseg-segmentation", "model": {"name": "unet", "depth": 3, "decoder_channels": [10**6, 8, 8]}, "output": "cell"}
    (tmp_path / "m.json").write_text(json.dumps(card))
    (tmp_path / "m.safetensors").write_bytes(b"")
    with pytest.raises(ModelFileError, match="decoder_channels.0: Input should be less than or equal to 1024"):
        load_checkpoint(tmp_path / "m")
    (tmp_path / "m.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ModelFileError, match="m.json"):
        load_checkpoint(tmp_path / "m")
    (tmp_path / "deep.yaml").write_text("data: " + "[" * 50_000 + "]" * 50_000 + "\n")
    with pytest.raises(BlastsegError, match="deep.yaml"):
        load_config(tmp_path / "deep.yaml", TrainConfig)


def test_a_pickled_weights_file_is_refused_without_torch_advice(tmp_path):
    from blastseg.artifacts import read_weights

    torch.save({"weights": torch.zeros(2), "code": ClassifierCard}, tmp_path / "w.pth")
    with pytest.raises(ModelFileError) as refused:
        read_weights(tmp_path / "w.pth")
    assert "never unpickles" in str(refused.value) and "weights_only" not in str(refused.value)


def test_folder_checks_clean_stale_temps(tmp_path):
    (tmp_path / f".cells.csv.abc{TEMP_SUFFIX}").write_text("half")
    (tmp_path / ".mine").write_text("kept")
    prepare_folder(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".mine"]
