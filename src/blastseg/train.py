"""Training a segmentation network from a recipe, into a run folder that can be resumed.

A run folder holds::

    config.yaml        the resolved recipe          split.json      train/val/test image ids
    metrics.csv        one row per epoch            curves.png      loss and validation Dice
    best.safetensors   best weights by val Dice     best.json       the card that rebuilds them
    last.safetensors   weights after the last epoch last.json, last_state.pt (optimiser, scheduler)
    test_metrics.json  scores of best on the test part, per target and sub-dataset
    test_per_image.csv one row per test image and target

Every epoch ends with ``last`` written, so an interrupted run loses at most one epoch and
``train(..., resume=True)`` carries on from there. Each epoch reseeds from the recipe's seed and
its number, so a resumed run follows the same path as an uninterrupted one (on CPU).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch.utils.data import DataLoader, WeightedRandomSampler

from blastseg.augment import build_augmentation
from blastseg.config import load_config
from blastseg.data import Sample, scan_dataset
from blastseg.dataset import SegmentationDataset, kfold_splits, select, split_samples
from blastseg.errors import ConfigError, DatasetError, OutputExistsError
from blastseg.evaluate import evaluate_segmenter, evaluated_targets
from blastseg.io import write_bytes, write_csv, write_json
from blastseg.labels import target_mask
from blastseg.losses import build_loss
from blastseg.metrics import dice
from blastseg.preprocess import Pipeline
from blastseg.report import figure_png, pyplot
from blastseg.runtime import resolve_device, seed_everything
from blastseg.segment.checkpoint import ModelCard, load_weights, save_checkpoint
from blastseg.segment.deep import DeepSegmenter
from blastseg.segment.models import create_model
from blastseg.segment.outputs import is_multiclass, label_target
from blastseg.train_config import TrainConfig

STATE_FILE = "last_state.pt"


class Monitor:
    """Hooks a caller overrides to show progress; raising from one stops training (after ``last``
    is saved when raised from :meth:`epoch_end`)."""

    def epoch_start(self, epoch: int, epochs: int, steps: int) -> None: ...

    def step(self, loss: float) -> None: ...

    def epoch_end(self, record: dict[str, Any]) -> None: ...


def annotated_samples(config: TrainConfig) -> list[Sample]:
    samples = scan_dataset(config.data.path, config.data.layout, config.data.mask_encoding)
    annotated = [s for s in samples if s.mask is not None]
    if not annotated:
        raise DatasetError(f"{config.data.path}: no image has a mask; training needs images with masks")
    return annotated


def prepare_run(run_dir: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to write into a used run folder unless resuming or told to overwrite."""
    if resume:
        if not (run_dir / STATE_FILE).is_file():
            raise ConfigError(f"{run_dir}: nothing to resume (no {STATE_FILE}); start a new run without --resume")
        return
    if run_dir.exists() and any(run_dir.iterdir()):
        if not overwrite:
            raise OutputExistsError(f"{run_dir} already holds a run; pass --resume to continue it, --overwrite to replace it, or choose another --out")
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)


def _loader(dataset: SegmentationDataset, samples: list[Sample], config: TrainConfig, epoch: int) -> DataLoader:
    """Each sub-dataset (group) is drawn equally often, so a small one is not drowned out."""
    groups = [s.group for s in samples]
    counts = {g: groups.count(g) for g in set(groups)}
    weights = torch.tensor([1.0 / counts[g] for g in groups], dtype=torch.double)
    steps = config.optim.steps_per_epoch or math.ceil(len(samples) / config.optim.batch_size)
    generator = torch.Generator().manual_seed(config.optim.seed * 1000 + epoch)
    sampler = WeightedRandomSampler(weights, steps * config.optim.batch_size, replacement=True, generator=generator)
    return DataLoader(dataset, config.optim.batch_size, sampler=sampler, drop_last=True)


def train_epoch(model, loader: DataLoader, loss_fn, optimizer, scaler: torch.amp.GradScaler, monitor: Monitor) -> float:
    """One pass over ``loader``; mixed precision when ``scaler`` is enabled (CUDA). Mean loss."""
    device = next(model.parameters()).device
    model.train()
    losses = []
    for images, targets in loader:
        images, targets = images.to(device), targets.to(device)
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.float16, enabled=scaler.is_enabled()):
            loss = loss_fn(model(images), targets)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        losses.append(loss.item())
        monitor.step(losses[-1])
    model.eval()
    return float(np.mean(losses))


