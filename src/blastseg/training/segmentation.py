"""Training a segmentation network from a recipe, into a run folder that can be resumed.

The steps: open the run (new, or reopened with its saved recipe and split), set up a
:class:`Session` (network, data, loss, optimiser), run epochs until a stopping rule fires, then
score the best checkpoint on the held-out test part. Every epoch ends with ``last`` and
``last_state.pt`` written (:mod:`blastseg.training.runs`), so an interrupted run loses at most one
epoch. Each epoch reseeds from the recipe's seed and its number, so a resumed run follows the
same path as an uninterrupted one (on CPU).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, WeightedRandomSampler

from blastseg.datasets.layouts import Sample, can_pseudo_mask, listed, scan_dataset
from blastseg.datasets.splits import kfold_splits, sample_id, select, split_samples
from blastseg.errors import ConfigError, DatasetError, TrainingError
from blastseg.evaluation.segmentation import evaluate_segmenter, evaluated_targets
from blastseg.io import write_bytes, write_csv, write_json
from blastseg.labels import target_mask
from blastseg.metrics import dice
from blastseg.preprocess import Pipeline
from blastseg.render import figure_png, pyplot
from blastseg.runtime import resolve_device, seed_everything
from blastseg.scale import Scale
from blastseg.segment.checkpoint import ModelCard, load_weights, read_checkpoint, save_checkpoint
from blastseg.segment.deep import DeepSegmenter
from blastseg.segment.heads import is_multiclass
from blastseg.segment.networks import create_model
from blastseg.training.augment import build_augmentation
from blastseg.training.dataset import SegmentationDataset
from blastseg.training.distributed import Ranks, from_environment, join, largest, leave, share_buffers, summed, wait_for_all, weight_digests, wrap
from blastseg.training.losses import build_loss
from blastseg.training.recipe import OptimConfig, TrainConfig
from blastseg.training.runs import Progress, has_resume_state, load_resume_state, prepare_run, reopen_run, run_started, save_resume_state, start_run


class Monitor:
    """Hooks a caller overrides to show progress; raising from one stops training (after ``last``
    is saved when raised from :meth:`epoch_end`)."""

    def epoch_start(self, epoch: int, epochs: int, steps: int) -> None: ...

    def step(self, loss: float) -> None: ...

    def epoch_end(self, record: dict[str, Any]) -> None: ...


@dataclass
class TrainResult:
    """What ``test_metrics.json`` holds: test scores of ``best`` and how training went."""

    test: dict[str, Any]
    best_epoch: int
    best_val_dice: float
    epochs: int
    stopped: str
    training_minutes: float


@dataclass
class Session:
    """Everything the epochs of one run share."""

    config: TrainConfig
    run_dir: Path
    segmenter: DeepSegmenter  # wraps the network being trained; scores validation images
    train_set: SegmentationDataset
    train_groups: list[str]
    val_pairs: list[tuple[np.ndarray, np.ndarray, Scale | None]]
    transform: Any
    loss_fn: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Schedule
    scaler: torch.amp.GradScaler
    progress: Progress
    trainer: torch.nn.Module  # what the training steps call: the network, or its DDP wrapper
    ranks: Ranks = Ranks()

    @property
    def model(self) -> torch.nn.Module:
        return self.segmenter.engine.model


def annotated_samples(config: TrainConfig) -> list[Sample]:
    samples = scan_dataset(config.data.path, config.data.layout, config.data.mask_encoding)
    annotated = [s for s in samples if s.mask is not None]
    if not annotated:
        raise DatasetError(f"{config.data.path}: no image has a mask; training needs images with masks")
    return annotated


def train_only_samples(config: TrainConfig, groups: set[str]) -> list[Sample]:
    """The images of ``data.train_also``: listed ones only, with a mask or one made as
    ``masks_from`` says. Their groups must differ from the main dataset's ``groups``."""
    samples: list[Sample] = []
    for source in config.data.train_also:
        found = scan_dataset(source.path, source.layout, source.mask_encoding)
        if source.image_list is not None:
            found = listed(found, source.image_list)
        for sample in found:
            if sample.mask is None and source.masks_from is not None and can_pseudo_mask(sample, source.masks_from):
                sample.pseudo_mask = source.masks_from
            sample.nucleus_known, sample.edge_known = source.learn_nucleus, source.learn_edge
        usable = [s for s in found if s.mask is not None or s.pseudo_mask]
        if not usable:
            need = {None: "a mask", "boxes": "a mask or a white-cell box", "colour": "a mask or white cells the colour rule trusts"}[source.masks_from]
            raise DatasetError(f"{source.path}: no{' listed' if source.image_list else ''} image has {need}; data.train_also needs some")
        clash = {s.group for s in usable} & groups
        if clash:
            raise DatasetError(f"{source.path}: its images' group {sorted(clash)[0]!r} is also a group of data.path; rename one of the folders")
        samples += usable
        groups |= {s.group for s in usable}
    return samples


