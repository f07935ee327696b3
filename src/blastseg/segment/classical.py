"""Classical segmenters: thresholds (Otsu, adaptive, HSV saturation), k-means, watershed.

Each is a dataclass whose fields are its parameters, with ``segment(image) -> Segmentation``.
``target`` says what to find: ``nucleus`` (labelled 2) or ``cell`` (labelled 1); ``kmeans`` can
also return ``multiclass`` (cytoplasm 1 and nucleus 2 together).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
from sklearn.cluster import KMeans
from skimage.filters import threshold_otsu

from blastseg.errors import ConfigError, MaskError
from blastseg.labels import BINARY_TARGETS, CYTOPLASM, NUCLEUS, TARGETS, check_target, mask_to_labels
from blastseg.metrics import dice, iou, ssim
from blastseg.postprocess import clean_mask, components_touching, fill_holes, opening, split_touching
from blastseg.segment.base import Segmentation, channel

# Thresholders default to the channel where the target is darkest or brightest.
DEFAULT_CHANNEL = {"nucleus": ("green", "dark"), "cell": ("gray", "dark")}


def _threshold_side(values: np.ndarray, threshold: float, foreground: str) -> np.ndarray:
    if foreground not in ("dark", "bright"):
        raise ConfigError(f"foreground must be 'dark' or 'bright', got {foreground!r}")
    return values <= threshold if foreground == "dark" else values > threshold


@dataclass
class _Thresholder:
    """Shared fields and the final clean-up of the single-threshold segmenters."""

    target: str = "nucleus"
    channel: str | None = None
    foreground: str | None = None
    open_size: int = 3
    min_fraction: float = 0.1

    def __post_init__(self) -> None:
        check_target(self.target, BINARY_TARGETS)
        default_channel, default_side = DEFAULT_CHANNEL[self.target]
        self.channel = self.channel or default_channel
        self.foreground = self.foreground or default_side

    def _finish(self, mask: np.ndarray, info: dict[str, Any]) -> Segmentation:
        mask = clean_mask(mask, self.open_size, self.min_fraction)
        return Segmentation(mask_to_labels(mask, self.target), info=info)


@dataclass
class OtsuSegmenter(_Thresholder):
    """Global Otsu threshold of one channel (default: dark in green for nuclei, dark in grey for cells)."""

    def segment(self, image: np.ndarray) -> Segmentation:
        values = channel(image, self.channel)
        threshold = float(threshold_otsu(values)) if values.min() != values.max() else float(values.max())
        mask = _threshold_side(values, threshold, self.foreground)
        return self._finish(mask, {"threshold": threshold, "channel": self.channel})


@dataclass
class AdaptiveSegmenter(_Thresholder):
    """Local threshold: each pixel against the Gaussian-weighted mean of its neighbourhood minus ``offset``."""

    block_size: int = 101
    offset: float = 25.0

    def segment(self, image: np.ndarray) -> Segmentation:
        if self.block_size < 3 or self.block_size % 2 == 0:
            raise ConfigError(f"adaptive block_size must be an odd integer >= 3, got {self.block_size}")
        values = channel(image, self.channel)
        mode = cv2.THRESH_BINARY_INV if self.foreground == "dark" else cv2.THRESH_BINARY
        offset = self.offset if self.foreground == "dark" else -self.offset
        binary = cv2.adaptiveThreshold(values, 1, cv2.ADAPTIVE_THRESH_GAUSSIAN_C, mode, self.block_size, offset)
        return self._finish(binary.astype(bool), {"block_size": self.block_size, "channel": self.channel})


@dataclass
class HsvSegmenter:
    """The published saturation rule: multiply HSV saturation by ``factor``, keep S > ``threshold``.

    Stained nuclei are the most saturated pixels of a smear; the defaults (factor 2, threshold 0.7
    on a 0..1 scale) are the papers' values for nuclei. A lower threshold (0.35) finds whole cells.
    """

    target: str = "nucleus"
    factor: float = 2.0
    threshold: float | None = None
    open_size: int = 3
    min_fraction: float = 0.1

    def __post_init__(self) -> None:
        check_target(self.target, BINARY_TARGETS)
        if self.threshold is None:
            self.threshold = 0.7 if self.target == "nucleus" else 0.35

    def segment(self, image: np.ndarray) -> Segmentation:
        saturation = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)[..., 1].astype(np.float32) / 255.0
        boosted = np.clip(saturation * self.factor, 0.0, 1.0)
        mask = clean_mask(boosted > self.threshold, self.open_size, self.min_fraction)
        return Segmentation(mask_to_labels(mask, self.target), info={"threshold": self.threshold})


def fit_centers(pixels: np.ndarray, k: int, sample_size: int, seed: int) -> np.ndarray:
    """k-means centres fitted on a random sample of at most ``sample_size`` pixels."""
    rng = np.random.default_rng(seed)
    if len(pixels) > sample_size:
        pixels = pixels[rng.choice(len(pixels), sample_size, replace=False)]
    model = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(pixels)
    return model.cluster_centers_.astype(np.float32)


def assign(pixels: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Index of the nearest centre for every pixel (squared Euclidean distance)."""
    distances = (pixels**2).sum(1, keepdims=True) - 2 * pixels @ centers.T + (centers**2).sum(1)
    return distances.argmin(axis=1)


