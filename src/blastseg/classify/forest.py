"""A random forest on cells-table features, stored as plain arrays and predicted without sklearn's
pickles: every tree becomes rows of ``left, right, feature, threshold`` and the class fractions of
its leaves, so a classifier file holds numbers only.

>>> import numpy as np
>>> features = np.array([[0.0], [1.0], [2.0], [3.0]]); labels = np.array([0, 0, 1, 1])
>>> forest = ForestArrays.from_sklearn(fit_forest(features, labels, ForestParams(n_estimators=5)))
>>> forest.predict_proba(np.array([[0.5], [2.5]])).argmax(axis=1).tolist()
[0, 1]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from sklearn.ensemble import RandomForestClassifier

from blastseg.cells import COLUMNS

# cells-table columns that describe the cell itself (not where it is or which image it is in)
FEATURES = tuple(c for c in COLUMNS if c not in ("image", "cell_id", "x", "y", "bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1", "touches_border"))


class ForestParams(BaseModel):
    """scikit-learn ``RandomForestClassifier`` settings (YAML ``random_forest:`` section)."""

    model_config = ConfigDict(extra="forbid")

    n_estimators: int = Field(default=300, ge=1)
    max_depth: int | None = Field(default=None, ge=1)
    min_samples_leaf: int = Field(default=1, ge=1)
    max_features: float | str = "sqrt"
    class_weight: str | None = Field(default="balanced", description="'balanced' weighs rare classes up; null: none")


def fit_forest(features: np.ndarray, labels: np.ndarray, params: ForestParams, seed: int = 0) -> RandomForestClassifier:
    """Fit a forest on ``features`` (cells x FEATURES) and integer ``labels``."""
    forest = RandomForestClassifier(**params.model_dump(), random_state=seed, n_jobs=1)
    return forest.fit(features, labels)


@dataclass
class ForestArrays:
    """Every node of every tree, concatenated; ``offsets[t]`` is where tree ``t`` starts.

    Child indices are local to their tree (-1 at a leaf); ``leaf_fractions`` holds each node's
    class fractions over the classes the forest was fitted on.
    """

    offsets: np.ndarray
    left: np.ndarray
    right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    leaf_fractions: np.ndarray

    @classmethod
    def from_sklearn(cls, forest: RandomForestClassifier) -> ForestArrays:
        trees = [estimator.tree_ for estimator in forest.estimators_]
        values = [tree.value[:, 0, :] for tree in trees]
        fractions = [v / np.maximum(v.sum(axis=1, keepdims=True), 1e-12) for v in values]
        return cls(
            offsets=np.cumsum([0] + [tree.node_count for tree in trees[:-1]]).astype(np.int64),
            left=np.concatenate([tree.children_left for tree in trees]).astype(np.int32),
            right=np.concatenate([tree.children_right for tree in trees]).astype(np.int32),
            feature=np.concatenate([tree.feature for tree in trees]).astype(np.int32),
            threshold=np.concatenate([tree.threshold for tree in trees]).astype(np.float64),  # exact split points
            leaf_fractions=np.concatenate(fractions).astype(np.float32),
        )

    def to_dict(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, arrays: dict[str, np.ndarray]) -> ForestArrays:
        return cls(**{name: arrays[name] for name in cls.__dataclass_fields__})

    def check(self, n_features: int, n_classes: int) -> None:
        """Raise ``ValueError`` unless the arrays form a forest over these features and classes."""
        nodes = self.left.size
        if not all(getattr(self, n).shape[0] == nodes for n in ("right", "feature", "threshold", "leaf_fractions")):
            raise ValueError("node arrays of different lengths")
        if self.leaf_fractions.ndim != 2 or self.leaf_fractions.shape[1] != n_classes:
            raise ValueError(f"leaf fractions over {self.leaf_fractions.shape[-1]} classes, expected {n_classes}")
        internal = self.left >= 0
        if internal.any() and (self.feature[internal].max() >= n_features or self.feature[internal].min() < 0):
            raise ValueError("a split on a feature the card does not list")
        ends = np.append(self.offsets[1:], nodes)
        for start, end in zip(self.offsets, ends):
            children = np.concatenate([self.left[start:end], self.right[start:end]])
            if children.max(initial=-1) >= end - start or not np.all(children[children >= 0] > 0):
                raise ValueError("a child index outside its tree")

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Mean over trees of the class fractions of the leaf each row falls in (as sklearn)."""
        features = np.asarray(features, np.float32).astype(np.float64)  # sklearn splits float32 values
        rows = np.arange(len(features))
        total = np.zeros((len(features), self.leaf_fractions.shape[1]))
        for start in self.offsets:
            node = np.full(len(features), start)
            while True:
                internal = self.left[node] >= 0
                if not internal.any():
                    break
                go_left = features[rows, np.maximum(self.feature[node], 0)] <= self.threshold[node]
                child = np.where(go_left, self.left[node], self.right[node])
                node = np.where(internal, start + child, node)
            total += self.leaf_fractions[node]
        return total / len(self.offsets)
