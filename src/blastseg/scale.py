"""An image's scale from its own red cells: the typical red-cell diameter in pixels.

Red cells are about 7.5 um across in every smear, so their size is a ruler that travels with the
image. The estimate works on a copy resized to ``WORK_SIZE`` pixels on its longer side, so an image
and the same image rescaled give the same answer in their own pixels (scale-equivariant by design):

1. **inscribed circles** (source ``red cells``): stained objects are the pixels whose optical density
   in green (haemoglobin absorbs it) is above the lower of two multi-Otsu thresholds; small gaps are
   closed and holes (the central pallor) filled. In the objects that hold no nucleus, each maximal
   inscribed circle clear of the border is one red cell, also where cells touch: the neck between
   two touching cells is narrower than either (:func:`inscribed_diameters`). The answer is the
   typical value of those diameters (:func:`typical`).
2. **circles** (source ``circles``), where too few objects stand apart (packed fields, pale
   ring-shaped cells): the median diameter of the outermost circles the Hough gradient transform
   finds.
3. Otherwise the scale is ``unknown`` (crops holding one white cell, say); see
   :class:`~blastseg.segment.deep.DeepSegmenter` for what the network then does.

Either answer needs ``MIN_CELLS`` estimates that agree (interquartile range within ``MAX_SPREAD``
of the median). ``--cell-diameter PX`` or ``--pixel-size UM`` override the estimate
(:func:`given_scale`).

>>> yy, xx = np.mgrid[:200, :200]
>>> field = np.full((200, 200, 3), 235, np.uint8)
>>> for cy in (30, 80, 130, 175):
...     for cx in (25, 75, 125, 175):
...         field[(yy - cy) ** 2 + (xx - cx) ** 2 <= 18**2] = (200, 120, 130)
>>> scale = estimate_scale(field)
>>> scale.source, round(scale.red_cell_px), round(scale.pixel_size_um, 3)
('red cells', 36, 0.208)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np
from scipy import ndimage as ndi
from skimage.feature import peak_local_max
from skimage.filters import threshold_multiotsu

RED_CELL_UM = 7.5  # typical red-cell diameter in a dried, stained smear
WORK_SIZE = 512  # the longer side of the copy the estimate works on
MIN_CELLS = 3
MAX_SPREAD = 0.4  # interquartile range / median of the per-cell diameters
MIN_WORK_DIAMETER = 20  # smaller objects on the working copy are specks and granules, not red cells
LARGE_WORK_SIZE = 1536  # a second look at images over twice WORK_SIZE, whose red cells may be smaller
HOUGH_EDGE = 60  # the Canny high threshold of the Hough gradient (the low one is half)
MAX_EDGE_SHARE = 0.15  # smears measured 0.003-0.08 edge pixels on the working copy; noise 0.27-0.38


@dataclass(frozen=True)
class Scale:
    """The typical red-cell diameter in an image's own pixels, and where it came from.

    >>> Scale(30.0, "given: --cell-diameter").pixel_size_um
    0.25
    """

    red_cell_px: float | None
    source: str
    cells: int = 0

    @property
    def known(self) -> bool:
        return self.red_cell_px is not None

    @property
    def pixel_size_um(self) -> float | None:
        """Micrometres per pixel, taking a red cell as ``RED_CELL_UM`` across."""
        return RED_CELL_UM / self.red_cell_px if self.red_cell_px else None

    def as_dict(self) -> dict:
        """What ``summary.json`` records (sizes rounded to 0.01 pixel, 0.0001 um)."""
        size = self.pixel_size_um
        return {**asdict(self), "red_cell_px": _round(self.red_cell_px, 2), "pixel_size_um": _round(size, 4)}


UNKNOWN = Scale(None, "unknown")


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def given_scale(cell_diameter: float | None = None, pixel_size: float | None = None) -> Scale | None:
    """The scale a user states: a red cell's diameter in pixels, or the pixel size in micrometres.

    >>> given_scale(pixel_size=0.25).red_cell_px
    30.0
    >>> given_scale() is None
    True
    """
    if cell_diameter is not None and pixel_size is not None:
        raise ValueError("give the red-cell diameter or the pixel size, not both")
    for value, name in ((cell_diameter, "cell diameter"), (pixel_size, "pixel size")):
        if value is not None and not (np.isfinite(value) and value > 0):
            raise ValueError(f"the {name} must be a positive number, got {value}")
    if cell_diameter is not None:
        return Scale(float(cell_diameter), "given: --cell-diameter")
    if pixel_size is not None:
        return Scale(RED_CELL_UM / float(pixel_size), "given: --pixel-size")
    return None


def resized(image: np.ndarray, factor: float) -> np.ndarray:
    """An H x W (x C) array resized by ``factor`` (area averaging down, bilinear up).

    >>> resized(np.zeros((10, 30, 3), np.uint8), 0.5).shape
    (5, 15, 3)
    """
    if factor == 1:
        return image
    height, width = (max(1, round(n * factor)) for n in image.shape[:2])
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)


def working_copy(image: np.ndarray, size: int = WORK_SIZE) -> tuple[np.ndarray, float]:
    """``image`` resized so that its longer side is ``size``, and the factor applied."""
    factor = size / max(image.shape[:2])
    return resized(image, factor), factor


def optical_density(image: np.ndarray) -> np.ndarray:
    """H x W x 3 optical density against the brightest pixels (the 99th percentile per channel)."""
    light = image.astype(np.float32) + 1
    background = np.percentile(light.reshape(-1, 3), 99, axis=0)
    return -np.log(np.clip(light / background, 1e-3, 1))


def _disc(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def stained_objects(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(objects, nuclei) masks of a working copy: stained objects with holes filled, and nucleus
    pixels: in the darkest of three multi-Otsu classes of total density and bluer (absorbing more
    red per green, by 10 %) than three quarters of the stained pixels, as violet nuclei are and red cells not."""
    density = cv2.GaussianBlur(optical_density(image), (0, 0), 1.5)
    green, total = density[..., 1], density.sum(axis=2)
    if np.ptp(green) < 1e-3 or np.ptp(total) < 1e-3:  # a flat image holds nothing
        return np.zeros(green.shape, np.uint8), np.zeros(green.shape, bool)
    objects = (green > threshold_multiotsu(green, classes=3)[0]).astype(np.uint8)
    objects = cv2.morphologyEx(objects, cv2.MORPH_CLOSE, _disc(3))
    objects = ndi.binary_fill_holes(objects).astype(np.uint8)
    objects = cv2.morphologyEx(objects, cv2.MORPH_OPEN, _disc(2))
    blueness = density[..., 0] / (green + 1e-3)
    stained = blueness[objects > 0]
    bluer = blueness > 1.1 * (np.percentile(stained, 75) if stained.size else np.inf)
    nuclei = bluer & (total > threshold_multiotsu(total, classes=3)[1])
    return objects, nuclei