def with_train_only(split: dict[str, list[str]], extra: list[Sample]) -> dict[str, list[str]]:
    """``split`` with every ``extra`` image added to its training part (once)."""
    known = set(split["train"])
    return {**split, "train": split["train"] + [i for i in map(sample_id, extra) if i not in known]}


def model_card(config: TrainConfig, metrics: dict[str, Any]) -> ModelCard:
    return ModelCard(
        model=config.model_spec().model_copy(update={"encoder_weights_path": None}),
        output=config.output,
        preprocess=Pipeline.from_config(config.data.preprocess).to_config(),
        threshold=config.threshold,
        red_cell_px=config.data.scale_to,
        trained_on=" + ".join([str(config.data.path), *(str(source.path) for source in config.data.train_also)])
        + (f", starting from the weights of {config.init_from}" if config.init_from else ""),
        metrics=metrics,
    )


POLY_EXPONENT = 0.9


@dataclass
class PolySchedule:
    """``lr x (1 - done) ^ 0.9``, where ``done`` is the share of the epochs or of ``max_minutes``
    spent, whichever is larger: the rate reaches zero when training stops, on any machine.

    >>> optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    >>> PolySchedule(optimizer, OptimConfig(lr=1.0, epochs=10, max_minutes=1.0)).step(epoch=2, seconds=30)
    >>> round(optimizer.param_groups[0]["lr"], 4)  # half the time spent outweighs a fifth of the epochs
    0.5359
    """

    optimizer: torch.optim.Optimizer
    optim: OptimConfig

    def step(self, epoch: int, seconds: float) -> None:
        done = epoch / self.optim.epochs
        if self.optim.max_minutes:
            done = max(done, seconds / (60 * self.optim.max_minutes))
        for group in self.optimizer.param_groups:
            group["lr"] = self.optim.lr * max(0.0, 1 - done) ** POLY_EXPONENT

    def state_dict(self) -> dict[str, Any]:
        return {}  # the rate follows from the run's progress; the optimiser's state holds it

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


Schedule = torch.optim.lr_scheduler.ReduceLROnPlateau | PolySchedule


def lr_schedule(optimizer: torch.optim.Optimizer, optim: OptimConfig) -> Schedule:
    """The learning-rate schedule ``optim.schedule`` names, stepped once per epoch."""
    if optim.schedule == "poly":
        return PolySchedule(optimizer, optim)
    return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=optim.lr_factor, patience=optim.lr_patience)


def start_session(
    config: TrainConfig, run_dir: Path, samples: list[Sample], split: dict[str, list[str]], resume: bool, device: torch.device, ranks: Ranks = Ranks()
) -> Session:
    """Build the network, data, loss and optimiser of a run; when resuming, restore their state.
    Across ``ranks``, every process builds the same network and trains it through DDP."""
    seed_everything(config.optim.seed)
    model = create_model(config.model_spec())
    if config.init_from:  # fine-tuning; a resumed run's own weights replace these below
        load_weights(model, read_checkpoint(config.init_from)[0], "the recipe's network")
    model = model.to(device)
    segmenter = DeepSegmenter.from_model(model, model_card(config, {}), str(device), channels_last=False)
    train_samples = select(samples, split["train"])
    transform = build_augmentation(config.augment, config.data.crop_size)
    factors = [config.data.rescale_factor(s.group) for s in train_samples]
    train_set = SegmentationDataset(train_samples, config.output, segmenter.preprocess, segmenter.normalize, transform, config.model.in_channels, factors)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.optim.lr, weight_decay=config.optim.weight_decay)
    scheduler = lr_schedule(optimizer, config.optim)
    scaler = torch.amp.GradScaler("cuda", enabled=config.optim.amp and device.type == "cuda")
    progress = Progress()
    if resume and has_resume_state(run_dir):
        progress = load_resume_state(run_dir, model, optimizer, scheduler, scaler, device)
    return Session(
        config,
        run_dir,
        segmenter,
        train_set,
        [s.group for s in train_samples],
        [(*s.load(), known_scale(config, s)) for s in select(samples, split["val"])],
        transform,
        build_loss(config.loss, is_multiclass(config.output)),
        optimizer,
        scheduler,
        scaler,
        progress,
        wrap(model, ranks, device),
        ranks,
    )


