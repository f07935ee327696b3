"""Classical segmenters: thresholds (Otsu, adaptive, HSV saturation), k-means, watershed.

Each is a strict model whose fields are its parameters (validated when it is built), with
``segment(image) -> Segmentation``. ``target`` says what to find: ``nucleus`` (labelled 2) or
``cell`` (labelled 1); ``kmeans`` can also return ``multiclass`` (cytoplasm 1 and nucleus 2 together),
and ``magenta`` always does. ``create_segmenter(name, **params)`` builds one by its registry name.

>>> sorted(SEGMENTERS)
['adaptive', 'hsv', 'kmeans', 'magenta', 'otsu', 'watershed']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import cv2
import numpy as np
from pydantic import Field, PrivateAttr, field_validator, model_validator
from scipy import ndimage as ndi
from skimage.filters import threshold_otsu

from blastseg.config import Seed, StrictModel, as_value_error, validate
from blastseg.datasets.box_masks import nucleus_in
from blastseg.datasets.colour_masks import magenta_mask
from blastseg.errors import MaskError, lookup
from blastseg.labels import CYTOPLASM, NUCLEUS, mask_to_labels
from blastseg.metrics import dice, iou, ssim
from blastseg.postprocess import clean_mask, components_touching, fill_holes, opening, split_touching
from blastseg.preprocess import Gaussian, boosted_saturation, to_hsv, to_lab
from blastseg.segment.base import CHANNELS, Segmentation, channel

BinaryTarget = Literal["nucleus", "cell"]


MAX_KERNEL = 255  # structuring elements and blurs: a kernel of n pixels a side costs n^2 per pixel


class ClassicalSegmenter(StrictModel):
    """Base of the classical methods: ``name`` in the registry, one image at a time."""

    name: ClassVar[str] = ""
    target: str = "nucleus"

    def segment(self, image: np.ndarray) -> Segmentation:
        raise NotImplementedError

    def segment_many(self, images: Sequence[np.ndarray]) -> list[Segmentation]:
        return [self.segment(image) for image in images]


# Thresholders default to the channel where the target is darkest or brightest.
DEFAULT_CHANNEL = {"nucleus": ("green", "dark"), "cell": ("gray", "dark")}


def _threshold_side(values: np.ndarray, threshold: float, foreground: str) -> np.ndarray:
    return values <= threshold if foreground == "dark" else values > threshold


class _Thresholder(ClassicalSegmenter):
    """Shared fields and the final clean-up of the single-threshold segmenters."""

    target: BinaryTarget = "nucleus"
    channel: str | None = None
    foreground: Literal["dark", "bright"] | None = None
    open_size: int = Field(default=3, ge=1, le=MAX_KERNEL)
    min_fraction: float = Field(default=0.1, ge=0, le=1)

    @field_validator("channel")
    @classmethod
    def _known_channel(cls, value: str | None) -> str | None:
        if value is not None:
            as_value_error(lookup, CHANNELS, value, "channel")
        return value

    @model_validator(mode="after")
    def _defaults_for_target(self) -> _Thresholder:
        default_channel, default_side = DEFAULT_CHANNEL[self.target]
        self.channel = self.channel or default_channel
        self.foreground = self.foreground or default_side
        return self

    def _finish(self, mask: np.ndarray, info: dict[str, Any]) -> Segmentation:
        mask = clean_mask(mask, self.open_size, self.min_fraction)
        return Segmentation(mask_to_labels(mask, self.target), info=info)


class OtsuSegmenter(_Thresholder):
    """Global Otsu threshold of one channel (default: dark in green for nuclei, dark in grey for cells)."""

    name: ClassVar[str] = "otsu"

    def segment(self, image: np.ndarray) -> Segmentation:
        values = channel(image, self.channel)
        threshold = float(threshold_otsu(values)) if values.min() != values.max() else float(values.max())
        mask = _threshold_side(values, threshold, self.foreground)
        return self._finish(mask, {"threshold": threshold, "channel": self.channel})


class AdaptiveSegmenter(_Thresholder):
    """Local threshold: each pixel against the Gaussian-weighted mean of its neighbourhood minus ``offset``."""

    name: ClassVar[str] = "adaptive"
    block_size: int = Field(default=101, ge=3, le=4095, description="odd")
    offset: float = Field(default=25.0, ge=-255, le=255)

    @field_validator("block_size")
    @classmethod
    def _odd_block(cls, value: int) -> int:
        if value % 2 == 0:
            raise ValueError(f"must be an odd integer >= 3, got {value}")
        return value

    def segment(self, image: np.ndarray) -> Segmentation:
        values = channel(image, self.channel)
        mode = cv2.THRESH_BINARY_INV if self.foreground == "dark" else cv2.THRESH_BINARY
        offset = self.offset if self.foreground == "dark" else -self.offset
        binary = cv2.adaptiveThreshold(values, 1, cv2.ADAPTIVE_THRESH_GAUSSIAN_C, mode, self.block_size, offset)
        return self._finish(binary.astype(bool), {"block_size": self.block_size, "channel": self.channel})


class HsvSegmenter(ClassicalSegmenter):
    """The published saturation rule: multiply HSV saturation by ``factor`` (the ``hsv_saturation``
    step), keep S > ``threshold``.

    Stained nuclei are the most saturated pixels of a smear; the defaults (factor 2, threshold 0.7
    on a 0..1 scale) are the papers' values for nuclei. A lower threshold (0.35) finds whole cells.
    """

    name: ClassVar[str] = "hsv"
    target: BinaryTarget = "nucleus"
    factor: float = Field(default=2.0, ge=0, le=100)
    threshold: float | None = Field(default=None, ge=0, le=1)
    open_size: int = Field(default=3, ge=1, le=MAX_KERNEL)
    min_fraction: float = Field(default=0.1, ge=0, le=1)

    @model_validator(mode="after")
    def _default_threshold(self) -> HsvSegmenter:
        if self.threshold is None:
            self.threshold = 0.7 if self.target == "nucleus" else 0.35
        return self

    def segment(self, image: np.ndarray) -> Segmentation:
        boosted = boosted_saturation(to_hsv(image)[..., 1], self.factor).astype(np.float32) / 255.0
        mask = clean_mask(boosted > self.threshold, self.open_size, self.min_fraction)
        return Segmentation(mask_to_labels(mask, self.target), info={"threshold": self.threshold})


def fit_centers(pixels: np.ndarray, k: int, sample_size: int, seed: int) -> np.ndarray | None:
    """k-means centres (OpenCV: k-means++ seeding, best of 3 runs) fitted on a random sample of
    at most ``sample_size`` pixels; ``None`` when the sample holds fewer than ``k`` distinct
    colours (a blank or tiny image has no k clusters)."""
    rng = np.random.default_rng(seed)
    if len(pixels) > sample_size:
        pixels = pixels[rng.choice(len(pixels), sample_size, replace=False)]
    if len(np.unique(pixels, axis=0)) < k:
        return None
    cv2.setRNGSeed(seed)
    stop = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_MAX_ITER, 300, 1e-4)
    _, _, centers = cv2.kmeans(np.ascontiguousarray(pixels, np.float32), k, None, stop, 3, cv2.KMEANS_PP_CENTERS)
    return centers


def assign(pixels: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Index of the nearest centre for every pixel (squared Euclidean distance)."""
    distances = (pixels**2).sum(1, keepdims=True) - 2 * pixels @ centers.T + (centers**2).sum(1)
    return distances.argmin(axis=1)


