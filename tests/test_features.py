"""The scale-free nucleus and cytoplasm descriptors: known answers on drawn cells, and the same
row for the same cell at another magnification or under another stain strength."""

import cv2
import numpy as np
import pytest

from blastseg.features import FEATURE_COLUMNS, cell_features
from tests.synthetic import disc

SIZE = 120


def features_of(image: np.ndarray, cell: np.ndarray, nucleus: np.ndarray) -> dict[str, float]:
    return cell_features(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), cv2.cvtColor(image, cv2.COLOR_RGB2HSV), cell, nucleus)


def drawn_cell(nucleus_shape: np.ndarray | None = None, chromatin: float = 0.0, spots: int = 0, seed: int = 0):
    """A pale-violet cell of radius 50 with a dark nucleus (a disc of radius 25 unless given), mottled
    by ``chromatin`` (grey levels of blobs), with ``spots`` pale nucleoli: (image, cell, nucleus)."""
    shape = (SIZE, SIZE)
    cell = disc(shape, (60, 60), 50)
    nucleus = disc(shape, (60, 60), 25) if nucleus_shape is None else nucleus_shape
    image = np.zeros((*shape, 3), np.float64)
    image[:] = (235, 225, 215)
    image[cell] = (200, 175, 215)
    image[nucleus] = (90, 50, 150)
    if chromatin:
        blobs = cv2.GaussianBlur(np.random.default_rng(seed).normal(0, 1, shape), (0, 0), 2.0)
        image[nucleus] += chromatin * (blobs / blobs.std())[nucleus, None]
    for k in range(spots):
        image[disc(shape, (52 + 16 * k, 55), 3)] = (170, 150, 200)
    return np.clip(image, 0, 255).astype(np.uint8), cell, nucleus


def test_every_column_is_given_and_a_cell_without_a_nucleus_gets_zeros_for_it():
    image, cell, _ = drawn_cell()
    row = features_of(image, cell, np.zeros_like(cell))
    assert list(row) == list(FEATURE_COLUMNS)
    assert row["nuc_solidity"] == row["nucleoli"] == row["cyto_ring_median"] == 0.0
    assert row["cyto_s"] > 0  # the cytoplasm's colour is still measured


def test_a_ring_half_the_radius_and_an_eccentric_nucleus():
    image, cell, nucleus = drawn_cell()
    row = features_of(image, cell, nucleus)
    assert row["cyto_ring_median"] == pytest.approx(0.5, abs=0.03)  # (50 - 25) / 50, worked by hand
    assert row["cyto_ring_min"] == pytest.approx(0.5, abs=0.04)
    shifted = disc(cell.shape, (60, 80), 25)  # 5 pixels from the cell's edge on one side
    row = features_of(*drawn_cell(shifted)[:2], shifted)
    assert row["cyto_ring_min"] == pytest.approx(0.1, abs=0.04) and row["cyto_ring_median"] > 0.35


def test_lobes_lower_the_solidity_and_raise_the_roughness():
    disc_row = features_of(*drawn_cell())
    lobes = disc((SIZE, SIZE), (45, 45), 12) | disc((SIZE, SIZE), (45, 75), 12) | disc((SIZE, SIZE), (75, 60), 12)
    lobed_row = features_of(*drawn_cell(lobes))
    assert disc_row["nuc_solidity"] > 0.97 and lobed_row["nuc_solidity"] < 0.85
    assert disc_row["nuc_roughness"] < 0.02 and lobed_row["nuc_roughness"] > 0.05


def test_coarse_chromatin_and_nucleoli_are_seen():
    smooth, mottled, spotted = features_of(*drawn_cell()), features_of(*drawn_cell(chromatin=25)), features_of(*drawn_cell(spots=2))
    assert smooth["nuc_grey_cv"] < 0.01 < 0.1 < mottled["nuc_grey_cv"]
    assert smooth["nucleoli"] == 0 and spotted["nucleoli"] == 2
    assert spotted["nucleoli_share"] == pytest.approx(2 * 29 / (np.pi * 25**2), rel=0.35)  # two discs of radius 3 (29 pixels each)
    assert smooth["nuc_cyto_contrast"] < 0.5  # the nucleus is under half as bright as its cytoplasm


def test_the_same_cell_at_twice_the_magnification_gives_nearly_the_same_row():
    image, cell, nucleus = drawn_cell(chromatin=25, spots=2, seed=3)
    twice = [cv2.resize(a, None, fx=2, fy=2, interpolation=cv2.INTER_LINEAR) for a in (image,)] + [
        cv2.resize(m.astype(np.uint8), None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST).astype(bool) for m in (cell, nucleus)
    ]
    small, large = features_of(image, cell, nucleus), features_of(*twice)
    for name in ("cyto_ring_median", "nuc_solidity", "nuc_grey_cv", "nuc_cyto_contrast", "nucleoli", "nucleoli_share", "nuc_glcm_homogeneity_mid"):
        assert large[name] == pytest.approx(small[name], rel=0.15, abs=0.02), name
    lbp = np.array([[row[f"nuc_lbp_{i}"] for i in range(10)] for row in (small, large)])
    assert np.abs(lbp[0] - lbp[1]).sum() / 2 < 0.25  # the histograms share over 75 % of their mass


def test_a_paler_stain_moves_no_texture_value():
    image, cell, nucleus = drawn_cell(chromatin=25, seed=4)
    paler = np.clip(image.astype(np.float64) * 0.8 + 40, 0, 255).astype(np.uint8)
    strong, pale = features_of(image, cell, nucleus), features_of(paler, cell, nucleus)
    for name in FEATURE_COLUMNS:
        if name.startswith(("nuc_glcm", "nuc_lbp")):
            assert pale[name] == pytest.approx(strong[name], rel=0.1, abs=0.02), name