def epoch_loader(session: Session, epoch: int) -> DataLoader:
    """Each sub-dataset (group) is drawn equally often, so a small one is not drowned out. Every
    rank draws the same global batches (``batch_size`` per rank) and takes its share of each."""
    optim, groups, ranks = session.config.optim, session.train_groups, session.ranks
    counts = {g: groups.count(g) for g in set(groups)}
    weights = torch.tensor([1.0 / counts[g] for g in groups], dtype=torch.double)
    steps = optim.steps_per_epoch or math.ceil(len(groups) / (optim.batch_size * ranks.world))
    generator = torch.Generator().manual_seed(optim.seed * 1000 + epoch)
    drawn = list(WeightedRandomSampler(weights, steps * optim.batch_size * ranks.world, replacement=True, generator=generator))
    return DataLoader(session.train_set, optim.batch_size, sampler=drawn[ranks.rank :: ranks.world], drop_last=True, num_workers=optim.workers)


def train_epoch(session: Session, loader: DataLoader, monitor: Monitor) -> float:
    """One pass over ``loader``; mixed precision when the scaler is enabled (CUDA). Mean loss.

    A loss that is not finite stops the run with a one-line error before anything is saved
    (the weights would be NaN from then on).
    """
    model, optimizer, scaler = session.trainer, session.optimizer, session.scaler
    device = next(model.parameters()).device
    model.train()
    losses = []
    for images, targets in loader:
        images, targets = images.to(device), targets.to(device)
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.float16, enabled=scaler.is_enabled()):
            loss = session.loss_fn(model(images), targets)
        if not torch.isfinite(loss) and not scaler.is_enabled():  # AMP skips such steps itself
            raise TrainingError(
                f"training diverged: the loss became {loss.item()} at step {len(losses) + 1} of epoch {session.progress.epoch + 1}; lower optim.lr"
            )
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        losses.append(loss.item())
        monitor.step(losses[-1])
    model.eval()
    return float(np.mean(losses))


def known_scale(config: TrainConfig, sample: Sample) -> Scale | None:
    """The red-cell size the recipe states for a sample's images (``None`` without one)."""
    size = config.data.group_red_cell_px(sample.group)
    return None if size is None else Scale(size, "recipe")


def validation_dice(
    segmenter: DeepSegmenter, samples: list[tuple[np.ndarray, np.ndarray, Scale | None]], ranks: Ranks = Ranks(), device: torch.device | None = None
) -> dict[str, float]:
    """Mean Dice per evaluated target over (image, labels, scale) triples, each image rescaled by
    the scale the recipe states for it (the network is judged, not the scale estimate). Each of
    ``ranks`` scores its share of the triples; the sums are added up across them."""
    targets = evaluated_targets(segmenter.target)
    scores: dict[str, list[float]] = {t: [] for t in targets}
    for image, labels, scale in samples[ranks.rank :: ranks.world]:
        predicted = segmenter.segment(image, scale).labels
        for target in targets:
            scores[target].append(dice(target_mask(predicted, target), target_mask(labels, target)))
    *totals, count = summed([float(np.sum(scores[t])) for t in targets] + [len(scores[targets[0]])], ranks, device)
    return {t: total / count if count else math.nan for t, total in zip(targets, totals)}


def stopping_reason(config: TrainConfig, progress: Progress) -> str:
    """Why training stops after the epoch just finished, or ``""`` to go on."""
    budget = config.optim.max_minutes * 60 if config.optim.max_minutes else math.inf
    if progress.epoch >= config.optim.epochs:
        return "epochs"
    if progress.epoch - progress.best_epoch >= config.optim.patience:
        return "early stopping"
    return "time budget" if progress.seconds >= budget else ""


def run_epoch(session: Session, monitor: Monitor) -> None:
    """Train one epoch, validate, keep the best weights, decide whether to stop, save ``last``."""
    config, progress, run_dir = session.config, session.progress, session.run_dir
    epoch = progress.epoch + 1
    seed_everything(config.optim.seed * 1000 + epoch)
    session.transform.set_random_seed(config.optim.seed * 1000 + epoch)
    loader = epoch_loader(session, epoch)
    monitor.epoch_start(epoch, config.optim.epochs, len(loader))
    started = time.perf_counter()
    train_loss = train_epoch(session, loader, monitor)
    share_buffers(session.model, session.ranks)  # every rank validates, and rank 0 saves, the same network
    device = next(session.model.parameters()).device
    scores = validation_dice(session.segmenter, session.val_pairs, session.ranks, device)
    val_dice = float(np.mean(list(scores.values())))
    progress.seconds += largest(time.perf_counter() - started, session.ranks, device)  # the slowest rank's: every rank stops together
    if isinstance(session.scheduler, PolySchedule):
        session.scheduler.step(epoch, progress.seconds)
    else:
        session.scheduler.step(val_dice)
    record = {
        "epoch": epoch,
        "train_loss": train_loss,
        "val_dice": val_dice,
        **{f"val_dice_{t}": v for t, v in scores.items()},
        "lr": session.optimizer.param_groups[0]["lr"],
        "minutes": progress.seconds / 60,
    }
    progress.history.append(record)
    progress.epoch = epoch
    card = model_card(config, {"val_dice": scores, "epoch": epoch})
    improved = val_dice > progress.best
    if improved:
        progress.best, progress.best_epoch = val_dice, epoch
    progress.stopped = stopping_reason(config, progress)
    if session.ranks.main:  # the other ranks hold the same weights and progress
        if improved:
            save_checkpoint(run_dir / "best", session.model, card)
        save_checkpoint(run_dir / "last", session.model, card)
        write_csv(run_dir / "metrics.csv", progress.history)
        write_bytes(run_dir / "curves.png", draw_curves(progress.history))
        save_resume_state(run_dir, session.model, session.optimizer, session.scheduler, session.scaler, progress)  # the commit point
    monitor.epoch_end(record)


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


