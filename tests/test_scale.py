"""The red-cell ruler: known diameters recovered, rescaled images followed, overrides checked."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from blastseg.scale import RED_CELL_UM, UNKNOWN, Scale, circle_diameters, estimate_scale, given_scale, inscribed_diameters, typical
from tests.synthetic import synthetic_cell, synthetic_smear


@pytest.mark.parametrize(("shape", "diameter"), [((224, 224), 14), ((300, 400), 30), ((480, 640), 80), ((360, 363), 66)])
def test_recovers_the_red_cell_diameter(shape, diameter):
    scale = estimate_scale(synthetic_smear(shape, diameter))
    assert scale.source == "red cells"
    assert scale.cells >= 5
    assert scale.red_cell_px == pytest.approx(diameter, rel=0.1)


@pytest.mark.parametrize("factor", [0.5, 2.0])
def test_follows_a_rescaled_image(factor):
    image = synthetic_smear((480, 640), 60, seed=3)
    resized = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)
    assert estimate_scale(resized).red_cell_px / factor == pytest.approx(estimate_scale(image).red_cell_px, rel=0.05)


def test_a_large_field_with_small_red_cells_gets_a_second_look():
    # 1400 pixels wide with 30-pixel red cells: 11 pixels on the 512 copy, too small; 33 on the 1536 one
    scale = estimate_scale(synthetic_smear((1000, 1400), 30, seed=1, white_cells=3))
    assert scale.red_cell_px == pytest.approx(30, rel=0.1)


@pytest.mark.parametrize(
    "image",
    [
        np.full((200, 300, 3), 230, np.uint8),  # blank
        synthetic_cell((120, 120), (60, 60), 40, 25)[0],  # one white cell, no red cells
        np.zeros((1, 1, 3), np.uint8),
    ],
)
def test_without_red_cells_the_scale_is_unknown(image):
    assert estimate_scale(image) == UNKNOWN


def test_noise_is_not_searched_for_circles(monkeypatch):
    def no_vote(*args, **kwargs):
        raise AssertionError("the Hough vote ran on noise")

    monkeypatch.setattr(cv2, "HoughCircles", no_vote)
    noise = np.random.default_rng(0).integers(0, 256, (600, 600, 3), dtype=np.uint8)
    assert estimate_scale(noise) == UNKNOWN
    smear = synthetic_smear((400, 400), red_cell_diameter=40, seed=1)
    with pytest.raises(AssertionError, match="Hough"):
        circle_diameters(smear)


def test_one_object_is_one_circle_however_flat_its_ridge():
    # an oval 180 x 140 pixels (a white cell whose nucleus went unseen): the distance to its
    # outline peaks along a ridge, and each peak once counted as a cell, three agreeing on 139 pixels
    oval = cv2.ellipse(np.zeros((300, 300), np.uint8), (150, 150), (90, 70), 20, 0, 360, 1, -1)
    assert inscribed_diameters(oval, np.zeros(oval.shape, bool)) == pytest.approx([139], abs=1)


def test_white_cells_and_specks_do_not_decide():
    assert typical(np.array([30, 31, 29, 30, 32, 4, 5, 6, 7, 8, 95.0])) == (30.0, 5)


def test_sizes_that_disagree_give_no_answer():
    assert typical(np.array([20, 20, 20, 32, 32, 32.0])) is None


def test_given_scale_and_pixel_size_agree():
    by_diameter, by_pixel = given_scale(cell_diameter=30), given_scale(pixel_size=RED_CELL_UM / 30)
    assert by_diameter.red_cell_px == pytest.approx(by_pixel.red_cell_px)
    assert by_diameter.pixel_size_um == pytest.approx(0.25)
    assert by_pixel.source == "given: --pixel-size"
    assert Scale(30.0, "red cells", 7).as_dict() == {"red_cell_px": 30.0, "source": "red cells", "cells": 7, "pixel_size_um": 0.25}
    assert UNKNOWN.as_dict()["pixel_size_um"] is None


@pytest.mark.parametrize(
    ("options", "message"),
    [({"cell_diameter": 30, "pixel_size": 0.2}, "not both"), ({"cell_diameter": 0}, "positive"), ({"pixel_size": float("nan")}, "positive")],
)
def test_given_scale_refuses_nonsense(options, message):
    with pytest.raises(ValueError, match=message):
        given_scale(**options)


def _segment(tmp_path, *flags):
    from PIL import Image

    from tests.test_cli import invoke

    image_path = tmp_path / "smear.png"
    Image.fromarray(synthetic_smear((300, 400), 30, seed=2)).save(image_path)
    out = tmp_path / "out"
    result = invoke("segment", image_path, "--method", "kmeans", "--target", "multiclass", "--out", out, *flags)
    return result, out


def _rows_and_scale(out):
    import csv
    import json

    rows = list(csv.DictReader((out / "cells.csv").open()))
    return rows, json.loads((out / "summary.json").read_text())["per_image"]["smear.png"]["scale"]


def test_a_given_pixel_size_gives_physical_units(tmp_path):
    result, out = _segment(tmp_path, "--pixel-size", "0.5")
    assert result.returncode == 0, result.stdout
    rows, scale = _rows_and_scale(out)
    assert scale == {"red_cell_px": 15.0, "source": "given: --pixel-size", "cells": 0, "pixel_size_um": 0.5}
    assert rows
    for row in rows:
        assert float(row["area_um2"]) == pytest.approx(int(row["area"]) * 0.25, rel=1e-3)
        assert float(row["perimeter_um"]) == pytest.approx(float(row["perimeter"]) * 0.5, rel=1e-3)
        assert float(row["diameter_um"]) == pytest.approx(2 * np.sqrt(int(row["area"]) / np.pi) * 0.5, rel=1e-3)


def test_the_scale_is_estimated_per_image_without_flags(tmp_path):
    result, out = _segment(tmp_path)
    assert result.returncode == 0, result.stdout
    rows, scale = _rows_and_scale(out)
    assert scale["source"] == "red cells" and scale["red_cell_px"] == pytest.approx(30, rel=0.1)
    assert float(rows[0]["pixel_size_um"]) == pytest.approx(RED_CELL_UM / scale["red_cell_px"], rel=1e-3)


def test_both_scale_flags_at_once_are_one_line_refused(tmp_path):
    result, out = _segment(tmp_path, "--pixel-size", "0.5", "--cell-diameter", "30")
    assert result.returncode == 2
    assert "not both" in result.stdout + result.stderr
    assert not (out / "cells.csv").exists()
