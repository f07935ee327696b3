"""Cell classifiers: safe storage, label sources (ALL-IDB2 names, ALL-IDB1 .xyc), training and
cross-validation through the library and the CLI, and classified predictions."""

import csv
import io
import json

import cv2
import numpy as np
import pytest
import tifffile
import torch
from skimage.measure import label as skimage_label
from sklearn.ensemble import RandomForestClassifier

from blastseg.analysis import CellCounts, analyze, analyze_labels, count_cells
from blastseg.annotations import read_xyc
from blastseg.batch import BlastReport, PredictOptions, predict_files, segment_files
from blastseg.cells import FEATURES, cell_rows, resampled_features
from blastseg.classify.cnn import CnnSpec, CropDataset
from blastseg.classify.model import CellClassifier, ClassifierCard
from blastseg.config import load_config
from blastseg.datasets.layouts import scan_dataset
from blastseg.errors import BlastsegError, ConfigError
from blastseg.io import write_png
from blastseg.postprocess import InstanceRules
from blastseg.preprocess import Reinhard
from blastseg.render import class_colours
from blastseg.segment import Segmentation, create_segmenter
from blastseg.training.classifier import train_classifier
from blastseg.training.classifier_recipe import ClassifyConfig
from blastseg.training.cnn import CnnTraining, fit_network
from blastseg.training.forest import ForestParams, fit_forest, forest_arrays
from blastseg.training.labelled_cells import collect_cells
from blastseg.training.runs import CLASSIFIER_RUN, owned_files
from tests.synthetic import colour_labels, synthetic_cell, synthetic_field
from tests.test_cli import run

BLAST_NUCLEUS, NORMAL_NUCLEUS = 24, 11  # radii in a cell of radius about 30: blasts are mostly nucleus


def write_allidb2(folder, per_class=6):
    """ALL-IDB2-named crops ``ImNNN_L.tif`` with grey masks (0/155/255) in ``masks/``."""
    (folder / "masks").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(2 * per_class):
        blast = i % 2 == 0
        radius = int(rng.integers(27, 33))
        image, labels = synthetic_cell(cell_radius=radius, nucleus_radius=BLAST_NUCLEUS if blast else NORMAL_NUCLEUS, seed=i)
        name = f"Im{i + 1:03d}_{int(blast)}"
        tifffile.imwrite(folder / f"{name}.tif", image)
        write_png(folder / "masks" / f"{name}.png", np.array([0, 155, 255], np.uint8)[labels])


FIELD_CELLS = [((50, 50), 30, BLAST_NUCLEUS), ((50, 150), 30, NORMAL_NUCLEUS), ((130, 250), 30, BLAST_NUCLEUS), ((140, 80), 28, NORMAL_NUCLEUS)]


def write_allidb1(folder, fields=4):
    """ALL-IDB1-named fields ``ImNNN_1.jpg`` with ``.xyc`` blast centroids (x y per line), plus a
    listed blast where no cell is; healthy fields ``ImNNN_0`` have an empty ``.xyc``."""
    folder.mkdir(parents=True)
    for i in range(fields):
        patient = i < fields - 1
        cells = FIELD_CELLS if patient else [(c, r, NORMAL_NUCLEUS) for c, r, _ in FIELD_CELLS]
        image, _ = synthetic_field((200, 300), cells, seed=i)
        name = f"Im{i + 1:03d}_{int(patient)}"
        write_png(folder / f"{name}.png", image)
        (folder / f"{name}.png").rename(folder / f"{name}.jpg")  # lossless pixels under the ALL-IDB1 name
        blasts = [f"{x + 2} {y - 3}" for (y, x), _, nucleus in cells if nucleus == BLAST_NUCLEUS]
        (folder / f"{name}.xyc").write_text("\n".join([*blasts, "290 5"] if patient else []) + "\n")


class ColourSegmenter:
    """Stands in for the network: synthetic images are segmented exactly by colour."""

    def segment(self, image):
        return Segmentation(colour_labels(image))


