"""Bars measured on the shared Zheng data; skipped when ../shared/data is absent."""

import numpy as np
import pytest

from blastseg.data import scan_dataset
from blastseg.evaluate import evaluate_segmenter
from blastseg.segment import create_segmenter

pytestmark = [pytest.mark.realdata, pytest.mark.slow]


@pytest.mark.parametrize("group", ["Dataset1", "Dataset2"])
def test_unsupervised_kmeans_meets_the_bars(shared_data, group):
    samples = scan_dataset(shared_data / "zheng_wbc" / group)
    _, summary = evaluate_segmenter(samples, create_segmenter("kmeans", target="multiclass"), "multiclass")
    assert summary["nucleus"]["all"]["dice"]["mean"] >= 0.93
    assert summary["cell"]["all"]["dice"]["mean"] >= 0.85


@pytest.mark.parametrize("group", ["Dataset1", "Dataset2"])
def test_sweep_with_ground_truth_picks_a_better_nucleus(shared_data, group):
    samples = scan_dataset(shared_data / "zheng_wbc" / group)[::4]
    _, summary = evaluate_segmenter(samples, create_segmenter("kmeans", target="nucleus"), "nucleus", sweep=True)
    assert summary["nucleus"]["all"]["dice"]["mean"] >= 0.95


def test_otsu_green_baseline_is_what_the_literature_reports(shared_data):
    samples = scan_dataset(shared_data / "zheng_wbc" / "Dataset1")
    _, summary = evaluate_segmenter(samples, create_segmenter("otsu", target="nucleus"), "nucleus")
    assert summary["nucleus"]["all"]["dice"]["mean"] == pytest.approx(0.66, abs=0.03)


def test_bccd_field_reads_with_boxes(shared_data):
    samples = scan_dataset(shared_data / "bccd")
    assert len(samples) == 364
    image, labels = samples[0].load()
    assert image.shape == (480, 640, 3) and labels is None
    assert any(box.label == "WBC" for box in samples[0].boxes)
    assert np.all([b.xmax > b.xmin for b in samples[0].boxes])