def validation_dice(segmenter: DeepSegmenter, samples: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    """Mean Dice per evaluated target over (image, labels) pairs."""
    targets = evaluated_targets(segmenter.target)
    scores: dict[str, list[float]] = {t: [] for t in targets}
    for image, labels in samples:
        predicted = segmenter.segment(image).labels
        for target in targets:
            scores[target].append(dice(target_mask(predicted, target), target_mask(labels, target)))
    return {t: float(np.mean(v)) for t, v in scores.items()}


def draw_curves(history: list[dict[str, Any]]) -> bytes:
    """PNG of training loss and validation Dice per epoch."""
    epochs = [r["epoch"] for r in history]
    fig, (left, right) = pyplot().subplots(1, 2, figsize=(9, 3.5))
    left.plot(epochs, [r["train_loss"] for r in history])
    left.set(xlabel="epoch", ylabel="training loss")
    for key in [k for k in history[0] if k.startswith("val_dice")]:
        right.plot(epochs, [r[key] for r in history], label=key.removeprefix("val_dice_") or "mean")
    right.set(xlabel="epoch", ylabel="validation Dice")
    right.legend()
    fig.tight_layout()
    return figure_png(fig)


def _card(config: TrainConfig, metrics: dict[str, Any]) -> ModelCard:
    return ModelCard(
        model=config.model_spec().model_copy(update={"encoder_weights_path": None}),
        output=config.output,
        preprocess=Pipeline.from_config(config.data.preprocess).to_config(),
        threshold=config.threshold,
        trained_on=str(config.data.path),
        metrics=metrics,
    )


def train(
    config: TrainConfig | None,
    run_dir: str | Path,
    resume: bool = False,
    overwrite: bool = False,
    split: dict[str, list[str]] | None = None,
    monitor: Monitor | None = None,
) -> dict[str, Any]:
    """Train ``config`` into ``run_dir`` and score the best checkpoint on the test part.

    ``split`` fixes the train/val/test ids (cross-validation passes one per fold); otherwise a
    seeded split is made. When resuming, the run's saved recipe and split are used; a ``config``
    given with ``resume`` must describe the same network. Returns the test summary.
    """
    run_dir = Path(run_dir)
    monitor = monitor or Monitor()
    if resume:
        prepare_run(run_dir, resume, overwrite)
        saved = load_config(run_dir / "config.yaml", TrainConfig)
        if config is not None and config.model_spec() != saved.model_spec():
            raise ConfigError(
                f"{run_dir} was trained as {saved.model_spec().name}/{saved.model_spec().encoder}; "
                f"this config asks for {config.model_spec().name}/{config.model_spec().encoder}: start a new run instead"
            )
        config, split = saved, json.loads((run_dir / "split.json").read_text())
    elif config is None:
        raise ConfigError("a new training run needs a config")
    samples = annotated_samples(config)
    split = split or split_samples(samples, config.data.split, config.data.seed)
    if not resume:
        prepare_run(run_dir, resume, overwrite)
        write_bytes(run_dir / "config.yaml", yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False).encode())
        write_json(run_dir / "split.json", split)

    device = resolve_device(config.optim.device)
    seed_everything(config.optim.seed)
    model = create_model(config.model_spec()).to(device)
    preprocess = Pipeline.from_config(config.data.preprocess)
    card = _card(config, {})
    segmenter = DeepSegmenter(model, card, device=str(device))
    normalize = segmenter.normalize
    train_samples = select(samples, split["train"])
    transform = build_augmentation(config.augment, config.data.crop_size)
    train_set = SegmentationDataset(train_samples, config.output, preprocess, normalize, transform, config.model.in_channels)
    val_pairs = [s.load() for s in select(samples, split["val"])]

    multiclass = is_multiclass(config.output)
    loss_fn = build_loss(config.loss, multiclass)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.optim.lr, weight_decay=config.optim.weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="max", factor=config.optim.lr_factor, patience=config.optim.lr_patience
    )
    scaler = torch.amp.GradScaler("cuda", enabled=config.optim.amp and device.type == "cuda")
    state: dict[str, Any] = {"epoch": 0, "best": -1.0, "best_epoch": 0, "seconds": 0.0, "history": [], "stopped": ""}
    if resume:
        load_weights(model, run_dir / "last.safetensors", f"the run's {config.model.name}")
        saved = torch.load(run_dir / STATE_FILE, map_location=device, weights_only=True)
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        scaler.load_state_dict(saved["scaler"])
        state = saved["progress"]

    budget = config.optim.max_minutes * 60 if config.optim.max_minutes else math.inf
    while not state["stopped"]:
        epoch = state["epoch"] + 1
        seed_everything(config.optim.seed * 1000 + epoch)
        transform.set_random_seed(config.optim.seed * 1000 + epoch)
        loader = _loader(train_set, train_samples, config, epoch)
        monitor.epoch_start(epoch, config.optim.epochs, len(loader))
        started = time.perf_counter()
        train_loss = train_epoch(model, loader, loss_fn, optimizer, scaler, monitor)
        scores = validation_dice(segmenter, val_pairs)
        val_dice = float(np.mean(list(scores.values())))
        scheduler.step(val_dice)
        state["seconds"] += time.perf_counter() - started
        record = {
            "epoch": epoch,
            "train_loss": train_loss,
            "val_dice": val_dice,
            **{f"val_dice_{t}": v for t, v in scores.items()},
            "lr": optimizer.param_groups[0]["lr"],
            "minutes": state["seconds"] / 60,
        }
        state["history"].append(record)
        state["epoch"] = epoch
        if val_dice > state["best"]:
            state["best"], state["best_epoch"] = val_dice, epoch
            save_checkpoint(run_dir / "best", model, _card(config, {"val_dice": scores, "epoch": epoch}))
        if epoch >= config.optim.epochs:
            state["stopped"] = "epochs"
        elif epoch - state["best_epoch"] >= config.optim.patience:
            state["stopped"] = "early stopping"
        elif state["seconds"] >= budget:
            state["stopped"] = "time budget"
        save_checkpoint(run_dir / "last", model, _card(config, {"val_dice": scores, "epoch": epoch}))
        torch.save(
            {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "progress": state},
            run_dir / STATE_FILE,
        )
        write_csv(run_dir / "metrics.csv", state["history"])
        write_bytes(run_dir / "curves.png", draw_curves(state["history"]))
        monitor.epoch_end(record)

    return evaluate_best(config, run_dir, select(samples, split["test"]), state)


