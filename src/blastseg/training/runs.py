"""Run folders: the one place that decides whether a run may start, resume or replace another,
and that writes and reads what a run needs to carry on after an interruption.

A segmentation run folder holds::

    config.yaml        the resolved recipe          split.json      train/val/test image ids
    metrics.csv        one row per epoch            curves.png      loss and validation Dice
    best.safetensors   best weights by val Dice     best.json       the card that rebuilds them
    last.safetensors   weights after the last epoch last.json, last_state.pt (optimiser, scheduler)
    test_metrics.json  scores of best on the test part, per target and sub-dataset
    test_per_image.csv one row per test image and target
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from blastseg.config import load_config
from blastseg.errors import ConfigError, OutputExistsError
from blastseg.io import atomic_path, write_bytes, write_json
from blastseg.training.recipe import TrainConfig

CONFIG_FILE, SPLIT_FILE, STATE_FILE = "config.yaml", "split.json", "last_state.pt"


@dataclass
class Progress:
    """Where a run stands after its last finished epoch (saved in ``last_state.pt``)."""

    epoch: int = 0
    best: float = -1.0
    best_epoch: int = 0
    seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)
    stopped: str = ""


def prepare_run(run_dir: Path, overwrite: bool, resumable: bool = False) -> None:
    """Make ``run_dir`` for a new run; a used one is refused unless told to overwrite."""
    if run_dir.exists() and any(run_dir.iterdir()):
        if not overwrite:
            options = "pass --resume to continue it, --overwrite to replace it" if resumable else "pass --overwrite to replace it"
            raise OutputExistsError(f"{run_dir} already holds a run; {options}, or choose another --out")
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)


def start_run(run_dir: Path, config: TrainConfig, split: dict[str, list[str]], overwrite: bool) -> None:
    """A new segmentation run: the folder made, the resolved recipe and the split saved."""
    prepare_run(run_dir, overwrite, resumable=True)
    write_bytes(run_dir / CONFIG_FILE, yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False).encode())
    write_json(run_dir / SPLIT_FILE, split)


def reopen_run(run_dir: Path, config: TrainConfig | None) -> tuple[TrainConfig, dict[str, list[str]]]:
    """The saved recipe and split of an interrupted run; ``config``, when given, must describe the same network."""
    if not (run_dir / STATE_FILE).is_file():
        raise ConfigError(f"{run_dir}: nothing to resume (no {STATE_FILE}); start a new run without --resume")
    saved = load_config(run_dir / CONFIG_FILE, TrainConfig)
    if config is not None and config.model_spec() != saved.model_spec():
        raise ConfigError(
            f"{run_dir} was trained as {saved.model_spec().name}/{saved.model_spec().encoder}; "
            f"this config asks for {config.model_spec().name}/{config.model_spec().encoder}: start a new run instead"
        )
    return saved, json.loads((run_dir / SPLIT_FILE).read_text())


def save_resume_state(run_dir: Path, optimizer, scheduler, scaler, progress: Progress) -> None:
    """Optimiser, scheduler, scaler and progress, atomically (the weights are in ``last.*``)."""
    state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "progress": asdict(progress)}
    with atomic_path(run_dir / STATE_FILE) as tmp:
        torch.save(state, tmp)


def load_resume_state(run_dir: Path, optimizer, scheduler, scaler, device: torch.device) -> Progress:
    """Restore what :func:`save_resume_state` wrote; returns the run's progress."""
    saved = torch.load(run_dir / STATE_FILE, map_location=device, weights_only=True)
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    scaler.load_state_dict(saved["scaler"])
    return Progress(**saved["progress"])
