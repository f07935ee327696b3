"""Scoring a segmenter against a dataset's masks: per-image rows and an aggregated summary."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from blastseg.datasets.layouts import Sample, scan_dataset
from blastseg.errors import ConfigError, DatasetError
from blastseg.folders import prepare_folder, refuse_existing
from blastseg.io import write_csv, write_json
from blastseg.labels import BINARY_TARGETS, target_mask
from blastseg.metrics import METRICS, aggregate, segmentation_metrics
from blastseg.preprocess import Pipeline
from blastseg.segment import Segmenter
from blastseg.segment.classical import KMeansSegmenter
from blastseg.segment.recipe import SegmentConfig

if TYPE_CHECKING:
    from blastseg.segment.deep import DeepSegmenter

PER_IMAGE_CSV, SUMMARY_JSON = "per_image.csv", "summary.json"


@dataclass
class Evaluation:
    """``rows``: one per image and target (``image``, ``group``, ``target``, the metrics and, for a
    k-means sweep, the chosen ``k``); ``summary``: per target, the aggregate over all images and
    per group (for example ``Dataset1`` and ``Dataset2``)."""

    rows: list[dict]
    summary: dict[str, Any]


def evaluated_targets(target: str) -> tuple[str, ...]:
    """``multiclass`` is scored as its two binary targets."""
    return BINARY_TARGETS if target == "multiclass" else (target,)


def evaluate_segmenter(
    samples: Sequence[Sample],
    segmenter: Segmenter,
    preprocess: Pipeline | None = None,
    sweep: bool = False,
    on_done: Callable[[Sample], None] | None = None,
) -> Evaluation:
    """Segment every sample that has a mask and score it on the segmenter's target(s);
    ``sweep`` lets a k-means segmenter choose k and clusters with each mask."""
    annotated = [s for s in samples if s.mask is not None]
    if not annotated:
        raise DatasetError("no image in this dataset has a mask to evaluate against")
    if sweep and not isinstance(segmenter, KMeansSegmenter):
        method = getattr(segmenter, "name", None) or type(segmenter).__name__
        raise ConfigError(f"a sweep (--sweep) needs the kmeans method, not {method}")
    preprocess = preprocess or Pipeline()
    rows = []
    for sample in annotated:
        image, labels = sample.load()
        image = preprocess(image)
        for name in evaluated_targets(segmenter.target):
            truth = target_mask(labels, name)
            result = segmenter.sweep(image, truth) if sweep else segmenter.segment(image)
            row = {"image": sample.name, "group": sample.group, "target": name}
            row.update(segmentation_metrics(target_mask(result.labels, name), truth))
            if "k" in result.info:
                row["k"] = result.info["k"]
            rows.append(row)
        if on_done:
            on_done(sample)
    return Evaluation(rows, summarise(rows))


def summarise(rows: Sequence[dict]) -> dict[str, Any]:
    """Per target: the metrics aggregated over all rows (``all``) and per group (``groups``)."""
    summary: dict = {}
    for name in dict.fromkeys(row["target"] for row in rows):
        of_target = [row for row in rows if row["target"] == name]
        group_names = dict.fromkeys(row["group"] for row in of_target)
        groups = {g: aggregate([row for row in of_target if row["group"] == g], METRICS) for g in group_names}
        summary[name] = {"all": aggregate(of_target, METRICS), "groups": groups}
    return summary


def evaluate_to_folder(
    data: str | Path,
    method: SegmentConfig | DeepSegmenter,
    out_dir: str | Path,
    sweep: bool = False,
    layout: str = "auto",
    mask_encoding: str | None = None,
    overwrite: bool = False,
    on_done: Callable[[Sample], None] | None = None,
) -> Evaluation:
    """Score a classical recipe or a trained network on the dataset folder ``data`` and write
    ``per_image.csv`` and ``summary.json`` (the data, the method as ``config``, the sweep flag, the
    metrics) into ``out_dir``."""
    out_dir = Path(out_dir)
    files = [out_dir / PER_IMAGE_CSV, out_dir / SUMMARY_JSON]
    refuse_existing(files, overwrite)
    prepare_folder(out_dir)
    if isinstance(method, SegmentConfig):
        segmenter, preprocess, provenance = method.segmenter(), Pipeline.from_config(method.preprocess), method.model_dump(exclude={"kind"})
    else:
        segmenter, preprocess, provenance = method, None, method.provenance()
    samples = scan_dataset(data, layout, mask_encoding)
    result = evaluate_segmenter(samples, segmenter, preprocess, sweep, on_done)
    write_csv(files[0], result.rows)
    write_json(files[1], {"data": str(data), "config": provenance, "sweep": sweep, "metrics": result.summary})
    return result