def test_forest_arrays_predict_as_sklearn_and_survive_a_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    features = rng.normal(size=(120, len(FEATURES)))
    labels = (features[:, 0] + 0.5 * features[:, 3] > 0).astype(int) + (features[:, 5] > 1).astype(int)
    forest = fit_forest(features, labels, ForestParams(n_estimators=20), seed=0)
    arrays = forest_arrays(forest, 3)
    test = rng.normal(size=(50, len(FEATURES)))
    np.testing.assert_allclose(arrays.predict_proba(test), forest.predict_proba(test), atol=1e-6)

    card = ClassifierCard(kind="random_forest", classes=["a", "b", "c"], features=list(FEATURES))
    CellClassifier(card, forest=arrays).save(tmp_path / "forest")
    loaded = CellClassifier.load(tmp_path / "forest.json")
    rows = [dict(zip(FEATURES, values)) for values in test]
    np.testing.assert_allclose(loaded.proba_of(rows, []), forest.predict_proba(test), atol=1e-6)


def test_files_blastseg_did_not_write_are_refused(tmp_path):
    arrays = forest_arrays(RandomForestClassifier(n_estimators=2, random_state=0).fit([[0.0], [1.0]], [0, 1]), 2)
    card = ClassifierCard(kind="random_forest", classes=["a", "b"], features=["area"])
    CellClassifier(card, forest=arrays).save(tmp_path / "c")
    (tmp_path / "other.json").write_text(json.dumps({"format": "pickle", "kind": "random_forest"}))
    (tmp_path / "other.safetensors").write_bytes(b"\x80\x04 not safetensors")
    with pytest.raises(BlastsegError, match="not a blastseg classifier"):
        CellClassifier.load(tmp_path / "other")
    (tmp_path / "c.safetensors").write_bytes(b"\x80\x04 a pickle")
    with pytest.raises(BlastsegError, match="not a random forest written by blastseg"):
        CellClassifier.load(tmp_path / "c")
    card_of_three = json.loads((tmp_path / "c.json").read_text()) | {"classes": ["a", "b", "c"]}
    CellClassifier(card, forest=arrays).save(tmp_path / "d")
    (tmp_path / "d.json").write_text(json.dumps(card_of_three))
    with pytest.raises(BlastsegError, match="2 classes, expected 3"):
        CellClassifier.load(tmp_path / "d")


def test_stain_normalised_crops_look_alike_whatever_the_colour_cast():
    """Two crops of one cell, the second with its a* and b* shifted (another stain) and darker, are
    one crop once moved to the target's L*a*b* mean and spread."""
    crop, _ = synthetic_cell((32, 32), (16, 16), 12, 6, seed=0)
    lab = cv2.cvtColor(crop.astype(np.float32) / 255, cv2.COLOR_RGB2LAB)
    cast = np.clip(cv2.cvtColor((lab * [0.9, 1, 1] + [0, -8, 12]).astype(np.float32), cv2.COLOR_LAB2RGB) * 255 + 0.5, 0, 255).astype(np.uint8)
    assert np.abs(cast.astype(int) - crop).mean() > 10
    target = Reinhard(mean=(70.0, 15.0, 0.0), std=(20.0, 12.0, 20.0))
    plain, normalised = CropDataset([crop, cast], [0, 0], CnnSpec(input_size=32, stain_target=target)).crops
    assert np.abs(plain.astype(int) - normalised).mean() < 2
    out = cv2.cvtColor(plain.astype(np.float32) / 255, cv2.COLOR_RGB2LAB).reshape(-1, 3)
    np.testing.assert_allclose(out.mean(axis=0), target.mean, atol=1)
    untouched = CropDataset([cast], [0], CnnSpec(input_size=32)).crops[0]
    np.testing.assert_array_equal(untouched, cast)


