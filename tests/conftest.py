"""Fixtures shared by every test module (helpers live in :mod:`tests.synthetic`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.synthetic import SHARED_DATA, synthetic_cell


@pytest.fixture
def cell():
    return synthetic_cell()


@pytest.fixture
def shared_data() -> Path:
    if not (SHARED_DATA / "zheng_wbc").is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (clone beside ../shared to run)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def cells_dataset(tmp_path_factory) -> Path:
    """images/ + masks/ (0/128/255) of 10 synthetic cells in two sub-folders' worth of sizes."""
    root = tmp_path_factory.mktemp("cells")
    (root / "images").mkdir()
    (root / "masks").mkdir()
    for i in range(10):
        image, labels = synthetic_cell((64, 72), (30 + i % 5, 34 + i % 3), 20, 9, seed=i)
        Image.fromarray(image).save(root / "images" / f"c{i:02d}.png")
        Image.fromarray(np.array([0, 128, 255], np.uint8)[labels]).save(root / "masks" / f"c{i:02d}.png")
    return root
