"""Mask clean-up and instances: hole filling, opening, closing, area filters, watershed splitting,
and the assignment of each nucleus to its cell."""

from __future__ import annotations

import math
from typing import Literal

import cv2
import numpy as np
from pydantic import Field
from scipy import ndimage as ndi
from skimage.feature import peak_local_max
from skimage.measure import regionprops
from skimage.segmentation import watershed

from blastseg.config import StrictModel
from blastseg.labels import CYTOPLASM, NUCLEUS


def disk(size: int) -> np.ndarray:
    """An elliptical structuring element ``size`` x ``size`` (uint8)."""
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill every background region that does not touch the image border (4-connected).

    >>> ring = np.ones((3, 3), bool); ring[1, 1] = False
    >>> bool(fill_holes(ring)[1, 1])
    True
    """
    mask = mask.astype(bool)
    count, regions = cv2.connectedComponents((~mask).astype(np.uint8), connectivity=4)
    if count <= 1:
        return mask
    outside = np.unique(np.concatenate([regions[0], regions[-1], regions[:, 0], regions[:, -1]]))
    return mask | ~np.isin(regions, outside)


def opening(mask: np.ndarray, size: int) -> np.ndarray:
    """Morphological opening with a ``size`` x ``size`` ellipse; breaks thin bridges."""
    if size <= 1:
        return mask.astype(bool)
    return cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, disk(size)).astype(bool)


def keep_large_components(mask: np.ndarray, min_fraction: float) -> np.ndarray:
    """Keep the connected components whose area is at least ``min_fraction`` of the largest.

    >>> m = np.zeros((5, 9), bool); m[1:4, 0:3] = True; m[2, 7] = True
    >>> int(keep_large_components(m, 0.5).sum())
    9
    """
    count, components, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count <= 1:
        return mask.astype(bool)
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.flatnonzero(areas >= min_fraction * areas.max()) + 1
    return np.isin(components, keep)


def components_touching(mask: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """Keep the connected components of ``mask`` that overlap ``seeds``."""
    count, components = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    if count <= 1:
        return mask.astype(bool)
    keep = np.unique(components[seeds & (components > 0)])
    return np.isin(components, keep)


def clean_mask(mask: np.ndarray, open_size: int = 3, min_fraction: float = 0.1) -> np.ndarray:
    """Fill holes, open, and drop specks smaller than ``min_fraction`` of the largest object."""
    return keep_large_components(opening(fill_holes(mask), open_size), min_fraction)


def split_touching(mask: np.ndarray, min_distance: int = 7) -> np.ndarray:
    """Split touching round objects by marker-based watershed on the distance transform.

    Markers are the distance-transform peaks at least ``min_distance`` pixels apart; returns
    int32 instance labels, 0 background, 1..N objects.
    """
    mask = mask.astype(bool)
    if not mask.any():
        return np.zeros(mask.shape, np.int32)
    distance = ndi.distance_transform_edt(mask)
    objects, _ = ndi.label(mask)
    peaks = peak_local_max(distance, min_distance=min_distance, labels=objects, exclude_border=False)
    markers = np.zeros(mask.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    # objects without a peak (thin shapes) still get one marker each
    unmarked = np.setdiff1d(np.unique(objects[mask]), np.unique(objects[markers > 0]))
    for offset, label in enumerate(unmarked, start=len(peaks) + 1):
        markers[tuple(np.argwhere(objects == label)[0])] = offset
    return watershed(-distance, markers, mask=mask).astype(np.int32)


def split_by_depth(mask: np.ndarray, depth: float = 0.3) -> np.ndarray:
    """Split touching round objects where the neck between them is narrow, at any scale.

    Each connected object's distance transform is divided by its peak, so a disc's centre is 1;
    a marker is a dome of that relief rising more than ``depth`` above the saddle that joins it
    to a higher one (h-maxima, :func:`dome_tops`). Two equal discs split when the neck's
    half-width is below ``1 - depth`` of their radius; a lobed or oval cell keeps one marker.
    Returns int32 instance labels, 0 background, 1..N objects (numbered in raster order of their
    markers), flooded from the markers down the distance transform.

    >>> two = np.zeros((12, 24), bool); two[2:10, 2:10] = True; two[2:10, 14:22] = True; two[5:7, 10:14] = True
    >>> np.unique(split_by_depth(two)).tolist()  # two squares joined by a thin bar: two cells
    [0, 1, 2]
    """
    mask = mask.astype(bool)
    objects, _ = ndi.label(mask, structure=np.ones((3, 3)))
    distance = euclidean_distance(mask)
    is_marker = np.zeros(mask.shape, bool)
    for index, box in enumerate(ndi.find_objects(objects), start=1):
        box = grown(box, 1, mask.shape)  # with a ring of background around the object
        inside = np.where(objects[box] == index, distance[box], 0.0)
        peak = max(float(inside.max()), 1e-9)
        is_marker[box] |= dome_tops(inside / peak, depth, peak)
    markers, _ = ndi.label(is_marker, structure=np.ones((3, 3)))
    # one flood over the field: flooding each box alone breaks ties between equally distant
    # pixels another way (the heap's order of equal keys), moving a cell's border by a pixel
    return watershed(-distance, markers, mask=mask).astype(np.int32)


def euclidean_distance(mask: np.ndarray) -> np.ndarray:
    """Each pixel's exact Euclidean distance to the nearest background pixel (float64).

    OpenCV's exact transform is float32; squared and rounded it gives the integer squared
    distance back, so the result is the float64 square root ``ndi.distance_transform_edt``
    returns, at a tenth of its cost. A mask without background (OpenCV answers infinity) is
    left to SciPy.

    >>> euclidean_distance(np.pad(np.ones((3, 3), bool), 1))[2].tolist()
    [0.0, 1.0, 2.0, 1.0, 0.0]
    """
    if mask.all():
        return ndi.distance_transform_edt(mask)
    distance = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return np.sqrt(np.rint(np.square(distance, dtype=np.float64)))


def dome_tops(relief: np.ndarray, depth: float, peak: float) -> np.ndarray:
    """The h-maxima of one object's ``relief`` (its distance transform divided by ``peak``, 0
    outside it) with h = ``depth``: for each top (a plateau with no higher neighbour) of height m,
    the 8-connected part of ``relief >= m - depth`` around it, kept when that part holds nothing
    higher. This is what a grey reconstruction of ``relief - depth`` under ``relief`` marks
    (its regional maxima), without sorting every pixel.

    A distance transform changes by at most the step between pixels, so a top with a higher
    pixel within ``2 * (depth * peak - 1)`` of it joins that pixel above ``m - depth``: such tops
    are dropped before the test, which leaves about one per dome to try.
    """
    reach = max(int(2 * (depth * peak - 1) / math.sqrt(2)), 1)  # half-side of a square inside that circle
    around = cv2.dilate(relief, np.ones((2 * reach + 1, 2 * reach + 1), np.uint8))
    count, tops = cv2.connectedComponents(((relief > 0) & (relief >= around)).astype(np.uint8), connectivity=8)
    marker = np.zeros(relief.shape, bool)
    if count <= 1:
        return marker
    top_ids, first = np.unique(tops.ravel(), return_index=True)
    first = first[top_ids > 0]
    heights = relief.ravel()[first]
    for pixel, height in sorted(zip(first, heights), key=lambda top: -top[1]):
        at = np.unravel_index(pixel, relief.shape)
        if marker[at]:
            continue  # an equal top in the same dome, or a lower one inside it
        _, parts = cv2.connectedComponents((relief >= max(height - depth, 0.0)).astype(np.uint8), connectivity=8)
        part = parts == parts[at]
        if not (relief[part] > height).any():
            marker |= part
    return marker


def grown(box: tuple[slice, slice], margin: int, shape: tuple[int, ...]) -> tuple[slice, slice]:
    """A ``find_objects`` box widened by ``margin`` pixels on every side, within ``shape``.

    >>> grown((slice(0, 3), slice(5, 9)), 1, (10, 10))
    (slice(0, 4, None), slice(4, 10, None))
    """
    return tuple(slice(max(part.start - margin, 0), min(part.stop + margin, side)) for part, side in zip(box, shape))


def cut_into(shape: np.ndarray, count: int) -> np.ndarray:
    """Cut a binary shape into ``count`` compact pieces by k-means on its pixel coordinates
    (straight cuts between equal blobs); labels 1..count inside the shape, 0 outside."""
    rows, columns = np.nonzero(shape)
    points = np.column_stack([columns, rows]).astype(np.float32)
    cv2.setRNGSeed(0)
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 50, 0.1)
    _, assignment, _ = cv2.kmeans(points, count, None, criteria, 5, cv2.KMEANS_PP_CENTERS)
    pieces = np.zeros(shape.shape, np.int32)
    pieces[rows, columns] = assignment.ravel() + 1
    return pieces


def count_parts(mask: np.ndarray, min_area: float) -> int:
    """How many 8-connected parts of ``mask`` cover at least ``min_area`` pixels."""
    parts, count = ndi.label(mask, structure=np.ones((3, 3)))
    return int((np.bincount(parts.ravel(), minlength=count + 1)[1:] >= min_area).sum())


def split_by_size(instances: np.ndarray, nuclei: np.ndarray | None = None, ratio: float = 1.7, max_solidity: float = 0.92, min_cells: int = 3) -> np.ndarray:
    """Cut objects with the area of several cells into that many cells, where a neck cannot.

    Cells pressed together in a dense smear share a long flat border, so no narrow neck joins
    them. In an image with at least ``min_cells`` objects the typical cell is the 35th percentile
    of their areas (most objects are single cells); an object at least ``ratio`` times that
    area whose outline is not convex (solidity below ``max_solidity``: a single large cell is
    round) is cut into ``round(area / typical)`` pieces by :func:`cut_into`. Given a ``nuclei``
    mask, an object is cut into no more pieces than it holds nuclei (parts over 5 % of the
    typical cell's area), so a single cell whose outline leaks into its neighbours stays whole;
    the pieces still need not follow the nuclei. The settings were
    chosen on half of the hand-checked all_blasts fields (BENCHMARKS.md). Returns int32
    instance labels renumbered 1..N.

    >>> cells = np.zeros((20, 60), np.int32)
    >>> for i, (x, y) in enumerate([(8, 8), (24, 8), (40, 8), (51, 11)]):
    ...     _ = cv2.circle(cells, (x, y), 6, min(i + 1, 3), -1)  # object 3 is two touching discs
    >>> np.bincount(split_by_size(cells).ravel())[1:].tolist()
    [113, 113, 112, 112]
    """
    objects = regionprops(instances)
    if len(objects) < min_cells:
        return instances
    typical = float(np.percentile([cell.area for cell in objects], 35))
    result, next_id = instances.astype(np.int32, copy=True), int(instances.max()) + 1
    for cell in objects:
        if cell.area < ratio * typical or cell.solidity >= max_solidity:
            continue
        count = max(2, round(cell.area / typical))
        if nuclei is not None:
            count = min(count, count_parts(nuclei[cell.slice] & cell.image, 0.05 * typical))
            if count < 2:
                continue
        pieces = cut_into(cell.image, count)
        window = result[cell.slice]
        window[pieces > 1] = pieces[pieces > 1] + next_id - 2
        next_id += count - 1
    return filter_areas(result, 1)


def split_at_markers(instances: np.ndarray, markers: np.ndarray, max_solidity: float = 0.92, min_share: float = 0.15) -> np.ndarray:
    """Cut each cell that holds two or more marker objects between them.

    A cell whose outline is not convex (solidity below ``max_solidity``) and in which two or more
    objects of ``markers`` (instance labels, e.g. the stained objects of the image) each cover at
    least ``min_share`` of its area is divided among them by a watershed of its distance
    transform: the border runs where the cell is narrowest between the markers. A round cell, or
    one holding a single marker, stays whole. Returns int32 instance labels renumbered 1..N.

    >>> cells = np.zeros((9, 17), np.int32); cells[1:8, 1:16] = 1; cells[1, 8] = cells[7, 8] = 0
    >>> stained = np.zeros_like(cells); stained[2:7, 2:7] = 1; stained[2:7, 10:15] = 2
    >>> cut = split_at_markers(cells, stained, max_solidity=1.0)  # cut at the notches, column 8
    >>> np.unique(cut[:, :8]).tolist(), np.unique(cut[:, 9:]).tolist()
    ([0, 1], [0, 2])
    >>> int(split_at_markers(cells, stained).max())  # solidity 0.98: convex enough to stay whole
    1
    """
    result, next_id = instances.astype(np.int32, copy=True), int(instances.max()) + 1
    for cell in regionprops(instances):
        if cell.solidity >= max_solidity:
            continue
        inside = np.where(cell.image, markers[cell.slice], 0)
        ids, areas = np.unique(inside[inside > 0], return_counts=True)
        seeds = ids[areas >= min_share * cell.area]
        if len(seeds) < 2:
            continue
        pieces = watershed(-ndi.distance_transform_edt(cell.image), np.where(np.isin(inside, seeds), inside, 0), mask=cell.image)
        window = result[cell.slice]
        for seed in seeds[1:]:
            window[pieces == seed] = next_id
            next_id += 1
    return filter_areas(result, 1)


def drop_small_nuclei(instances: np.ndarray, labels: np.ndarray, min_area: int, min_fraction: float) -> np.ndarray:
    """Drop cells whose nucleus covers fewer than ``min_area`` pixels or less than ``min_fraction``
    of the largest nucleus among the image's cells; renumber the rest 1..N.

    >>> labels = np.array([[2, 2, 2, 2, 0, 2]], np.uint8)
    >>> drop_small_nuclei(np.array([[1, 1, 1, 1, 0, 2]]), labels, 0, 0.5).tolist()
    [[1, 1, 1, 1, 0, 0]]
    """
    nucleus_areas = np.bincount(instances[labels == NUCLEUS], minlength=instances.max() + 1)
    nucleus_areas[0] = 0
    keep = (nucleus_areas >= min_area) & (nucleus_areas >= min_fraction * nucleus_areas.max())
    keep[0] = False
    return filter_areas(np.where(keep[instances], instances, 0), 1)


class InstanceRules(StrictModel):
    """How a label map becomes cell instances (YAML ``instances:`` section; pixels throughout).

    ``open_size`` (5) opening breaks weak bridges between touching cells; ``close_size`` (5)
    closing seals small gaps in a cell's outline; holes are filled; components smaller than
    ``min_area`` (100) are specks and dropped, larger than ``max_area`` (none) are clumps and
    dropped, and so is one covering more than ``max_image_fraction`` (0.9) of the image (the
    background of a blank or black frame, not a cell; the largest cell in a Zheng crop covers
    0.52); with ``split`` touching cells are separated by watershed where the neck between them
    is narrow (``split_depth`` 0.3, see :func:`split_by_depth`) and, where an image holds three
    or more cells, objects with ``size_split`` (1.7) typical cells' area and a non-convex outline
    are cut into that many cells, no more than the nuclei it holds (cells pressed together in a
    dense smear have no neck; see :func:`split_by_size`; none turns it off); cells whose nucleus covers fewer
    than ``min_nucleus_area`` (0) pixels or less than ``min_nucleus_fraction`` (0.2) of the
    largest nucleus in the image are dropped (a white cell has a nucleus; specks, platelets and
    red-cell fragments have little or none). Where the image is at hand, ``colour_split`` (on)
    then cuts a non-convex cell that holds two or more stained objects between them
    (:func:`split_at_markers`; ``segment.base.image_cells``): the network says where the cells
    are, the stain where one ends and the next begins. The split depth and nucleus fraction were chosen on
    the BCCD trainval fields (BENCHMARKS.md) and hold at any scale; the pixel sizes hold where red
    cells are ``red_cell_px`` (86, BCCD's) across, and an image whose red-cell size is known gets
    them scaled to it (:meth:`at_scale`; none: the same pixels at every magnification).
    """

    open_size: int = Field(default=5, ge=1, le=255)
    close_size: int = Field(default=5, ge=1, le=255)
    fill_holes: bool = True
    min_area: int = Field(default=100, ge=0)
    max_area: int | None = Field(default=None, ge=1)
    split: bool = True
    split_depth: float = Field(default=0.3, gt=0, lt=1)
    size_split: float | None = Field(default=1.7, gt=1)
    min_nucleus_area: int = Field(default=0, ge=0)
    min_nucleus_fraction: float = Field(default=0.2, ge=0, le=1)
    colour_split: bool = Field(default=True, description="cut non-convex cells between the stained objects they hold (where the image is known)")
    max_image_fraction: float = Field(default=0.9, gt=0, le=1)
    red_cell_px: float | None = Field(default=86.0, gt=0, le=10_000, description="red-cell diameter (pixels) at which the pixel sizes hold")

    @property
    def splits_by_size(self) -> bool:
        """Whether these rules cut cells by size (:func:`split_by_size`): splitting on, ``size_split`` set."""
        return self.split and self.size_split is not None

    def at_scale(self, red_cell_px: float | None) -> InstanceRules:
        """These rules for an image whose red cells are ``red_cell_px`` across: lengths scaled by
        its size over ``self.red_cell_px``, areas by the square (unchanged when either is unknown).

        >>> small = InstanceRules().at_scale(17.2)  # all_blasts: a fifth of BCCD's magnification
        >>> small.open_size, small.close_size, small.min_area, small.split_depth
        (1, 1, 4, 0.3)
        """
        if red_cell_px is None or self.red_cell_px is None:
            return self
        factor = red_cell_px / self.red_cell_px

        def length(size: int) -> int:
            return max(1, math.floor(size * factor + 0.5))

        def area(size: int) -> int:
            return math.floor(size * factor**2 + 0.5)

        return self.model_copy(
            update={
                "open_size": length(self.open_size),
                "close_size": length(self.close_size),
                "min_area": area(self.min_area),
                "max_area": None if self.max_area is None else max(1, area(self.max_area)),
                "min_nucleus_area": area(self.min_nucleus_area),
                "red_cell_px": red_cell_px,
            }
        )


class InstancesFile(StrictModel):
    """A YAML file with one ``instances:`` section (``blastseg predict --instances``)."""

    kind: Literal["instances"] = "instances"
    instances: InstanceRules = Field(default_factory=InstanceRules)


def closing(mask: np.ndarray, size: int) -> np.ndarray:
    """Morphological closing with a ``size`` x ``size`` ellipse; seals small gaps."""
    if size <= 1:
        return mask.astype(bool)
    return cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_CLOSE, disk(size)).astype(bool)


def filter_areas(instances: np.ndarray, min_area: int, max_area: int | None = None) -> np.ndarray:
    """Drop instances outside [min_area, max_area] pixels and renumber the rest 1..N in order.

    >>> filter_areas(np.array([[1, 1, 0, 2, 3, 3, 3]]), min_area=2).tolist()
    [[1, 1, 0, 0, 2, 2, 2]]
    >>> filter_areas(np.array([[2, 2, 0, 1], [0, 0, 0, 0]]), min_area=1).tolist()  # all kept, numbered as they were
    [[2, 2, 0, 1], [0, 0, 0, 0]]
    """
    areas = np.bincount(instances.ravel())
    keep = areas >= min_area
    if max_area is not None:
        keep &= areas <= max_area
    keep[0] = False
    if keep[1:].all():  # nothing to drop, nothing to renumber: spare the lookup over every pixel
        return instances.astype(np.int32)
    renumber = np.zeros(areas.size, np.int32)
    renumber[keep] = np.arange(1, int(keep.sum()) + 1)
    return renumber[instances]


def cell_instances(labels: np.ndarray, rules: InstanceRules | None = None, red_cell_px: float | None = None) -> np.ndarray:
    """Instance labels (int32, 0 background, 1..N) of the cells in a label map, with ``rules``
    scaled to the image's red-cell diameter ``red_cell_px`` when it is known.

    >>> labels = np.zeros((4, 9), np.uint8); labels[1:3, 1:3] = 2; labels[1:3, 6:8] = 1
    >>> rules = InstanceRules(open_size=1, close_size=1, min_area=1, split=False, min_nucleus_fraction=0)
    >>> cell_instances(labels, rules)[1].tolist()
    [0, 1, 1, 0, 0, 0, 2, 2, 0]
    """
    rules = (rules or InstanceRules()).at_scale(red_cell_px)
    mask = closing(opening(labels > 0, rules.open_size), rules.close_size)
    if rules.fill_holes:
        mask = fill_holes(mask)
    if rules.split:
        instances = split_by_depth(mask, rules.split_depth)
    else:
        instances = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)[1]
    largest = int(rules.max_image_fraction * labels.size)
    max_area = min(rules.max_area, largest) if rules.max_area is not None else largest
    instances = filter_areas(instances.astype(np.int32), rules.min_area, max_area)
    if rules.min_nucleus_area or rules.min_nucleus_fraction:
        instances = drop_small_nuclei(instances, labels, rules.min_nucleus_area, rules.min_nucleus_fraction)
    if rules.splits_by_size:
        nuclei = labels == NUCLEUS
        instances = split_by_size(instances, nuclei if nuclei.any() and (labels == CYTOPLASM).any() else None, rules.size_split)
    return instances


def nucleus_instances(labels: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Each nucleus pixel labelled with the id of the cell it lies in (0 outside every cell)."""
    return np.where(labels == NUCLEUS, cells, 0).astype(np.int32)