def test_cnn_round_trip_and_weights_of_another_network_refused(tmp_path):
    params = CnnTraining(input_size=16, epochs=1, batch_size=4, stain_target=Reinhard())
    crops = [synthetic_cell((16, 16), (8, 8), 6, r, seed=i)[0] for i, r in enumerate([5, 2] * 4)]
    net = fit_network(crops, np.array([0, 1] * 4), 2, params, torch.device("cpu"))
    card = ClassifierCard(kind="cnn", classes=["blast", "normal"], cnn=params)
    classifier = CellClassifier(card, net=net, device="cpu")
    before = classifier.proba_of([{}] * len(crops), crops)
    classifier.save(tmp_path / "cnn")
    after = CellClassifier.load(tmp_path / "cnn", device="cpu").proba_of([{}] * len(crops), crops)
    np.testing.assert_allclose(after, before, atol=1e-6)
    assert after.shape == (8, 2) and np.allclose(after.sum(axis=1), 1)
    assert CellClassifier.load(tmp_path / "cnn", device="cpu").card.cnn.stain_target == Reinhard()
    three = json.loads((tmp_path / "cnn.json").read_text()) | {"classes": ["a", "b", "c"]}
    (tmp_path / "cnn.json").write_text(json.dumps(three))
    with pytest.raises(BlastsegError, match="another architecture"):
        CellClassifier.load(tmp_path / "cnn", device="cpu")


def test_xyc_centroids_make_blasts_and_unmatched_ones_are_reported(tmp_path):
    write_allidb1(tmp_path / "fields", fields=2)
    samples = scan_dataset(tmp_path / "fields")
    found = collect_cells(samples, ColourSegmenter(), InstanceRules(), 32, 1.25)
    first = [row for row in found.rows if row["image"] == "Im001_1.jpg"]
    by_place = {(round(row["y"]), round(row["x"])): row["label"] for row in first}
    assert by_place == {(50, 50): "blast", (50, 150): "normal", (130, 250): "blast", (140, 80): "normal"}
    assert [row["label"] for row in found.rows if row["image"] == "Im002_0.jpg"] == ["normal"] * 4
    assert found.unmatched == [{"image": "Im001_1.jpg", "x": 290.0, "y": 5.0}]
    assert all(crop.shape == (32, 32, 3) for crop in found.crops)
    # a fixed radius smaller than the 2-3 pixel offset of the listed centroids matches nothing
    strict = collect_cells(samples, ColourSegmenter(), InstanceRules(), 32, 1.25, match_radius=2)
    assert {row["label"] for row in strict.rows} == {"normal"} and len(strict.unmatched) == 3
    # a recipe's classes rename the labels the centroids give, or leave a class out
    renamed = collect_cells(samples, ColourSegmenter(), InstanceRules(), 32, 1.25, rename={"blast": "lymphoblast", "normal": None})
    assert [row["label"] for row in renamed.rows] == ["lymphoblast"] * 2 and len(renamed.groups) == 2


def test_allidb1_fields_train_and_cross_validate_with_no_code_change(tmp_path, monkeypatch):
    write_allidb1(tmp_path / "fields", fields=4)
    monkeypatch.setattr("blastseg.segment.deep.DeepSegmenter.load", lambda *args, **kwargs: ColourSegmenter())
    config = ClassifyConfig.model_validate({"data": {"path": str(tmp_path / "fields")}, "folds": 3, "random_forest": {"n_estimators": 20}})
    scores = train_classifier(config, tmp_path / "run")
    assert scores.counts == {"blast": 6, "normal": 10}
    assert scores.macro_f1 == 1.0 and scores.majority_baseline["macro_f1"] == pytest.approx(0.3846, abs=1e-4)
    assert (tmp_path / "run" / "unmatched_centroids.csv").read_text().count("Im00") == 3
    with pytest.raises(BlastsegError, match="already holds a run"):
        train_classifier(config, tmp_path / "run")

    # blasts differ from normal cells by their nucleus's share, not by the cells' roundness
    two = config.model_copy(update={"features": ["eccentricity", "nc_ratio"]})
    importance = train_classifier(two, tmp_path / "two").feature_importance
    assert list(importance) == ["nc_ratio", "eccentricity"]  # the most important first
    assert importance["nc_ratio"]["mean"] > 0.3 and abs(importance["eccentricity"]["mean"]) < 0.05
    assert json.loads((tmp_path / "two" / "cv.json").read_text())["feature_importance"] == importance


