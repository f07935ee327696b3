"""Train and cross-validate a cell classifier from a recipe, into a run folder:

- ``classifier.safetensors`` + ``classifier.json``: fitted on every labelled cell, its card
  holding the cross-validated scores;
- ``cv.json``: macro F1, accuracy, per-class precision/recall/F1, the same per image when every
  cell carries its image's label (``per_image``), the majority-class baseline and,
  for a forest, each feature's permutation importance (the drop in held-out macro F1 when the
  feature's values are shuffled, 5 shuffles per fold; mean and spread over folds and shuffles,
  most important first);
- ``predictions.csv``: each cell's out-of-fold prediction and class probabilities;
- ``confusion.csv`` and ``confusion.png`` (out of fold); ``cells.csv``: the labelled cells table;
- ``unmatched_centroids.csv`` and ``skipped.csv`` when some listed blasts or images found no cell.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.inspection import permutation_importance
from sklearn.model_selection import StratifiedGroupKFold

from blastseg.cells import COLUMNS
from blastseg.classify.model import RUN_STEM, CellClassifier, ClassifierCard, feature_matrix
from blastseg.datasets.layouts import Sample, label_for, listed, read_label_csv, scan_dataset
from blastseg.errors import DatasetError
from blastseg.evaluation.classification import classification_scores, majority_baseline, write_confusion
from blastseg.io import write_csv, write_json
from blastseg.runtime import resolve_device, seed_everything
from blastseg.segment import Segmenter, create_segmenter, load_segmenter
from blastseg.training.classifier_recipe import ClassifyConfig, ClassifySource
from blastseg.training.cnn import fit_network
from blastseg.training.forest import fit_forest, forest_arrays
from blastseg.training.labelled_cells import LabelledCells, collect_cells
from blastseg.training.runs import CLASSIFIER_RUN, prepare_run


def labelled_samples(source: ClassifySource) -> list[Sample]:
    """A source's samples: only those of its ``image_list``, labels replaced by ``labels_csv``
    when it gives one and renamed by ``classes`` (a class renamed to null is left out)."""
    samples = scan_dataset(source.path, source.layout, source.mask_encoding)
    if source.image_list is not None:
        samples = listed(samples, source.image_list)
        if not samples:
            raise DatasetError(f"{source.image_list}: names no image of {source.path}")
    if source.labels_csv:
        if not Path(source.labels_csv).is_file():
            raise DatasetError(f"labels_csv {source.labels_csv}: no such file")
        labels = read_label_csv(Path(source.labels_csv))
        for sample in samples:
            sample.label = label_for(sample.image.stem, labels)
    kept = [s for s in samples if s.label is None or source.classes.get(s.label, s.label) is not None]
    if not kept:
        raise DatasetError(f"{source.path}: every image's class is left out by 'classes'")
    for sample in kept:
        sample.label = source.classes.get(sample.label, sample.label) if sample.label is not None else None
    return kept


def source_segmenter(source: ClassifySource, device: str) -> Segmenter:
    if source.segmenter == "network":
        return load_segmenter(source.checkpoint, device=device)
    return create_segmenter(source.segmenter)


def gather(config: ClassifyConfig, samples_of: list[list[Sample]], on_done: Callable[[Sample], None] | None = None) -> LabelledCells:
    """Find and label the cells of each source's samples (see :mod:`blastseg.training.labelled_cells`);
    cells labelled by ``.xyc`` centroids are renamed by the source's ``classes`` too."""
    found = LabelledCells()
    for source, samples in zip(config.data.sources, samples_of):
        segmenter = None
        if source.segmentation != "masks" and (source.segmentation == "model" or any(s.mask is None for s in samples)):
            segmenter = source_segmenter(source, config.device)
        cells = collect_cells(
            samples,
            segmenter,
            source.instances,
            config.cnn.input_size,
            config.data.crop_scale,
            source.match_radius,
            use_masks=source.segmentation != "model",
            on_done=on_done,
            every_cell=source.label_cells == "every",
            cell_diameter=config.cell_diameter if config.model == "random_forest" else None,
            rename=source.classes,
        )
        found.extend(cells if source.max_cells_per_image is None else cells.at_most_per_image(source.max_cells_per_image, config.seed))
    return found


