"""Scoring a segmenter against a dataset's masks: per-image rows and an aggregated summary."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from blastseg.data import Sample
from blastseg.errors import DatasetError
from blastseg.labels import BINARY_TARGETS, target_mask
from blastseg.metrics import METRICS, aggregate, segmentation_metrics
from blastseg.preprocess import Pipeline


def evaluated_targets(target: str) -> tuple[str, ...]:
    """``multiclass`` is scored as its two binary targets."""
    return BINARY_TARGETS if target == "multiclass" else (target,)


def evaluate_segmenter(
    samples: Sequence[Sample],
    segmenter,
    target: str,
    preprocess: Pipeline | None = None,
    sweep: bool = False,
    on_done: Callable[[Sample], None] | None = None,
) -> tuple[list[dict], dict]:
    """Segment every sample that has a mask and score it.

    Returns one row per image and target (``image``, ``group``, ``target``, the metrics and, for
    a k-means sweep, the chosen ``k``) and a summary: per target, the aggregate over all images
    and per group (for example ``Dataset1`` and ``Dataset2``).
    """
    annotated = [s for s in samples if s.mask is not None]
    if not annotated:
        raise DatasetError("no image in this dataset has a mask to evaluate against")
    preprocess = preprocess or Pipeline()
    rows = []
    for sample in annotated:
        image, labels = sample.load()
        image = preprocess(image)
        for name in evaluated_targets(target):
            truth = target_mask(labels, name)
            result = segmenter.sweep(image, truth) if sweep else segmenter.segment(image)
            row = {"image": sample.name, "group": sample.group, "target": name}
            row.update(segmentation_metrics(target_mask(result.labels, name), truth))
            if "k" in result.info:
                row["k"] = result.info["k"]
            rows.append(row)
        if on_done:
            on_done(sample)
    return rows, summarise(rows)


def summarise(rows: Sequence[dict]) -> dict:
    summary: dict = {}
    for name in dict.fromkeys(row["target"] for row in rows):
        of_target = [row for row in rows if row["target"] == name]
        group_names = dict.fromkeys(row["group"] for row in of_target)
        groups = {g: aggregate([row for row in of_target if row["group"] == g], METRICS) for g in group_names}
        summary[name] = {"all": aggregate(of_target, METRICS), "groups": groups}
    return summary
