"""Run folders: the one place that decides whether a run may start, resume or replace another,
and that writes and reads what a run needs to carry on after an interruption.

A segmentation run folder holds::

    config.yaml        the resolved recipe          split.json      train/val/test image ids
    metrics.csv        one row per epoch            curves.png      loss and validation Dice
    best.safetensors   best weights by val Dice     best.json       the card that rebuilds them
    last.safetensors   weights after the last epoch last.json, last_state.pt (weights, optimiser, scheduler)
    test_metrics.json  scores of best on the test part, per target and sub-dataset
    test_per_image.csv one row per test image and target

and, for cross-validation, ``cv_summary.json`` and one such folder per fold (``fold_N``).
These names (:data:`SEGMENTATION_RUN`, :data:`CLASSIFIER_RUN`) are what blastseg owns in a run
folder: ``--overwrite`` deletes those and nothing else, so a user's own files stay.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from blastseg.config import load_config
from blastseg.errors import ConfigError, ModelFileError, OutputExistsError, first_line
from blastseg.folders import prepare_folder
from blastseg.io import atomic_path, write_bytes, write_json
from blastseg.training.recipe import TrainConfig

CONFIG_FILE, SPLIT_FILE, STATE_FILE = "config.yaml", "split.json", "last_state.pt"
FOLDS = "fold_*"
SEGMENTATION_RUN = (
    CONFIG_FILE,
    SPLIT_FILE,
    STATE_FILE,
    "metrics.csv",
    "curves.png",
    "best.safetensors",
    "best.json",
    "last.safetensors",
    "last.json",
    "test_metrics.json",
    "test_per_image.csv",
    "cv_summary.json",
    FOLDS,
)
CLASSIFIER_RUN = (
    "classifier.safetensors",
    "classifier.json",
    "cv.json",
    "confusion.csv",
    "confusion.png",
    "cells.csv",
    "predictions.csv",
    "unmatched_centroids.csv",
    "skipped.csv",
)


@dataclass
class Progress:
    """Where a run stands after its last finished epoch (saved in ``last_state.pt``)."""

    epoch: int = 0
    best: float = -1.0
    best_epoch: int = 0
    seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)
    stopped: str = ""


def owned_files(run_dir: Path, names: Sequence[str]) -> list[Path]:
    """The files and fold folders of ``run_dir`` that match ``names`` (glob patterns): blastseg's own."""
    return sorted({path for name in names for path in run_dir.glob(name)})


def remove_owned(run_dir: Path, names: Sequence[str]) -> None:
    """Delete blastseg's files in ``run_dir``; a fold folder is emptied of them and removed only when nothing else is left."""
    for path in owned_files(run_dir, names):
        if path.is_dir():
            remove_owned(path, names)
            if not any(path.iterdir()):
                path.rmdir()
        else:
            path.unlink()


def prepare_run(run_dir: Path, overwrite: bool, names: Sequence[str] = SEGMENTATION_RUN, resumable: bool = False) -> None:
    """Make ``run_dir`` ready for a new run. One that holds blastseg's files of an earlier run is
    refused unless ``overwrite``, which deletes those files only (``names``); call this after every
    input has been checked."""
    prepare_folder(run_dir)
    earlier = owned_files(run_dir, names)
    if earlier and not overwrite:
        options = "pass --resume to continue it, --overwrite to replace it" if resumable else "pass --overwrite to replace it"
        raise OutputExistsError(f"{run_dir} already holds a run ({earlier[0].name}); {options}, or choose another --out")
    remove_owned(run_dir, names)


def start_run(run_dir: Path, config: TrainConfig, split: dict[str, list[str]], overwrite: bool) -> None:
    """A new segmentation run: the folder made, the resolved recipe and the split saved."""
    prepare_run(run_dir, overwrite, resumable=True)
    write_json(run_dir / SPLIT_FILE, split)
    write_bytes(run_dir / CONFIG_FILE, yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False).encode())  # last: the run exists


def run_started(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a run's saved recipe (written once its split is saved)."""
    return (run_dir / CONFIG_FILE).is_file()


def reopen_run(run_dir: Path, config: TrainConfig | None) -> tuple[TrainConfig, dict[str, list[str]]]:
    """The saved recipe and split of an interrupted run; ``config``, when given, must describe the same network."""
    if not (run_dir / CONFIG_FILE).is_file() or not (run_dir / SPLIT_FILE).is_file():
        raise ConfigError(f"{run_dir}: nothing to resume (no {CONFIG_FILE} and {SPLIT_FILE}); start a new run without --resume")
    prepare_folder(run_dir)  # writable, and the temp files of the killed run deleted
    saved = load_config(run_dir / CONFIG_FILE, TrainConfig)
    if config is not None and config.model_spec() != saved.model_spec():
        raise ConfigError(
            f"{run_dir} was trained as {saved.model_spec().name}/{saved.model_spec().encoder}; "
            f"this config asks for {config.model_spec().name}/{config.model_spec().encoder}: start a new run instead"
        )
    try:
        split = json.loads((run_dir / SPLIT_FILE).read_text())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as error:
        raise ConfigError(f"{run_dir / SPLIT_FILE}: not readable ({type(error).__name__}); start a new run with --overwrite") from None
    if not isinstance(split, dict) or not all(isinstance(split.get(part), list) for part in ("train", "val", "test")):
        raise ConfigError(f"{run_dir / SPLIT_FILE}: not a train/val/test split; start a new run with --overwrite")
    return saved, split


def has_resume_state(run_dir: Path) -> bool:
    """Whether a run finished an epoch (a run killed before its first starts again from scratch)."""
    return (run_dir / STATE_FILE).is_file()


def save_resume_state(run_dir: Path, model, optimizer, scheduler, scaler, progress: Progress) -> None:
    """Weights, optimiser, scheduler, scaler and progress in one file, written atomically last in
    an epoch: whatever a kill interrupts, the run resumes from one consistent epoch."""
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "progress": asdict(progress),
    }
    with atomic_path(run_dir / STATE_FILE) as tmp:
        torch.save(state, tmp)


def load_resume_state(run_dir: Path, model, optimizer, scheduler, scaler, device: torch.device) -> Progress:
    """Restore what :func:`save_resume_state` wrote; returns the run's progress."""
    path = run_dir / STATE_FILE
    try:
        saved = torch.load(path, map_location=device, weights_only=True)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        scaler.load_state_dict(saved["scaler"])
        return Progress(**saved["progress"])
    except Exception as error:  # torch and pickle raise many types for a damaged file
        reason = "damaged, or not written by blastseg" if isinstance(error, pickle.UnpicklingError) else first_line(error)
        raise ModelFileError(f"{path}: cannot resume from it ({type(error).__name__}: {reason}); start the run again with --overwrite") from None