class Learner:
    """Fits the recipe's model on some cells and gives class probabilities for others."""

    def __init__(self, config: ClassifyConfig, cells: LabelledCells, classes: list[str]):
        self.config, self.cells, self.classes = config, cells, classes
        self.features = feature_matrix(cells.rows, config.features)
        self.device = resolve_device(config.device)

    def card(self) -> ClassifierCard:
        config = self.config
        return ClassifierCard(
            kind=config.model,
            classes=self.classes,
            trained_on=" + ".join(str(source.path) for source in config.data.sources),
            crop_scale=config.data.crop_scale,
        )

    def fit_forest(self, indices: np.ndarray, targets: np.ndarray) -> RandomForestClassifier:
        return fit_forest(self.features[indices], targets[indices], self.config.random_forest, self.config.seed)

    def forest_classifier(self, forest: RandomForestClassifier) -> CellClassifier:
        card = self.card().model_copy(update={"features": list(self.config.features), "cell_diameter": self.config.cell_diameter})
        return CellClassifier(card, forest=forest_arrays(forest, len(self.classes)))

    def fit(self, indices: np.ndarray, targets: np.ndarray) -> CellClassifier:
        config = self.config
        if config.model == "random_forest":
            return self.forest_classifier(self.fit_forest(indices, targets))
        crops = [self.cells.crops[i] for i in indices]
        net = fit_network(crops, targets[indices], len(self.classes), config.cnn, self.device, config.seed)
        spec = config.cnn.spec().model_copy(update={"weights_path": None})
        return CellClassifier(self.card().model_copy(update={"cnn": spec}), net=net, device=config.device)

    def proba(self, classifier: CellClassifier, indices: np.ndarray) -> np.ndarray:
        return classifier.proba_of([self.cells.rows[i] for i in indices], [self.cells.crops[i] for i in indices])


@dataclass
class OutOfFold:
    """Cross-validation's answers: each cell's out-of-fold class probabilities and fold, and for a
    forest the permutation importances (features x shuffles of every fold)."""

    proba: np.ndarray
    fold_of: np.ndarray
    importances: np.ndarray | None = None

    def feature_importance(self, features: list[str]) -> dict[str, dict[str, float]] | None:
        """Mean and standard deviation of each feature's importance, the most important first."""
        if self.importances is None:
            return None
        order = np.argsort(-self.importances.mean(axis=1), kind="stable")
        return {features[i]: {"mean": round(float(self.importances[i].mean()), 4), "std": round(float(self.importances[i].std()), 4)} for i in order}


def cross_validated_proba(learner: Learner, targets: np.ndarray, groups: list[str], folds: int, seed: int) -> OutOfFold:
    """Out-of-fold class probabilities and each cell's fold (one image's cells stay in one fold);
    for a forest, each feature's permutation importance on each held-out fold."""
    if len(set(groups)) < folds:
        raise DatasetError(f"{folds}-fold cross-validation keeps each image in one fold, but the cells come from {len(set(groups))} image(s); lower 'folds'")
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    result = OutOfFold(np.zeros((len(targets), len(learner.classes))), np.zeros(len(targets), np.int64))
    importances = []
    for fold, (train_idx, test_idx) in enumerate(splitter.split(np.zeros(len(targets)), targets, groups)):
        if learner.config.model == "random_forest":
            forest = learner.fit_forest(train_idx, targets)
            classifier = learner.forest_classifier(forest)
            shuffled = permutation_importance(forest, learner.features[test_idx], targets[test_idx], scoring="f1_macro", n_repeats=5, random_state=seed)
            importances.append(shuffled.importances)
        else:
            classifier = learner.fit(train_idx, targets)
        result.proba[test_idx] = learner.proba(classifier, test_idx)
        result.fold_of[test_idx] = fold
    result.importances = np.concatenate(importances, axis=1) if importances else None
    return result


def split_rare_classes(labels: list[str], folds: int) -> tuple[list[str], dict[str, int]]:
    """The sorted classes with at least ``folds`` cells (cross-validation needs one per fold), and
    the rarer ones left out with their counts; fewer than two classes left is an error.

    >>> split_rare_classes(["b", "a", "b", "a", "c"], 2)
    (['a', 'b'], {'c': 1})
    """
    counts = {name: labels.count(name) for name in sorted(set(labels))}
    classes = [name for name, count in counts.items() if count >= folds]
    rare = {name: count for name, count in counts.items() if count < folds}
    if len(classes) < 2:
        listed = ", ".join(f"{name} ({count})" for name, count in counts.items())
        raise DatasetError(f"a classifier needs two or more classes with at least {folds} cells each ({folds}-fold cross-validation); found: {listed}")
    return classes, rare


def without_classes(cells: LabelledCells, rare: dict[str, int]) -> LabelledCells:
    return cells.subset([i for i, row in enumerate(cells.rows) if row["label"] not in rare])


@dataclass
class ClassifierScores:
    """What ``cv.json`` holds: out-of-fold scores of the recipe's classifier and what was left out."""

    model: str
    folds: int
    cells: int
    counts: dict[str, int]
    per_class: dict[str, dict[str, float]]
    macro_f1: float
    accuracy: float
    confusion: list[list[int]]
    majority_baseline: dict[str, Any]
    left_out_classes: dict[str, int]
    unmatched_centroids: int
    skipped_images: int
    warnings: list[str]
    feature_importance: dict[str, dict[str, float]] | None = None
    per_image: dict[str, Any] | None = None


