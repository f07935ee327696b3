"""blastseg: find, outline and measure white blood cells and blasts in blood smear images.

Notebook users import every step from here::

    import blastseg
    image = blastseg.read_image("smear.jpg")
    result = blastseg.create_segmenter("kmeans", target="multiclass").segment(image)
    result = blastseg.load_segmenter().segment(image)  # the bundled network
    analysis = blastseg.analyze(image)  # cells, their classes, counts and blast percentage
    analysis.summary().counts, analysis.cells[0]["class"], analysis.overlay()
    blastseg.estimate_scale(image).pixel_size_um  # from the red cells (about 7.5 um across)

Names are imported when first used, so ``import blastseg`` loads neither torch nor scikit-learn.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "blastseg.analysis": ("Analysis", "CellCounts", "analyze", "analyze_labels", "count_cells", "total_counts"),
    "blastseg.annotations": ("Box", "read_voc", "read_xyc"),
    "blastseg.artifacts": ("example_image_path",),
    "blastseg.batch": ("BatchResult", "PredictOptions", "predict_files", "segment_files", "segment_with_recipe"),
    "blastseg.cells": ("FEATURES", "cell_crops", "cell_rows"),
    "blastseg.classify.model": ("CellClassifier",),
    "blastseg.config": ("load_config",),
    "blastseg.datasets.layouts": ("Sample", "scan_dataset"),
    "blastseg.datasets.masks": ("MASK_ENCODINGS", "decode_mask"),
    "blastseg.errors": ("BlastsegError",),
    "blastseg.evaluation.segmentation": ("Evaluation", "evaluate_segmenter"),
    "blastseg.io": ("read_image", "read_mask"),
    "blastseg.labels": ("TARGETS", "target_mask"),
    "blastseg.metrics": ("METRICS", "aggregate", "segmentation_metrics"),
    "blastseg.postprocess": ("InstanceRules", "cell_instances", "nucleus_instances"),
    "blastseg.preprocess": ("STEPS", "Pipeline"),
    "blastseg.render": ("mask_image", "overlay"),
    "blastseg.scale": ("Scale", "estimate_scale", "given_scale"),
    "blastseg.segment": ("SEGMENTERS", "Segmentation", "Segmenter", "create_segmenter", "load_segmenter"),
    "blastseg.segment.base": ("image_cells",),
    "blastseg.segment.checkpoint": ("load_checkpoint", "save_checkpoint"),
    "blastseg.segment.deep": ("DeepSegmenter",),
    "blastseg.segment.networks": ("MODELS", "ModelSpec", "create_model"),
    "blastseg.segment.recipe": ("SegmentConfig",),
    "blastseg.training.classifier": ("train_classifier",),
    "blastseg.training.classifier_recipe": ("ClassifyConfig",),
    "blastseg.training.losses": ("LOSSES", "build_loss"),
    "blastseg.training.recipe": ("TrainConfig",),
    "blastseg.training.segmentation": ("cross_validate", "train"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'blastseg' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup does not come here
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