@pytest.mark.slow  # trains and cross-validates classifiers on several sources
def test_fields_labelled_as_a_whole_give_every_cell_their_label_and_are_scored_per_image(tmp_path, monkeypatch):
    for i in range(12):  # class folders of fields, as all_blasts has them: the label is the image's
        diagnosis = "blast" if i % 2 else "benign"
        cells = FIELD_CELLS if diagnosis == "blast" else [(c, r, NORMAL_NUCLEUS) for c, r, _ in FIELD_CELLS]
        (tmp_path / "fields" / diagnosis).mkdir(parents=True, exist_ok=True)
        write_png(tmp_path / "fields" / diagnosis / f"f{i:02d}.png", synthetic_field((200, 300), cells, seed=i)[0])
    monkeypatch.setattr("blastseg.segment.deep.DeepSegmenter.load", lambda *args, **kwargs: ColourSegmenter())
    recipe = {"data": {"path": str(tmp_path / "fields"), "label_cells": "every"}, "folds": 3, "random_forest": {"n_estimators": 20}}
    scores = train_classifier(ClassifyConfig.model_validate(recipe), tmp_path / "every")
    # every cell inherits its field's label, though half the cells of a "blast" field have small nuclei
    assert scores.counts == {"benign": 24, "blast": 24} and scores.macro_f1 < 0.9
    assert scores.per_image["images"] == 12 and scores.per_image["accuracy"] == 1.0
    recipe["data"]["label_cells"] = "centre"
    centre = train_classifier(ClassifyConfig.model_validate(recipe), tmp_path / "centre")
    assert centre.counts == {"benign": 6, "blast": 6} and centre.per_image is None


@pytest.mark.slow  # trains and cross-validates classifiers on several sources
def test_several_sources_join_one_classifier_with_their_classes_renamed_or_left_out(tmp_path, monkeypatch):
    """Single-cell crops (a platelet folder left out) and fields labelled as a whole (only the
    listed ones; 'ALL' renamed blast, 'benign' renamed normal) train one classifier; an image name
    that both sources use stays two images (two groups for the folds)."""
    for i in range(12):
        kind = "blast" if i % 2 else "normal"
        crop, _ = synthetic_cell(cell_radius=30, nucleus_radius=BLAST_NUCLEUS if kind == "blast" else NORMAL_NUCLEUS, seed=i)
        (tmp_path / "crops" / kind).mkdir(parents=True, exist_ok=True)
        write_png(tmp_path / "crops" / kind / f"x{i:02d}.png", crop)
        diagnosis, nucleus = ("ALL", BLAST_NUCLEUS) if i % 2 else ("benign", NORMAL_NUCLEUS)
        (tmp_path / "fields" / diagnosis).mkdir(parents=True, exist_ok=True)
        write_png(tmp_path / "fields" / diagnosis / f"x{i:02d}.png", synthetic_field((200, 300), [(c, r, nucleus) for c, r, _ in FIELD_CELLS], seed=i)[0])
    (tmp_path / "crops" / "platelet").mkdir()
    write_png(tmp_path / "crops" / "platelet" / "p00.png", synthetic_cell(cell_radius=10, nucleus_radius=4)[0])
    (tmp_path / "listed.txt").write_text("# the fields to train on\n" + "\n".join(f"x{i:02d}" for i in range(6)) + "\n")
    monkeypatch.setattr("blastseg.segment.deep.DeepSegmenter.load", lambda *args, **kwargs: ColourSegmenter())
    recipe = {
        "data": {
            "path": str(tmp_path / "crops"),
            "classes": {"platelet": None},
            "also": [
                {
                    "path": str(tmp_path / "fields"),
                    "image_list": str(tmp_path / "listed.txt"),
                    "label_cells": "every",
                    "classes": {"ALL": "blast", "benign": "normal"},
                }
            ],
        },
        "folds": 3,
        "random_forest": {"n_estimators": 20},
    }
    scores = train_classifier(ClassifyConfig.model_validate(recipe), tmp_path / "run")
    # crops: 6 + 6 centre cells; fields x00-x05: 3 ALL and 3 benign fields of 4 cells each
    assert scores.counts == {"blast": 6 + 12, "normal": 6 + 12} and scores.left_out_classes == {}
    assert scores.macro_f1 == 1.0 and scores.per_image["images"] == 12 + 6
    card = json.loads((tmp_path / "run" / "classifier.json").read_text())
    assert card["classes"] == ["blast", "normal"] and card["trained_on"] == f"{tmp_path / 'crops'} + {tmp_path / 'fields'}"
    recipe["data"]["also"][0]["max_cells_per_image"] = 3  # of each field's 4 cells
    capped = train_classifier(ClassifyConfig.model_validate(recipe), tmp_path / "capped")
    assert capped.counts == {"blast": 6 + 9, "normal": 6 + 9}
    recipe["data"]["also"][0]["classes"] = {"ALL": None, "benign": None}
    with pytest.raises(BlastsegError, match="every image's class is left out by 'classes'"):
        train_classifier(ClassifyConfig.model_validate(recipe), tmp_path / "none")