def single_image_classes(labels: list[str], groups: list[str]) -> list[str]:
    """Warnings for classes whose cells all come from one image: cross-validation keeps an image
    in one fold, so those cells are scored by a model that never saw their class.

    >>> single_image_classes(["a", "a", "b", "b"], ["x", "y", "z", "z"])
    ['all 2 cells of class b come from one image (z): their cross-validated scores test a model that never saw the class; add images of it']
    """
    warnings = []
    for name in sorted(set(labels)):
        images = {g for label, g in zip(labels, groups) if label == name}
        if len(images) == 1:
            count = labels.count(name)
            warnings.append(
                f"all {count} cells of class {name} come from one image ({next(iter(images))}): "
                "their cross-validated scores test a model that never saw the class; add images of it"
            )
    return warnings


def image_scores(proba: np.ndarray, targets: np.ndarray, groups: list[str], classes: list[str]) -> dict[str, Any]:
    """Scores per image when every cell carries its image's label: an image's class is the one its
    cells' mean out-of-fold probability favours.

    >>> proba = np.array([[0.9, 0.1], [0.4, 0.6], [0.3, 0.7], [0.2, 0.8]])  # image a: mean (0.65, 0.35)
    >>> scores = image_scores(proba, np.array([0, 0, 1, 1]), ["a", "a", "b", "b"], ["x", "y"])
    >>> scores["images"], scores["accuracy"], scores["confusion"]
    (2, 1.0, [[1, 0], [0, 1]])
    """
    names = sorted(set(groups))
    index = np.array([names.index(g) for g in groups])
    mean = np.stack([proba[index == i].mean(axis=0) for i in range(len(names))])
    truth = np.array([targets[index == i][0] for i in range(len(names))])
    scores = classification_scores(truth, mean.argmax(axis=1), classes)
    return {"images": len(names), "rule": "the class of the highest mean cell probability", **scores}


def write_cv_outputs(
    run_dir: Path, config: ClassifyConfig, cells: LabelledCells, classes: list[str], scores: ClassifierScores, proba: np.ndarray, fold_of: np.ndarray
) -> None:
    """``cv.json``, the confusion matrix, the labelled cells, out-of-fold predictions and what was left out."""
    write_json(run_dir / "cv.json", asdict(scores))
    write_confusion(run_dir, scores.confusion, classes, f"{config.model}, {config.folds}-fold out-of-fold")
    write_csv(run_dir / "cells.csv", cells.rows, [*COLUMNS, "label"])
    write_csv(
        run_dir / "predictions.csv",
        [
            {
                "image": row["image"],
                "cell_id": row["cell_id"],
                "label": row["label"],
                "predicted": classes[p],
                "fold": int(f),
                **{f"p_{name}": float(q) for name, q in zip(classes, probs)},
            }
            for row, p, f, probs in zip(cells.rows, proba.argmax(axis=1), fold_of, proba)
        ],
    )
    if cells.unmatched:
        write_csv(run_dir / "unmatched_centroids.csv", cells.unmatched, ["image", "x", "y"])
    if cells.skipped:
        write_csv(run_dir / "skipped.csv", cells.skipped, ["image", "reason"])


def train_classifier(config: ClassifyConfig, run_dir: str | Path, overwrite: bool = False, on_done: Callable[[Sample], None] | None = None) -> ClassifierScores:
    """Gather labelled cells, cross-validate, fit on all, and write the run folder (module doc)."""
    run_dir = Path(run_dir)
    samples_of = [labelled_samples(source) for source in config.data.sources]  # checked before anything in run_dir is replaced
    prepare_run(run_dir, overwrite, CLASSIFIER_RUN)
    seed_everything(config.seed)
    cells = gather(config, samples_of, on_done)
    classes, rare = split_rare_classes(cells.labels(), config.folds)
    cells = without_classes(cells, rare)
    targets = np.array([classes.index(label) for label in cells.labels()])
    learner = Learner(config, cells, classes)
    groups = cells.groups
    out_of_fold = cross_validated_proba(learner, targets, groups, config.folds, config.seed)
    proba, fold_of = out_of_fold.proba, out_of_fold.fold_of
    scores = ClassifierScores(
        model=config.model,
        folds=config.folds,
        cells=len(targets),
        counts={name: int((targets == i).sum()) for i, name in enumerate(classes)},
        **classification_scores(targets, proba.argmax(axis=1), classes),
        majority_baseline=majority_baseline(targets, classes),
        left_out_classes=rare,
        unmatched_centroids=len(cells.unmatched),
        skipped_images=len(cells.skipped),
        warnings=single_image_classes(cells.labels(), groups),
        feature_importance=out_of_fold.feature_importance(list(config.features)),
        per_image=image_scores(proba, targets, groups, classes) if any(s.label_cells == "every" for s in config.data.sources) else None,
    )
    write_cv_outputs(run_dir, config, cells, classes, scores, proba, fold_of)
    final = learner.fit(np.arange(len(targets)), targets)
    card_scores = {k: getattr(scores, k) for k in ("folds", "cells", "counts", "macro_f1", "accuracy", "per_class")}
    final.card = final.card.model_copy(update={"scores": card_scores})
    final.save(run_dir / RUN_STEM)
    return scores