class KMeansSegmenter(ClassicalSegmenter):
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

    name: ClassVar[str] = "kmeans"
    target: Literal["nucleus", "cell", "multiclass"] = "nucleus"
    k: int = Field(default=3, ge=2, le=32)
    k_range: tuple[int, int] = (2, 6)
    sample_size: int = Field(default=20000, ge=100, le=10_000_000)
    blur: int = Field(default=3, ge=0, le=99, description="Gaussian kernel before clustering, odd (0 or 1: none)")
    open_size: int = Field(default=3, ge=1, le=MAX_KERNEL)
    cell_open_size: int = Field(default=5, ge=1, le=MAX_KERNEL)
    min_fraction: float = Field(default=0.1, ge=0, le=1)
    leak_fraction: float = Field(default=0.02, ge=0, le=1)
    min_stain: float = Field(default=0.05, ge=-10, le=10)
    hue_tolerance: float = Field(default=10.0, ge=-180, le=180)
    seed: Seed = 0

    @field_validator("k_range")
    @classmethod
    def _ordered_range(cls, value: tuple[int, int]) -> tuple[int, int]:
        if value[0] < 2 or value[1] < value[0] or value[1] > 32:
            raise ValueError(f"needs 2 <= lo <= hi <= 32, got {list(value)}")
        return value

    @field_validator("blur")
    @classmethod
    def _odd_blur(cls, value: int) -> int:
        if value > 1 and value % 2 == 0:
            raise ValueError(f"must be 0, 1 or odd, got {value}")
        return value

    def lab_pixels(self, image: np.ndarray) -> np.ndarray:
        """The (optionally blurred) image in 8-bit-scaled CIE L*a*b*, as float32."""
        if self.blur > 1:
            image = Gaussian(kernel=self.blur)(image)
        return to_lab(image).astype(np.float32)

    def cluster(self, lab: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Cluster ids (HxW) and centres, renumbered so that cluster 0 is the darkest; ``None``
        for an image of fewer than ``k`` colours."""
        pixels = lab.reshape(-1, 3)
        centers = fit_centers(pixels, k, self.sample_size, self.seed)
        if centers is None:
            return None
        order = np.argsort(centers[:, 0])
        centers = centers[order]
        ids = assign(pixels, centers).reshape(lab.shape[:2])
        return ids, centers

    def segment(self, image: np.ndarray) -> Segmentation:
        lab = self.lab_pixels(image)
        clusters = self.cluster(lab, self.k)
        if clusters is None:  # a blank or tiny image holds no cells
            return Segmentation(np.zeros(image.shape[:2], np.uint8), info={"k": self.k, "note": f"fewer than {self.k} distinct colours"})
        ids, centers = clusters
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
        """Pick k and clusters that best match the binary ``truth`` mask (see class doc)."""
        if truth.shape != image.shape[:2]:
            raise MaskError(f"ground truth {truth.shape} does not match image {image.shape[:2]}")
        truth = truth.astype(bool)
        lab = self.lab_pixels(image)
        table, masks = [], []
        for k in range(self.k_range[0], self.k_range[1] + 1):
            clusters = self.cluster(lab, k)
            if clusters is None:
                raise MaskError(f"the image has fewer than {k} distinct colours: nothing for the k-means sweep to separate")
            ids = clusters[0]
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


class MagentaSegmenter(ClassicalSegmenter):
    """White cells as a Romanowsky stain colours them: the magenta objects of the field
    (:func:`~blastseg.datasets.colour_masks.magenta_mask`, Otsu's threshold of CIE ``a*``), each
    with its nucleus (its pixels darkest in red, :func:`~blastseg.datasets.box_masks.nucleus_in`).

    Fast and stain-led: right on fields whose red cells stay grey-pink (the all_blasts fields),
    wrong where red cells take the stain as strongly as white cells (BCCD) or where a
    neutrophil's cytoplasm is too pale to count as magenta.
    """

    name: ClassVar[str] = "magenta"
    target: Literal["multiclass"] = "multiclass"
    min_relative_magenta: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description=(
            "an object is kept when its median a* lies this share or more of the way from the background's to the most magenta object's"
            " (grey-blue red cells above Otsu's threshold in a field with few white cells stay out)"
        ),
    )

    def segment(self, image: np.ndarray) -> Segmentation:
        found = magenta_mask(image)
        count, pieces = cv2.connectedComponents(found.astype(np.uint8), connectivity=8)
        magenta = to_lab(image)[..., 1].astype(np.float32)
        background = float(np.median(magenta[~found])) if (~found).any() else 0.0
        excess = np.asarray(ndi.median(magenta, pieces, np.arange(1, count)), np.float64).reshape(-1) - background  # one pass over the field
        kept = [piece for piece, value in enumerate(excess, start=1) if value >= self.min_relative_magenta * excess.max()]
        labels = np.zeros(image.shape[:2], np.uint8)
        for piece in kept:
            cell = pieces == piece
            labels[cell] = CYTOPLASM
            labels[nucleus_in(image, cell)] = NUCLEUS
        return Segmentation(labels, info={"objects": len(kept), "left_out": count - 1 - len(kept)})


class WatershedSegmenter(ClassicalSegmenter):
    """Marker-based watershed splitting of touching objects found by a ``base`` segmenter.

    Markers are distance-transform peaks at least ``min_distance`` pixels apart; the result
    carries instance labels besides the semantic label map.
    """

    name: ClassVar[str] = "watershed"
    target: BinaryTarget = "nucleus"
    base: str = "otsu"
    base_params: dict[str, Any] = Field(default_factory=dict)
    min_distance: int = Field(default=7, ge=1, le=1000)
    _base: ClassicalSegmenter = PrivateAttr()

    @model_validator(mode="after")
    def _build_base(self) -> WatershedSegmenter:
        if self.base == self.name:
            raise ValueError("watershed needs a base segmenter other than itself")
        self._base = as_value_error(create_segmenter, self.base, target=self.target, **self.base_params)
        return self

    def segment(self, image: np.ndarray) -> Segmentation:
        base = self._base.segment(image)
        foreground = base.labels == (NUCLEUS if self.target == "nucleus" else CYTOPLASM)
        instances = split_touching(foreground, self.min_distance)
        info = {"base": self.base, "objects": int(instances.max())}
        return Segmentation(base.labels, instances=instances, info=info)


SEGMENTERS: dict[str, type[ClassicalSegmenter]] = {
    cls.name: cls for cls in (OtsuSegmenter, AdaptiveSegmenter, HsvSegmenter, KMeansSegmenter, MagentaSegmenter, WatershedSegmenter)
}


def create_segmenter(name: str, **params: Any) -> ClassicalSegmenter:
    """Build a classical segmenter by registry name; unknown names or parameters list the valid ones.

    >>> create_segmenter("kmeans", target="cell", k=4).k
    4
    """
    return validate(lookup(SEGMENTERS, name, "segmenter"), params, f"segmenter {name!r}")
