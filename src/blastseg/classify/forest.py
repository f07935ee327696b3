"""A random forest on cells-table features, stored as plain arrays and predicted without sklearn's
pickles: every tree becomes rows of ``left, right, feature, threshold`` and the class fractions of
its leaves, so a classifier file holds numbers only (fitting is in :mod:`blastseg.training.forest`).

>>> one_split = ForestArrays(offsets=np.array([0]), left=np.array([1, -1, -1]), right=np.array([2, -1, -1]),
...     feature=np.array([0, -2, -2]), threshold=np.array([1.5, 0, 0]), leaf_fractions=np.array([[.5, .5], [1, 0], [0, 1]]))
>>> one_split.predict_proba(np.array([[0.5], [2.5]])).tolist()
[[1.0, 0.0], [0.0, 1.0]]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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

    def to_dict(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, arrays: dict[str, np.ndarray]) -> ForestArrays:
        return cls(**{name: arrays[name] for name in cls.__dataclass_fields__})

    def check(self, n_features: int, n_classes: int) -> None:
        """Raise ``ValueError`` unless the arrays form a forest over these features and classes.

        Every child index must point further into its own tree (as scikit-learn stores trees),
        so a crafted file cannot make prediction loop forever or read outside the arrays.
        """
        for name in ("offsets", "left", "right", "feature"):
            if getattr(self, name).ndim != 1 or getattr(self, name).dtype.kind not in "iu":
                raise ValueError(f"{name} must be a 1-D array of integers")
        nodes = self.left.size
        if not all(getattr(self, n).shape[0] == nodes for n in ("right", "feature", "threshold", "leaf_fractions")):
            raise ValueError("node arrays of different lengths")
        if self.leaf_fractions.ndim != 2 or self.leaf_fractions.shape[1] != n_classes:
            raise ValueError(f"leaf fractions over {self.leaf_fractions.shape[-1]} classes, expected {n_classes}")
        if not (np.all(np.isfinite(self.threshold)) and np.all(np.isfinite(self.leaf_fractions))):
            raise ValueError("thresholds and leaf fractions must be finite")
        offsets = self.offsets.astype(np.int64)
        if not offsets.size or offsets[0] != 0 or np.any(np.diff(offsets) <= 0) or offsets[-1] >= nodes:
            raise ValueError("tree offsets must start at 0 and increase within the node arrays")
        node = np.arange(nodes)
        start = offsets[np.searchsorted(offsets, node, side="right") - 1]
        size = np.append(offsets[1:], nodes)[np.searchsorted(offsets, node, side="right") - 1] - start
        local, left, right = node - start, self.left.astype(np.int64), self.right.astype(np.int64)
        internal, leaf = left >= 0, (left == -1) & (right == -1)
        if not np.all(internal | leaf) or np.any(internal & (right < 0)):
            raise ValueError("a node with only one child")
        if np.any(internal & ((left <= local) | (right <= local) | (left >= size) | (right >= size))):
            raise ValueError("a child index that does not point further into its own tree")
        if internal.any() and (self.feature[internal].max() >= n_features or self.feature[internal].min() < 0):
            raise ValueError("a split on a feature the card does not list")

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
