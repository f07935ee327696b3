"""Fixtures shared by every test module (helpers live in :mod:`tests.synthetic`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.synthetic import SHARED_DATA, synthetic_cell


@pytest.fixture
def cell():
    return synthetic_cell()


@pytest.fixture
def shared_data() -> Path:
    if not (SHARED_DATA / "zheng_wbc").is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (clone beside ../shared to run)")
    return SHARED_DATA