def evaluate_best(config: TrainConfig, run_dir: Path, test_samples: list[Sample], state: dict[str, Any]) -> dict[str, Any]:
    """Score ``best`` on the test part; write the per-image CSV and ``test_metrics.json``."""
    best = DeepSegmenter.load(run_dir, device=config.optim.device)
    summary: dict[str, Any] = {}
    if test_samples:
        rows, summary = evaluate_segmenter(test_samples, best, label_target(config.output))
        write_csv(run_dir / "test_per_image.csv", rows)
    result = {
        "test": summary,
        "best_epoch": state["best_epoch"],
        "best_val_dice": state["best"],
        "epochs": state["epoch"],
        "stopped": state["stopped"],
        "training_minutes": state["seconds"] / 60,
    }
    write_json(run_dir / "test_metrics.json", result)
    return result


def cross_validate(config: TrainConfig, run_dir: str | Path, folds: int, overwrite: bool = False, monitor: Monitor | None = None) -> dict[str, Any]:
    """Train one run per fold (``run_dir/fold_N``) and report mean and std of the test scores."""
    run_dir = Path(run_dir)
    prepare_run(run_dir, resume=False, overwrite=overwrite)
    splits = kfold_splits(annotated_samples(config), folds, config.data.split[1], config.data.seed)
    results = [train(config, run_dir / f"fold_{i + 1}", split=s, monitor=monitor) for i, s in enumerate(splits)]
    summary: dict[str, Any] = {"folds": folds, "per_fold": results, "test": {}}
    for target in results[0]["test"]:
        for metric in ("dice", "iou"):
            values = [r["test"][target]["all"][metric]["mean"] for r in results]
            summary["test"].setdefault(target, {})[metric] = {"mean": float(np.mean(values)), "std": float(np.std(values)), "folds": values}
    write_json(run_dir / "cv_summary.json", summary)
    return summary