@dataclass
class KMeansSegmenter:
    """k-means colour clustering in CIE L*a*b*, fitted on a pixel sample and applied to all pixels.

    Without ground truth (``segment``), with ``k`` clusters:

    - nucleus: the darkest cluster (lowest L*), holes filled, opened, specks under
      ``min_fraction`` of the largest nucleus part dropped (lobes of one nucleus are kept);
    - cell: every cluster but the brightest (the background), joined to the nucleus. When that
      region leaks to the image border on more than ``leak_fraction`` of it (red cells touch the
      white cell), it is narrowed to pixels stained in the nucleus' direction from the background
      colour by at least ``min_stain`` of the nucleus' own distance, whose a*b* hue is no more
      than ``hue_tolerance`` degrees redder than the nucleus' hue.

    With ground truth (``sweep``), k runs over ``k_range`` and every union of the darkest j
    clusters and every single cluster is scored by the mean of Dice, IoU and SSIM against it;
    the best is returned with the score table per k.
    """

    target: str = "nucleus"
    k: int = 3
    k_range: tuple[int, int] = (2, 6)
    sample_size: int = 20000
    blur: int = 3
    open_size: int = 3
    cell_open_size: int = 5
    min_fraction: float = 0.1
    leak_fraction: float = 0.02
    min_stain: float = 0.05
    hue_tolerance: float = 10.0
    seed: int = 0

    def __post_init__(self) -> None:
        check_target(self.target, TARGETS)
        self.k_range = tuple(self.k_range)
        if self.k < 2 or self.k_range[0] < 2 or self.k_range[1] < self.k_range[0]:
            raise ConfigError(f"k-means needs k >= 2 and a range lo <= hi, got k={self.k}, k_range={self.k_range}")

    def to_lab(self, image: np.ndarray) -> np.ndarray:
        """The (optionally blurred) image in 8-bit-scaled CIE L*a*b*, as float32."""
        if self.blur > 1:
            image = cv2.GaussianBlur(image, (self.blur, self.blur), 0)
        return cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)

    def cluster(self, lab: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Cluster ids (HxW) and centres, renumbered so that cluster 0 is the darkest."""
        pixels = lab.reshape(-1, 3)
        centers = fit_centers(pixels, k, self.sample_size, self.seed)
        order = np.argsort(centers[:, 0])
        centers = centers[order]
        ids = assign(pixels, centers).reshape(lab.shape[:2])
        return ids, centers

    def segment(self, image: np.ndarray) -> Segmentation:
        lab = self.to_lab(image)
        ids, centers = self.cluster(lab, self.k)
        nucleus = clean_mask(ids == 0, self.open_size, self.min_fraction)
        info: dict[str, Any] = {"k": self.k, "centers_lab": centers.round(1).tolist()}
        if self.target == "nucleus":
            return Segmentation(mask_to_labels(nucleus, "nucleus"), info=info)
        cell = self._cell(lab, ids, centers, nucleus, info)
        labels = np.where(cell, CYTOPLASM, 0).astype(np.uint8)
        if self.target == "multiclass":
            labels[nucleus & cell] = NUCLEUS
        return Segmentation(labels, info=info)

    def _attach(self, candidate: np.ndarray, nucleus: np.ndarray) -> np.ndarray:
        candidate = opening(fill_holes(candidate | nucleus), self.cell_open_size)
        return fill_holes(components_touching(candidate, nucleus) | nucleus)

    def _cell(self, lab, ids, centers, nucleus, info) -> np.ndarray:
        background = centers[-1]
        cell = self._attach(ids != len(centers) - 1, nucleus)
        border = np.concatenate([cell[0], cell[-1], cell[:, 0], cell[:, -1]])
        info["cell_rule"] = "non-background clusters"
        if border.mean() <= self.leak_fraction or not nucleus.any():
            return cell
        direction = lab[nucleus].mean(axis=0) - background
        offset = lab - background
        stain = offset @ direction / max(float(np.linalg.norm(direction)), 1e-6)
        hue = np.degrees(np.arctan2(offset[..., 2], offset[..., 1]) - np.arctan2(direction[2], direction[1]))
        redder = (hue + 180.0) % 360.0 - 180.0
        stained = (stain >= self.min_stain * np.linalg.norm(direction)) & (redder < self.hue_tolerance)
        info["cell_rule"] = "stain direction (leak to border)"
        return self._attach(stained, nucleus)

    def sweep(self, image: np.ndarray, truth: np.ndarray) -> Segmentation:
        """Pick k and clusters that best match the ``truth`` mask of ``target`` (see class doc)."""
        check_target(self.target, BINARY_TARGETS)
        if truth.shape != image.shape[:2]:
            raise MaskError(f"ground truth {truth.shape} does not match image {image.shape[:2]}")
        truth = truth.astype(bool)
        lab = self.to_lab(image)
        table, masks = [], []
        for k in range(self.k_range[0], self.k_range[1] + 1):
            ids, _ = self.cluster(lab, k)
            candidates = {f"darkest {j}": ids < j for j in range(1, k)}
            candidates.update({f"cluster {c}": ids == c for c in range(1, k)})
            scored = []
            for name, mask in candidates.items():
                mask = clean_mask(mask, self.open_size, self.min_fraction)
                scored.append((dice(mask, truth), iou(mask, truth), name, mask))
            # SSIM costs most: it is computed for the three best candidates by Dice + IoU only
            scored.sort(key=lambda row: row[0] + row[1], reverse=True)
            rows = []
            for d, i, name, mask in scored[:3]:
                s = ssim(mask, truth)
                rows.append(({"k": k, "clusters": name, "dice": d, "iou": i, "ssim": s, "score": (d + i + s) / 3}, mask))
            row, mask = max(rows, key=lambda pair: pair[0]["score"])
            table.append(row)
            masks.append(mask)
        best = int(np.argmax([row["score"] for row in table]))
        info = {"k": table[best]["k"], "best": table[best], "sweep": table}
        return Segmentation(mask_to_labels(masks[best], self.target), info=info)


@dataclass
class WatershedSegmenter:
    """Marker-based watershed splitting of touching objects found by a ``base`` segmenter.

    Markers are distance-transform peaks at least ``min_distance`` pixels apart; the result
    carries instance labels besides the semantic label map.
    """

    target: str = "nucleus"
    base: str = "otsu"
    base_params: dict[str, Any] = field(default_factory=dict)
    min_distance: int = 7

    def __post_init__(self) -> None:
        check_target(self.target, BINARY_TARGETS)
        if self.base == "watershed":
            raise ConfigError("watershed needs a base segmenter other than itself")

    def segment(self, image: np.ndarray) -> Segmentation:
        from blastseg.segment import create_segmenter  # the registry imports this module

        base = create_segmenter(self.base, target=self.target, **self.base_params).segment(image)
        foreground = base.labels == (NUCLEUS if self.target == "nucleus" else CYTOPLASM)
        instances = split_touching(foreground, self.min_distance)
        info = {"base": self.base, "objects": int(instances.max())}
        return Segmentation(base.labels, instances=instances, info=info)
