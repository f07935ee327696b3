"""Plain whole-image formulations that faster code in blastseg must equal: the oracles of the
tests and the baselines of the benchmarks (``scripts/bench_postprocess.py``)."""

import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import local_maxima, reconstruction
from skimage.segmentation import watershed


def split_by_depth_whole_field(mask: np.ndarray, depth: float = 0.3) -> np.ndarray:
    """:func:`blastseg.postprocess.split_by_depth` worked out over the whole image at once: one
    distance transform, one relief divided by each object's peak, one h-maxima reconstruction."""
    mask = mask.astype(bool)
    objects, count = ndi.label(mask, structure=np.ones((3, 3)))
    if count == 0:
        return np.zeros(mask.shape, np.int32)
    distance = ndi.distance_transform_edt(mask)
    peaks = ndi.maximum(distance, objects, index=np.arange(count + 1))
    relief = np.where(mask, distance / np.maximum(peaks[objects], 1e-9), 0.0)
    domes = reconstruction(np.maximum(relief - depth, 0.0), relief)
    markers, _ = ndi.label(local_maxima(domes, connectivity=2) & mask, structure=np.ones((3, 3)))
    return watershed(-distance, markers, mask=mask).astype(np.int32)
