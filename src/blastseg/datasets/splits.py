"""Seeded train/validation/test splits and k-fold splits of a scanned dataset.

Samples are identified as ``GROUP/NAME`` (``Dataset1/001``), since names repeat across groups.
Splits are stratified by group, so each part holds images of every sub-dataset.

>>> from pathlib import Path
>>> samples = [Sample(Path(f"{g}/{i:03d}.bmp"), group=g) for g in ("A", "B") for i in range(10)]
>>> split = split_samples(samples, (0.6, 0.2, 0.2), seed=0)
>>> [len(split[part]) for part in ("train", "val", "test")]
[12, 4, 4]
>>> sorted({name.split("/")[0] for name in split["test"]})
['A', 'B']
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from blastseg.datasets.layouts import Sample
from blastseg.errors import DatasetError

PARTS = ("train", "val", "test")


def sample_id(sample: Sample) -> str:
    return f"{sample.group}/{sample.name}" if sample.group else sample.name


def _by_group(samples: Sequence[Sample]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for sample in samples:
        groups.setdefault(sample.group, []).append(sample_id(sample))
    return groups


def split_samples(samples: Sequence[Sample], fractions: Sequence[float], seed: int) -> dict[str, list[str]]:
    """Shuffle each group with ``seed`` and cut it into train/val/test by ``fractions``."""
    if len(fractions) != 3 or any(f < 0 for f in fractions) or not np.isclose(sum(fractions), 1.0):
        raise DatasetError(f"split needs three non-negative fractions summing to 1 (train, val, test), got {list(fractions)}")
    split: dict[str, list[str]] = {part: [] for part in PARTS}
    rng = np.random.default_rng(seed)
    for ids in _by_group(samples).values():
        order = [ids[i] for i in rng.permutation(len(ids))]
        n_val = round(fractions[1] * len(ids))
        n_test = round(fractions[2] * len(ids))
        split["val"] += order[:n_val]
        split["test"] += order[n_val : n_val + n_test]
        split["train"] += order[n_val + n_test :]
    if not split["train"] or not split["val"]:
        raise DatasetError(f"{len(samples)} annotated images are too few to split into train and validation parts")
    return split


def kfold_splits(samples: Sequence[Sample], folds: int, val_fraction: float, seed: int) -> list[dict[str, list[str]]]:
    """``folds`` splits whose test parts partition the data; validation is cut from the rest."""
    if folds < 2:
        raise DatasetError(f"cross-validation needs at least 2 folds, got {folds}")
    if folds > len(samples):
        raise DatasetError(f"{folds}-fold cross-validation needs at least {folds} images; the dataset has {len(samples)}: lower --folds")
    rng = np.random.default_rng(seed)
    shuffled = {g: [ids[i] for i in rng.permutation(len(ids))] for g, ids in _by_group(samples).items()}
    splits = []
    for fold in range(folds):
        split: dict[str, list[str]] = {part: [] for part in PARTS}
        for ids in shuffled.values():
            test = ids[fold::folds]
            rest = [i for i in ids if i not in test]
            n_val = max(1, round(val_fraction * len(ids)))
            split["test"] += test
            split["val"] += rest[:n_val]
            split["train"] += rest[n_val:]
        if not split["train"] or not split["test"]:
            part = "training" if not split["train"] else "test"
            raise DatasetError(f"fold {fold + 1} of {folds} has no {part} image (the folds are cut within each sub-dataset): lower --folds")
        splits.append(split)
    return splits


def select(samples: Sequence[Sample], ids: Sequence[str]) -> list[Sample]:
    """The samples named in ``ids``, in that order; a missing one is a :class:`DatasetError`."""
    by_id = {sample_id(s): s for s in samples}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise DatasetError(f"{len(missing)} image(s) of the saved split are not in the dataset, e.g. {missing[0]}")
    return [by_id[i] for i in ids]
