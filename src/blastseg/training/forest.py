"""Fitting the random forest of a classifier recipe with scikit-learn, and turning it into the
plain arrays :class:`~blastseg.classify.forest.ForestArrays` predicts from.

>>> features = np.array([[0.0], [1.0], [2.0], [3.0]]); labels = np.array([0, 0, 1, 1])
>>> forest = forest_arrays(fit_forest(features, labels, ForestParams(n_estimators=5)), n_classes=2)
>>> forest.predict_proba(np.array([[0.5], [2.5]])).argmax(axis=1).tolist()
[0, 1]
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, field_validator
from sklearn.ensemble import RandomForestClassifier

from blastseg.classify.forest import ForestArrays
from blastseg.config import StrictModel


class ForestParams(StrictModel):
    """scikit-learn ``RandomForestClassifier`` settings (YAML ``random_forest:`` section)."""

    n_estimators: int = Field(default=300, ge=1)
    max_depth: int | None = Field(default=None, ge=1)
    min_samples_leaf: int = Field(default=1, ge=1)
    max_features: str | int | float | None = Field(
        default="sqrt", description="features tried per split: sqrt, log2, a count, a fraction in (0, 1], or null (all)"
    )
    class_weight: Literal["balanced", "balanced_subsample"] | None = Field(default="balanced", description="'balanced' weighs rare classes up; null: none")

    @field_validator("max_features")
    @classmethod
    def _known_max_features(cls, value: str | int | float | None) -> str | int | float | None:
        valid = (
            value is None
            or value in ("sqrt", "log2")
            or (isinstance(value, int) and not isinstance(value, bool) and value >= 1)
            or (isinstance(value, float) and 0 < value <= 1)
        )
        if not valid:
            raise ValueError(f"must be sqrt, log2, a whole number >= 1, a fraction in (0, 1] or null, got {value!r}")
        return value


def fit_forest(features: np.ndarray, labels: np.ndarray, params: ForestParams, seed: int = 0) -> RandomForestClassifier:
    """Fit a forest on ``features`` (cells x features) and integer ``labels``."""
    forest = RandomForestClassifier(**params.model_dump(), random_state=seed, n_jobs=1)
    return forest.fit(features, labels)


def forest_arrays(forest: RandomForestClassifier, n_classes: int) -> ForestArrays:
    """Every node of every fitted tree as plain arrays (child indices local to their tree), with
    class fractions over all ``n_classes`` labels 0..n-1, zero for those absent from the fit."""
    trees = [estimator.tree_ for estimator in forest.estimators_]
    values = [tree.value[:, 0, :] for tree in trees]
    fractions = [np.zeros((len(v), n_classes)) for v in values]
    for full, v in zip(fractions, values):
        full[:, forest.classes_.astype(int)] = v / np.maximum(v.sum(axis=1, keepdims=True), 1e-12)
    return ForestArrays(
        offsets=np.cumsum([0] + [tree.node_count for tree in trees[:-1]]).astype(np.int64),
        left=np.concatenate([tree.children_left for tree in trees]).astype(np.int32),
        right=np.concatenate([tree.children_right for tree in trees]).astype(np.int32),
        feature=np.concatenate([tree.feature for tree in trees]).astype(np.int32),
        threshold=np.concatenate([tree.threshold for tree in trees]).astype(np.float64),  # exact split points
        leaf_fractions=np.concatenate(fractions).astype(np.float32),
    )