def train(
    config: TrainConfig | None,
    run_dir: str | Path,
    resume: bool = False,
    overwrite: bool = False,
    split: dict[str, list[str]] | None = None,
    monitor: Monitor | None = None,
) -> TrainResult:
    """Train ``config`` into ``run_dir`` and score the best checkpoint on the test part.

    ``split`` fixes the train/val/test ids (cross-validation passes one per fold); otherwise a
    seeded split is made. When resuming, the run's saved recipe and split are used; a ``config``
    given with ``resume`` must describe the same network, and starts the run when it was killed
    before it saved its recipe (so ``--config R --resume`` can be repeated until the run is done).
    """
    run_dir, ranks = Path(run_dir), from_environment()
    if resume and config is not None and not run_started(run_dir):
        resume, overwrite = False, True  # only blastseg's files of a run that never began are replaced
    if resume:
        config, split = reopen_run(run_dir, config)
    elif config is None:
        raise ConfigError("a new training run needs a config")
    device = join(ranks, resolve_device(config.optim.device))
    wait_for_all(ranks)  # every rank has looked at the run folder before rank 0 writes to it
    samples = annotated_samples(config)
    extra = train_only_samples(config, {s.group for s in samples})
    if not resume:
        split = with_train_only(split or split_samples(samples, config.data.split, config.data.seed), extra)
        if ranks.main:
            start_run(run_dir, config, split, overwrite)
        wait_for_all(ranks)
    samples += extra
    session = start_session(config, run_dir, samples, split, resume, device, ranks)
    while not session.progress.stopped:
        run_epoch(session, monitor or Monitor())
    digests = weight_digests(session.model, ranks)
    if ranks.main and ranks.active:
        write_json(run_dir / "distributed.json", {"world_size": ranks.world, "backend": torch.distributed.get_backend(), "weights_sha256_per_rank": digests})
    result = evaluate_best(config, run_dir, select(samples, split["test"]), session.progress) if ranks.main else None
    wait_for_all(ranks)
    leave(ranks)
    return result or TrainResult(**json.loads((run_dir / "test_metrics.json").read_text()))


def evaluate_best(config: TrainConfig, run_dir: Path, test_samples: list[Sample], progress: Progress) -> TrainResult:
    """Score ``best`` on the test part; write the per-image CSV and ``test_metrics.json``."""
    best = DeepSegmenter.load(run_dir, device=config.optim.device)
    summary: dict[str, Any] = {}
    if test_samples:
        evaluation = evaluate_segmenter(test_samples, best)
        summary = evaluation.summary
        write_csv(run_dir / "test_per_image.csv", evaluation.rows)
    result = TrainResult(summary, progress.best_epoch, progress.best, progress.epoch, progress.stopped, progress.seconds / 60)
    write_json(run_dir / "test_metrics.json", asdict(result))
    return result


@dataclass
class CrossValidation:
    """What ``cv_summary.json`` holds: per target and metric, mean, std and the per-fold values."""

    folds: int
    per_fold: list[TrainResult]
    test: dict[str, dict[str, dict[str, Any]]]


def cross_validate(config: TrainConfig, run_dir: str | Path, folds: int, overwrite: bool = False, monitor: Monitor | None = None) -> CrossValidation:
    """Train one run per fold (``run_dir/fold_N``) and report mean and std of the test scores."""
    run_dir = Path(run_dir)
    splits = kfold_splits(annotated_samples(config), folds, config.data.split[1], config.data.seed)
    prepare_run(run_dir, overwrite)  # after the folds are known to work
    results = [train(config, run_dir / f"fold_{i + 1}", split=s, monitor=monitor) for i, s in enumerate(splits)]
    test: dict[str, dict[str, dict[str, Any]]] = {}
    for target in results[0].test:
        for metric in ("dice", "iou"):
            values = [r.test[target]["all"][metric]["mean"] for r in results]
            test.setdefault(target, {})[metric] = {"mean": float(np.mean(values)), "std": float(np.std(values)), "folds": values}
    summary = CrossValidation(folds, results, test)
    write_json(run_dir / "cv_summary.json", asdict(summary))
    return summary