def inscribed_diameters(objects: np.ndarray, nuclei: np.ndarray) -> np.ndarray:
    """Diameters of the maximal inscribed circles of the objects: local maxima of the distance to
    the background that no larger value lies within their own radius of, one per cell also where
    cells touch. Circles under 0.6 of their object's largest (bumps on an outline), in objects that
    hold a nucleus, or that touch the border are left out, and so is a circle centred inside a
    larger (or equal) one already kept: a flat ridge of the distance gives one object several
    peaks, which must not count as several cells agreeing."""
    distance = cv2.distanceTransform(objects, cv2.DIST_L2, 5)
    count, labels = cv2.connectedComponents(objects)
    if count <= 1:
        return np.zeros(0)
    index = np.arange(count)
    nucleated = np.asarray(ndi.mean(nuclei, labels, index)) >= 0.1
    largest = np.asarray(ndi.maximum(distance, labels, index))
    peaks = peak_local_max(distance, min_distance=3, threshold_abs=MIN_WORK_DIAMETER / 2, exclude_border=False)
    height, width = objects.shape
    kept: list[tuple[int, int, float]] = []
    for y, x in sorted(peaks.tolist(), key=lambda peak: -distance[peak[0], peak[1]]):
        radius = distance[y, x]
        r = int(np.ceil(radius))
        label = labels[y, x]
        if nucleated[label] or radius < 0.6 * largest[label] or min(y, x, height - 1 - y, width - 1 - x) <= radius:
            continue
        inside_kept = any(np.hypot(y - ky, x - kx) < kr for ky, kx, kr in kept)
        if not inside_kept and distance[y - r : y + r + 1, x - r : x + r + 1].max() <= radius + 0.5:
            kept.append((y, x, radius))
    return np.array([2 * radius for _, _, radius in kept])


