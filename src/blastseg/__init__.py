"""blastseg: find, outline and measure white blood cells and blasts in blood smear images.

Notebook users import every step from here::

    import blastseg
    image = blastseg.read_image("smear.jpg")
    result = blastseg.create_segmenter("kmeans", target="multiclass").segment(image)
    result = blastseg.DeepSegmenter.load().segment(image)  # the bundled network
    analysis = blastseg.analyze(image)  # cells, their classes, counts and blast percentage
    analysis.summary(), analysis.cells[0]["class"], analysis.overlay()
"""

from importlib.resources import files
from pathlib import Path

from blastseg.analysis import Analysis, analyze, analyze_labels
from blastseg.cells import cell_crops, cell_rows
from blastseg.classify.config import ClassifyConfig
from blastseg.classify.model import CellClassifier
from blastseg.classify.train import train_classifier
from blastseg.config import load_config
from blastseg.data import MASK_ENCODINGS, Sample, decode_mask, scan_dataset
from blastseg.errors import BlastsegError
from blastseg.evaluate import evaluate_segmenter
from blastseg.io import read_image, read_mask, read_voc, read_xyc
from blastseg.labels import TARGETS, target_mask
from blastseg.losses import LOSSES, build_loss
from blastseg.metrics import METRICS, aggregate, segmentation_metrics
from blastseg.pipeline import segment_files
from blastseg.postprocess import cell_instances
from blastseg.preprocess import STEPS, Pipeline
from blastseg.report import mask_image, overlay
from blastseg.segment import SEGMENTERS, Segmentation, create_segmenter
from blastseg.segment.checkpoint import load_checkpoint, save_checkpoint
from blastseg.segment.deep import DeepSegmenter
from blastseg.segment.models import MODELS, ModelSpec, create_model
from blastseg.train import cross_validate, train
from blastseg.train_config import TrainConfig

__version__ = "0.1.0"


def example_image_path() -> Path:
    """Path of the bundled example field (BCCD, MIT licence)."""
    return Path(str(files("blastseg") / "assets" / "example_field.jpg"))


__all__ = [
    "LOSSES", "MASK_ENCODINGS", "METRICS", "MODELS", "SEGMENTERS", "STEPS", "TARGETS",
    "Analysis", "BlastsegError", "CellClassifier", "ClassifyConfig", "DeepSegmenter", "ModelSpec", "Pipeline", "Sample", "Segmentation", "TrainConfig",
    "aggregate", "analyze", "analyze_labels", "build_loss", "cell_crops", "cell_instances", "cell_rows", "create_model", "create_segmenter",
    "cross_validate", "decode_mask", "evaluate_segmenter", "example_image_path", "load_checkpoint", "load_config",
    "mask_image", "overlay", "read_image", "read_mask", "read_voc", "read_xyc", "save_checkpoint",
    "scan_dataset", "segment_files", "segmentation_metrics", "target_mask", "train", "train_classifier",
]
