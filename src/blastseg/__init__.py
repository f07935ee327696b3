"""blastseg: find, outline and measure white blood cells and blasts in blood smear images.

Notebook users import every step from here::

    import blastseg
    image = blastseg.read_image("smear.jpg")
    result = blastseg.create_segmenter("kmeans", target="multiclass").segment(image)
"""

from importlib.resources import files
from pathlib import Path

from blastseg.data import MASK_ENCODINGS, Sample, decode_mask, scan_dataset
from blastseg.errors import BlastsegError
from blastseg.evaluate import evaluate_segmenter
from blastseg.io import read_image, read_mask, read_voc, read_xyc
from blastseg.labels import TARGETS, target_mask
from blastseg.metrics import METRICS, aggregate, segmentation_metrics
from blastseg.pipeline import segment_files
from blastseg.preprocess import STEPS, Pipeline
from blastseg.report import mask_image, overlay
from blastseg.segment import SEGMENTERS, Segmentation, create_segmenter

__version__ = "0.1.0"


def example_image_path() -> Path:
    """Path of the bundled example field (BCCD, MIT licence)."""
    return Path(str(files("blastseg") / "assets" / "example_field.jpg"))


__all__ = [
    "MASK_ENCODINGS", "METRICS", "SEGMENTERS", "STEPS", "TARGETS",
    "BlastsegError", "Pipeline", "Sample", "Segmentation",
    "aggregate", "create_segmenter", "decode_mask", "evaluate_segmenter", "example_image_path",
    "mask_image", "overlay", "read_image", "read_mask", "read_voc", "read_xyc",
    "scan_dataset", "segment_files", "segmentation_metrics", "target_mask",
]