def circle_diameters(image: np.ndarray) -> np.ndarray:
    """Diameters of the outermost circles (Hough gradient) of a working copy's green channel; a
    circle centred inside a larger one (a cell's pale centre) is dropped.

    An image whose edges cover over ``MAX_EDGE_SHARE`` of it is texture or noise, not cells, and
    gets no circles: the Hough vote would cost seconds to find nothing.
    """
    green = cv2.GaussianBlur(np.ascontiguousarray(image[..., 1]), (0, 0), 1.0)
    largest = min(green.shape) // 3
    if largest <= MIN_WORK_DIAMETER // 2 or (cv2.Canny(green, HOUGH_EDGE // 2, HOUGH_EDGE) > 0).mean() > MAX_EDGE_SHARE:
        return np.zeros(0)
    found = cv2.HoughCircles(
        green, cv2.HOUGH_GRADIENT_ALT, dp=1.5, minDist=4, param1=HOUGH_EDGE, param2=0.85, minRadius=MIN_WORK_DIAMETER // 2, maxRadius=largest
    )
    if found is None:
        return np.zeros(0)
    kept: list[tuple[float, float, float]] = []
    for x, y, r in sorted(found[0].tolist(), key=lambda circle: -circle[2]):
        if all(np.hypot(x - kx, y - ky) >= 0.5 * kr for kx, ky, kr in kept):
            kept.append((x, y, r))
    return 2 * np.array([r for _, _, r in kept])


def weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    """The value below which half the total weight lies.

    >>> weighted_median(np.array([1.0, 2.0, 10.0]), np.array([1.0, 1.0, 5.0]))
    10.0
    """
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cumulative, cumulative[-1] / 2)])


def typical(diameters: np.ndarray) -> tuple[float, int] | None:
    """The typical diameter and how many agree with it, or ``None`` unless ``MIN_CELLS`` do.

    Each diameter is weighted by itself, so that specks, platelets and bumps weigh little and one
    white cell left in does not decide; values outside 0.6-1.6x of that weighted median are
    dropped until none is. The answer, their median, also needs an interquartile range within
    ``MAX_SPREAD`` of it.

    >>> typical(np.array([20, 21, 19, 20, 22, 5, 6, 7, 80.0]))
    (20.0, 5)
    >>> typical(np.array([20, 21])) is None
    True
    """
    values = np.asarray(diameters, dtype=float)
    for _ in range(5):
        if len(values) == 0:
            return None
        middle = weighted_median(values, values)
        kept = values[(values > 0.6 * middle) & (values < 1.6 * middle)]
        if len(kept) == len(values):
            break
        values = kept
    if len(values) < MIN_CELLS:
        return None
    low, high = np.percentile(values, [25, 75])
    median = float(np.median(values))
    return (median, len(values)) if (high - low) <= MAX_SPREAD * median else None


def estimate_scale(image: np.ndarray) -> Scale:
    """The typical red-cell diameter of an RGB ``uint8`` image, in its own pixels (module docstring).

    An image over twice ``WORK_SIZE`` gets a second look on a ``LARGE_WORK_SIZE`` copy when the
    first finds nothing; its answer counts only if those red cells were too small for the first.
    """
    sizes = (WORK_SIZE, LARGE_WORK_SIZE) if max(image.shape[:2]) > 2 * WORK_SIZE else (WORK_SIZE,)
    for size in sizes:
        work, factor = working_copy(image, size)
        for source, measure in (("red cells", _inscribed), ("circles", circle_diameters)):
            answer = typical(measure(work))
            if answer is None:
                continue
            diameter = answer[0] / factor
            if size == WORK_SIZE or diameter * WORK_SIZE / max(image.shape[:2]) < MIN_WORK_DIAMETER:
                return Scale(diameter, source, answer[1])
    return UNKNOWN


def _inscribed(work: np.ndarray) -> np.ndarray:
    return inscribed_diameters(*stained_objects(work))