def test_the_magenta_segmenter_keeps_the_white_cell_and_not_the_faintly_violet_red_cells():
    image = np.full((120, 160, 3), 235, np.uint8)
    yy, xx = np.mgrid[:120, :160]
    for y, x in [(20, 20), (20, 60), (20, 100), (20, 140), (100, 20), (100, 60), (100, 140)]:
        image[(yy - y) ** 2 + (xx - x) ** 2 < 10**2] = (200, 180, 215)  # red cells: a* 14 above the background
    cell = (yy - 70) ** 2 + (xx - 100) ** 2 < 14**2
    image[cell] = (170, 110, 200)  # a* 42 above
    image[(yy - 70) ** 2 + (xx - 100) ** 2 < 7**2] = (90, 40, 140)
    found = create_segmenter("magenta").segment(image)
    assert found.info == {"objects": 1, "left_out": 7}
    assert (found.labels[~cell] > 0).sum() < 0.15 * cell.sum() and (found.labels[cell] > 0).mean() > 0.95
    assert abs(int((found.labels == 2).sum()) - 149) < 0.15 * 149  # the drawn nucleus: 149 pixels
    assert create_segmenter("magenta", min_relative_magenta=0).segment(image).info["objects"] == 8  # Otsu alone takes the red cells too


@pytest.mark.slow
def test_classify_train_cli_on_allidb2_names_then_predict_with_the_classifier(tmp_path):
    write_allidb2(tmp_path / "allidb2")
    recipe = tmp_path / "blast.yaml"
    # cells from the bundled network, as predict will find them, though the crops have masks
    recipe.write_text(f"data:\n  path: {tmp_path / 'allidb2'}\n  segmentation: model\nfolds: 3\nrandom_forest:\n  n_estimators: 30\n")
    result = run("classify", "train", "--config", str(recipe), "--out", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    cv = json.loads((tmp_path / "run" / "cv.json").read_text())
    assert cv["counts"] == {"blast": 6, "normal": 6} and cv["macro_f1"] == 1.0
    assert (tmp_path / "run" / "confusion.png").read_bytes()[:4] == b"\x89PNG"
    assert sorted((tmp_path / "run").iterdir()) == owned_files(tmp_path / "run", CLASSIFIER_RUN)  # what --overwrite may replace
    assert (tmp_path / "run" / "confusion.csv").read_text().splitlines()[1] == "blast,6,0"

    image = tmp_path / "field.png"
    write_png(image, synthetic_field((200, 300), FIELD_CELLS)[0])
    result = run("predict", str(image), "--classifier", str(tmp_path / "run"), "--out", str(tmp_path / "out"), "--xyc", "--blast-alert", "50")
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    header, *rows = (tmp_path / "out" / "cells.csv").read_text().splitlines()
    assert header.endswith(",class,probability") and len(rows) == summary["cells"] == 4
    assert summary["counts"] == {"blast": 2, "normal": 2} and summary["blast_percent"] == 50.0
    assert summary["blast_percent_ci"] == [15.0, 85.0]
    assert summary["per_image"]["field.png"]["blast_alert"] and summary["blast_alert_images"] == ["field.png"]
    assert "blasts 50.0% (95% CI 15.0-85.0); 1 image(s) at or over 50.0% blasts" in result.stderr
    # the blast centroids of cells.csv, in ALL-IDB1's format, near the drawn blasts at (x, y) = (50, 50) and (250, 130)
    blasts = sorted((round(float(r["x"])), round(float(r["y"]))) for r in csv.DictReader(io.StringIO("\n".join([header, *rows]))) if r["class"] == "blast")
    xyc = read_xyc(tmp_path / "out" / "field.xyc")
    assert sorted(map(tuple, xyc.astype(int).tolist())) == blasts
    assert np.abs(xyc[np.argsort(xyc[:, 0])] - [(50, 50), (250, 130)]).max() < 15
    assert summary["models"]["classifier"]["classes"] == ["blast", "normal"]
    assert summary["models"]["segmentation"]["threshold"] == 0.5


def test_classified_cells_are_counted_and_drawn_in_their_colours():
    write_classifier = ClassifierCard(kind="random_forest", classes=["blast", "normal"], features=["nc_ratio"])
    forest = RandomForestClassifier(n_estimators=5, random_state=0).fit([[0.1], [0.2], [0.6], [0.7]], [1, 1, 0, 0])
    classifier = CellClassifier(write_classifier, forest=forest_arrays(forest, 2))
    image, labels = synthetic_field((200, 300), FIELD_CELLS)
    result = analyze_labels("field.png", image, labels, classifier=classifier)
    by_place = {(round(row["y"]), round(row["x"])): row["class"] for row in result.cells}
    assert by_place == {(50, 50): "blast", (50, 150): "normal", (130, 250): "blast", (140, 80): "normal"}
    assert result.summary() == CellCounts(cells=4, counts={"blast": 2, "normal": 2}, blast_percent=50.0, blast_percent_ci=(15.0, 85.0))
    drawn = result.overlay()
    colours = class_colours(classifier.classes)
    for row in result.cells:  # the top-left corner of each box is drawn in its class colour
        assert tuple(drawn[row["bbox_y0"] + 5, row["bbox_x0"]]) == colours[row["class"]]
    assert count_cells([], ["blast", "normal"]).blast_percent is None


def test_blast_reports_need_a_classifier_that_knows_blasts(tmp_path):
    image = tmp_path / "field.png"
    write_png(image, synthetic_field((200, 300), FIELD_CELLS)[0])
    otsu = create_segmenter("otsu", target="cell")
    with pytest.raises(ConfigError, match="--xyc and --blast-alert need a classifier with a 'blast' class; none was given"):
        segment_files([image], otsu, tmp_path / "out", report=BlastReport(xyc=True, alert_percent=10))
    normal_types = CellClassifier(ClassifierCard(kind="random_forest", classes=["lymphocyte", "neutrophil"], features=["nc_ratio"]))
    with pytest.raises(ConfigError, match="--xyc needs a classifier with a 'blast' class; its classes are lymphocyte, neutrophil"):
        segment_files([image], otsu, tmp_path / "out", classifier=normal_types, report=BlastReport(xyc=True))
    with pytest.raises(ConfigError, match="--blast-alert needs a classifier"):
        predict_files([image], tmp_path / "out", PredictOptions(blast_alert=5))  # before any model loads
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_the_blast_percentage_comes_with_its_wilson_interval():
    """Worked by hand: with z = 1.96, none of 10 cells gives (0, z^2/n / (1 + z^2/n)) = (0, 27.75 %)."""
    none_of_ten = count_cells([{"class": "normal"}] * 10, ["blast", "normal"])
    assert none_of_ten.blast_percent == 0.0 and none_of_ten.blast_percent_ci == (0.0, 27.75)
    assert count_cells([{"class": "blast"}] * 10, ["blast", "normal"]).blast_percent_ci == (72.25, 100.0)
    many = count_cells([{"class": "blast"}] * 100 + [{"class": "normal"}] * 300, ["blast", "normal"])
    low, high = many.blast_percent_ci
    assert low < 25.0 < high and high - low < 9  # 400 cells pin 25 % down to about +-4.3 points
    assert count_cells([{"class": "normal"}], ["normal", "lymphocyte"]).blast_percent_ci is None  # no blast class


def test_analyze_runs_the_bundled_models_on_the_bundled_field():
    import blastseg

    result = blastseg.analyze(blastseg.example_image_path(), device="cpu")
    assert result.classes == ["eosinophil", "lymphocyte", "monocyte", "neutrophil"]
    assert result.summary().cells == len(result.cells) == 1
    assert 0.25 <= result.cells[0]["probability"] <= 1
    segmenter = blastseg.DeepSegmenter.load(device="cpu")  # loaded once for many images
    assert analyze(blastseg.read_image(blastseg.example_image_path()), segmenter, classifier=None).classes is None


def test_recipe_mistakes_are_one_line_errors(tmp_path):
    recipe = tmp_path / "bad.yaml"
    mistakes = {
        "data:\n  path: x\n  instances:\n    min_aera: 5\n": "unknown key 'data.instances.min_aera'; valid keys: open_size",
        "data:\n  path: x\nfeatures: [area, size]\n": "unknown feature",
        "data:\n  path: x\n  also: [{path: y, segmenter: watershed}]\n": "data.also.0.segmenter: Input should be 'network' or 'magenta'",
        "data:\n  path: x\nmodel: cnn\ncell_diameter: 40\n": "cell_diameter sets how a random forest measures cells",
    }
    for text, message in mistakes.items():
        recipe.write_text(text)
        with pytest.raises(BlastsegError, match=message):
            load_config(recipe, ClassifyConfig)
    write_allidb2(tmp_path / "few", per_class=2)
    config = ClassifyConfig.model_validate({"data": {"path": str(tmp_path / "few")}, "folds": 3})
    with pytest.raises(BlastsegError, match="at least 3 cells each"):
        train_classifier(config, tmp_path / "run")


def test_cells_resampled_to_one_diameter_measure_alike_at_any_magnification():
    image, labels = synthetic_field((200, 300), FIELD_CELLS)
    instances = skimage_label(labels > 0).astype(np.int32)
    big_image = cv2.resize(image, (600, 400), interpolation=cv2.INTER_LINEAR)
    big_labels = cv2.resize(labels, (600, 400), interpolation=cv2.INTER_NEAREST)
    big_instances = cv2.resize(instances, (600, 400), interpolation=cv2.INTER_NEAREST)
    native, twice = cell_rows("a", image, labels, instances), cell_rows("b", big_image, big_labels, big_instances)
    assert [b["area"] / a["area"] for a, b in zip(native, twice)] == pytest.approx([4.0] * 4, rel=0.02)  # pixels: 4x the area
    small, large = resampled_features(image, labels, instances, 24), resampled_features(big_image, big_labels, big_instances, 24)
    for cell in small:
        assert small[cell]["area"] == pytest.approx(np.pi * 12**2, rel=0.1) and large[cell]["area"] == pytest.approx(np.pi * 12**2, rel=0.1)
        for name in ("nc_ratio", "circularity", "r", "cyto_s"):
            assert large[cell][name] == pytest.approx(small[cell][name], rel=0.1, abs=0.02)


def test_predict_takes_none_for_no_classifier():
    assert PredictOptions(classifier="none").classifier is None and PredictOptions(classifier="None").classifier is None
    assert PredictOptions(classifier="default").classifier == "default" and PredictOptions().classifier is None


def test_a_forest_that_measures_cells_at_one_diameter_calls_them_alike_at_any_magnification(tmp_path, monkeypatch):
    write_allidb1(tmp_path / "fields", fields=4)
    monkeypatch.setattr("blastseg.segment.deep.DeepSegmenter.load", lambda *args, **kwargs: ColourSegmenter())
    recipe = {"data": {"path": str(tmp_path / "fields")}, "folds": 3, "random_forest": {"n_estimators": 20}, "cell_diameter": 24}
    recipe["features"] = ["nc_ratio"]
    scores = train_classifier(ClassifyConfig.model_validate(recipe), tmp_path / "run")
    assert scores.macro_f1 == 1.0
    classifier = CellClassifier.load(tmp_path / "run")
    assert classifier.card.cell_diameter == 24
    image, labels = synthetic_field((200, 300), FIELD_CELLS)
    big_image = cv2.resize(image, (900, 600), interpolation=cv2.INTER_LINEAR)
    big_labels = cv2.resize(labels, (900, 600), interpolation=cv2.INTER_NEAREST)
    small, large = analyze_labels("a", image, labels, classifier=classifier), analyze_labels("b", big_image, big_labels, classifier=classifier)
    assert [row["area"] for row in large.cells] == pytest.approx([9 * row["area"] for row in small.cells], rel=0.05)  # the table keeps pixels
    called = sorted((round(r["x"]), r["class"]) for r in small.cells)
    assert called == sorted((round(r["x"] / 3), r["class"]) for r in large.cells)
    assert [c for _, c in called] == ["blast", "normal", "normal", "blast"]  # x = 50, 80, 150, 250
