"""The ``blastseg`` command line: thin wrappers that parse, call the library and print."""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from blastseg.classify.config import ClassifyConfig
from blastseg.classify.model import CellClassifier
from blastseg.classify.train import train_classifier
from blastseg.config import InstancesFile, SegmentConfig, load_config
from blastseg.data import scan_dataset
from blastseg.errors import BlastsegError, ConfigError, OutputExistsError
from blastseg.evaluate import evaluate_segmenter
from blastseg.io import write_csv, write_json
from blastseg.labels import check_target
from blastseg.pipeline import SUMMARY_JSON, segment_files
from blastseg.postprocess import InstanceConfig
from blastseg.preprocess import Pipeline
from blastseg.segment import create_segmenter
from blastseg.segment.checkpoint import DEFAULT_CHECKPOINT
from blastseg.segment.deep import DeepSegmenter
from blastseg.train import Monitor, cross_validate, train
from blastseg.train_config import TrainConfig

app = typer.Typer(help="Find, outline and measure white blood cells in blood smear images.", no_args_is_help=True)
console = Console(stderr=True)

INPUT, METHOD, MODEL, OUTPUT, HARDWARE = "Input", "Method", "Model", "Output", "Hardware"


def friendly_errors(command):
    """Print a user mistake as one line on stderr and exit with status 2, no traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except BlastsegError as error:
            print(f"error: {error}", file=sys.stderr)
            raise typer.Exit(2) from None

    return wrapper


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """``["k=4", "k_range=[2, 5]"]`` → ``{"k": 4, "k_range": [2, 5]}`` (values read as YAML)."""
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--param expects KEY=VALUE, got {pair!r}")
        params[key.strip()] = yaml.safe_load(value)
    return params


def resolve_config(config: Path | None, method: str | None, target: str | None, params: list[str]) -> SegmentConfig:
    """Config file values, overridden by whatever was given on the command line."""
    cfg = load_config(config) if config else SegmentConfig()
    updates: dict[str, Any] = {"params": {**cfg.params, **parse_params(params)}}
    if method:
        updates["method"] = method
    if target:
        updates["target"] = check_target(target)
    return cfg.model_copy(update=updates)


def progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=console, transient=True,
    )


ConfigOpt = Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML recipe (method, target, params, preprocess).", rich_help_panel=METHOD)]
MethodOpt = Annotated[Optional[str], typer.Option("--method", "-m", help="otsu, adaptive, hsv, kmeans or watershed.", rich_help_panel=METHOD)]
TargetOpt = Annotated[Optional[str], typer.Option("--target", "-t", help="nucleus, cell or multiclass.", rich_help_panel=METHOD)]
ParamOpt = Annotated[list[str], typer.Option("--param", "-p", help="Method parameter KEY=VALUE (repeatable).", rich_help_panel=METHOD)]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace existing output files.", rich_help_panel=OUTPUT)]


@app.command()
@friendly_errors
def segment(
    images: Annotated[list[Path], typer.Argument(help="Image files (jpg, png, bmp, tif).", show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for NAME_mask.png and NAME_overlay.png.", rich_help_panel=OUTPUT)] = Path("blastseg_out"),
    config: ConfigOpt = None,
    method: MethodOpt = None,
    target: TargetOpt = None,
    param: ParamOpt = [],
    overwrite: OverwriteOpt = False,
) -> None:
    """Segment images with a classical method and write a mask and an overlay for each."""
    cfg = resolve_config(config, method, target, param)
    segmenter = create_segmenter(cfg.method, target=cfg.target, **cfg.params)
    with progress_bar() as progress:
        task = progress.add_task(f"{cfg.method} {cfg.target}", total=len(images))
        written = segment_files(
            images, segmenter, cfg.target, out, Pipeline.from_config(cfg.preprocess), overwrite,
            on_done=lambda *_: progress.advance(task), instances=cfg.instances,
            models={"segmentation": cfg.model_dump(exclude={"instances"})},
        )
    console.print(f"wrote {sum(len(w) for w in written)} files and cells.csv for {len(written)} image(s) to {out}")


CheckpointOpt = Annotated[str, typer.Option("--checkpoint", help="Run folder, NAME.safetensors/NAME.json, or 'default' (the bundled model).", rich_help_panel=MODEL)]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto (CUDA when present), cpu or cuda.", rich_help_panel=HARDWARE)]
TileOpt = Annotated[int, typer.Option("--tile-size", help="Images larger than this go through overlapping tiles.", rich_help_panel=HARDWARE)]
BatchOpt = Annotated[int, typer.Option("--batch-size", help="Images or tiles per forward pass.", rich_help_panel=HARDWARE)]
TtaOpt = Annotated[bool, typer.Option("--tta", help="Average over flips (4x slower).", rich_help_panel=MODEL)]


@app.command()
@friendly_errors
def predict(
    images: Annotated[list[Path], typer.Argument(help="Image files of any size (jpg, png, bmp, tif).", show_default=False)],
    checkpoint: CheckpointOpt = DEFAULT_CHECKPOINT,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for masks, overlays, instances and cells.csv.", rich_help_panel=OUTPUT)] = Path("blastseg_out"),
    threshold: Annotated[Optional[float], typer.Option(help="Probability threshold (default: the model's).", rich_help_panel=MODEL)] = None,
    tta: TtaOpt = False,
    classifier: Annotated[Optional[str], typer.Option("--classifier", help="Classify each cell: a classifier (run folder or NAME.json) or 'default' (the bundled white-cell type classifier).", rich_help_panel=MODEL)] = None,
    instances: Annotated[Optional[Path], typer.Option("--instances", help="YAML with an 'instances:' section: how masks become cells (see configs/instances.yaml).", rich_help_panel=OUTPUT)] = None,
    min_cell_area: Annotated[Optional[int], typer.Option(help="Smaller cell components are dropped (pixels; default 100).", rich_help_panel=OUTPUT)] = None,
    min_nucleus_fraction: Annotated[Optional[float], typer.Option(help="Cells whose nucleus is under this fraction of the image's largest are dropped (default 0.2).", rich_help_panel=OUTPUT)] = None,
    overwrite: OverwriteOpt = False,
    device: DeviceOpt = "auto",
    tile_size: TileOpt = 512,
    batch_size: BatchOpt = 4,
) -> None:
    """Find, outline, measure and (with --classifier) classify the cells of images with a trained
    network: masks, overlays, cells.csv and summary.json (counts per class, blast percentage)."""
    cells_config = load_config(instances, InstancesFile).instances if instances else InstanceConfig()
    overrides = {"min_area": min_cell_area, "min_nucleus_fraction": min_nucleus_fraction}
    cells_config = dataclasses.replace(cells_config, **{k: v for k, v in overrides.items() if v is not None})
    cell_classifier = CellClassifier.load(classifier, device=device) if classifier else None
    segmenter = DeepSegmenter.load(checkpoint, device=device, tile_size=tile_size, batch_size=batch_size, tta=tta, threshold=threshold)
    models = {"segmentation": {"checkpoint": checkpoint, "model": segmenter.card.model.model_dump(), "output": segmenter.card.output,
                               "threshold": segmenter.threshold, "tta": tta}}
    if cell_classifier:
        card = cell_classifier.card
        models["classifier"] = {"classifier": classifier, "kind": card.kind, "classes": card.classes, "trained_on": card.trained_on,
                                "cv_macro_f1": card.scores.get("macro_f1"), "decision": "most probable class"}
    with progress_bar() as progress:
        task = progress.add_task(f"{segmenter.card.model.name} {segmenter.card.output}", total=len(images))
        written = segment_files(
            images, segmenter, segmenter.target, out, overwrite=overwrite, batch_size=batch_size,
            instances=cells_config,
            on_done=lambda *_: progress.advance(task), classifier=cell_classifier, models=models,
        )
    summary = json.loads((out / SUMMARY_JSON).read_text())
    counts = ", ".join(f"{n} {name}" for name, n in (summary["counts"] or {}).items())
    blasts = f"; blasts {summary['blast_percent']}%" if summary["blast_percent"] is not None else ""
    console.print(f"{summary['cells']} cells{f' ({counts})' if counts else ''}{blasts}")
    console.print(f"wrote {sum(len(w) for w in written)} files, cells.csv and summary.json for {len(written)} image(s) to {out}")


class ProgressMonitor(Monitor):
    """A rich progress bar per epoch with the running loss, and a line per epoch with val Dice."""

    def __init__(self, progress: Progress):
        self.progress, self.task, self.label, self.losses = progress, None, "", []

    def epoch_start(self, epoch: int, epochs: int, steps: int) -> None:
        if self.task is not None:
            self.progress.remove_task(self.task)
        self.label, self.losses = f"epoch {epoch}/{epochs}", []
        self.task = self.progress.add_task(self.label, total=steps)

    def step(self, loss: float) -> None:
        self.losses.append(loss)
        mean = sum(self.losses) / len(self.losses)
        self.progress.update(self.task, advance=1, description=f"{self.label} loss {mean:.4f}")

    def epoch_end(self, record: dict) -> None:
        dice = " ".join(f"{k.removeprefix('val_dice_')} {v:.4f}" for k, v in record.items() if k.startswith("val_dice_"))
        self.progress.console.print(f"epoch {record['epoch']}: loss {record['train_loss']:.4f}, val Dice {record['val_dice']:.4f} ({dice}), lr {record['lr']:.2g}")


@app.command("train")
@friendly_errors
def train_command(
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML training recipe (see configs/unet.yaml).", rich_help_panel=INPUT)] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Run folder (default: runs/CONFIG_NAME).", rich_help_panel=OUTPUT)] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the interrupted run in --out.", rich_help_panel=OUTPUT)] = False,
    folds: Annotated[int, typer.Option("--folds", help="K-fold cross-validation (0: one seeded train/val/test split).", rich_help_panel=INPUT)] = 0,
    overwrite: OverwriteOpt = False,
) -> None:
    """Train a U-Net, UNet++ or EfficientNet-U-Net; best weights and test scores go to the run folder."""
    if config is None and not resume:
        raise ConfigError("give --config RECIPE.yaml (or --resume --out RUN to continue a run)")
    if out is None:
        if config is None:
            raise ConfigError("--resume needs --out RUN, the folder of the run to continue")
        out = Path("runs") / config.stem
    cfg = load_config(config, TrainConfig) if config else None
    with progress_bar() as progress:
        monitor = ProgressMonitor(progress)
        try:
            if folds:
                result = cross_validate(cfg, out, folds, overwrite, monitor)
            else:
                result = train(cfg, out, resume=resume, overwrite=overwrite, monitor=monitor)
        except KeyboardInterrupt:
            console.print(f"interrupted; continue with: blastseg train --resume --out {out}")
            raise typer.Exit(130) from None
    if folds:
        for target, metrics in result["test"].items():
            console.print(f"{target}: Dice {metrics['dice']['mean']:.4f} +- {metrics['dice']['std']:.4f} over {folds} folds")
    else:
        console.print(f"stopped by {result['stopped']} after {result['epochs']} epochs; best epoch {result['best_epoch']}")
        print_summary(result["test"])
    console.print(f"run folder: {out}")


@app.command()
@friendly_errors
def evaluate(
    data: Annotated[Path, typer.Option("--data", "-d", help="Dataset folder with images and masks.", rich_help_panel=INPUT)],
    layout: Annotated[str, typer.Option(help="auto, zheng, allidb2, allidb1, bccd or folder.", rich_help_panel=INPUT)] = "auto",
    mask_encoding: Annotated[Optional[str], typer.Option(help="zheng, allidb2_grey, allidb2_rgb, binary (default: the layout's).", rich_help_panel=INPUT)] = None,
    config: ConfigOpt = None,
    method: MethodOpt = None,
    target: TargetOpt = None,
    param: ParamOpt = [],
    sweep: Annotated[bool, typer.Option("--sweep", help="k-means only: choose k and clusters with the ground truth.", rich_help_panel=METHOD)] = False,
    checkpoint: Annotated[Optional[str], typer.Option("--checkpoint", help="Score a trained network (run folder, checkpoint file or 'default') instead of a classical method.", rich_help_panel=MODEL)] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for per_image.csv and summary.json.", rich_help_panel=OUTPUT)] = Path("blastseg_eval"),
    overwrite: OverwriteOpt = False,
    device: DeviceOpt = "auto",
    tile_size: TileOpt = 512,
    tta: TtaOpt = False,
) -> None:
    """Score a classical method or a trained network against a dataset's masks: Dice, IoU, SSIM and more."""
    if checkpoint:
        segmenter = DeepSegmenter.load(checkpoint, device=device, tile_size=tile_size, tta=tta)
        cfg = SegmentConfig(method=f"checkpoint:{checkpoint}", target=segmenter.target)
    else:
        cfg = resolve_config(config, method, target, param)
        segmenter = create_segmenter(cfg.method, target=cfg.target, **cfg.params)
    if sweep and not hasattr(segmenter, "sweep"):
        raise ConfigError(f"--sweep needs --method kmeans, not {cfg.method!r}")
    files = [out / "per_image.csv", out / "summary.json"]
    if not overwrite and any(f.exists() for f in files):
        raise OutputExistsError(f"{out} already holds evaluation results; choose another --out or pass --overwrite")
    samples = scan_dataset(data, layout, mask_encoding)
    with progress_bar() as progress:
        task = progress.add_task(f"{cfg.method} {cfg.target}", total=len(samples))
        rows, summary = evaluate_segmenter(
            samples, segmenter, cfg.target, Pipeline.from_config(cfg.preprocess), sweep,
            on_done=lambda _: progress.advance(task),
        )
    write_csv(files[0], rows)
    write_json(files[1], {"data": str(data), "config": cfg.model_dump(), "sweep": sweep, "metrics": summary})
    print_summary(summary)
    console.print(f"wrote {files[0]} and {files[1]}")


classify_app = typer.Typer(help="Train and cross-validate cell classifiers (random forest or CNN).", no_args_is_help=True)
app.add_typer(classify_app, name="classify")


@classify_app.command("train")
@friendly_errors
def classify_train(
    config: Annotated[Path, typer.Option("--config", "-c", help="YAML classifier recipe (see configs/rf.yaml, configs/cnn.yaml).", rich_help_panel=INPUT)],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Run folder (default: runs/CONFIG_NAME).", rich_help_panel=OUTPUT)] = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Label cells, cross-validate the classifier (k-fold), then fit it on every cell.

    Writes classifier.safetensors/.json, cv.json, confusion.csv/.png, predictions.csv and cells.csv."""
    cfg = load_config(config, ClassifyConfig)
    out = out or Path("runs") / config.stem
    with progress_bar() as progress:
        task = progress.add_task("finding and labelling cells", total=None)
        scores = train_classifier(cfg, out, overwrite, on_done=lambda _: progress.advance(task))
    table = Table(title=f"{cfg.model}, {cfg.folds}-fold cross-validation, {scores['cells']} cells")
    for column in ("class", "n", "precision", "recall", "F1"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for name, stats in scores["per_class"].items():
        table.add_row(name, str(stats["support"]), f"{stats['precision']:.3f}", f"{stats['recall']:.3f}", f"{stats['f1']:.3f}")
    Console().print(table)
    console.print(f"macro F1 {scores['macro_f1']:.4f} (majority-class baseline {scores['majority_baseline']['macro_f1']:.4f}), accuracy {scores['accuracy']:.4f}")
    for name, count in scores["left_out_classes"].items():
        console.print(f"left out {name}: {count} cells, fewer than the {cfg.folds} folds")
    if scores["unmatched_centroids"]:
        console.print(f"{scores['unmatched_centroids']} listed blast centroids matched no cell: see {out / 'unmatched_centroids.csv'}")
    if scores["skipped_images"]:
        console.print(f"{scores['skipped_images']} images gave no labelled cell: see {out / 'skipped.csv'}")
    console.print(f"run folder: {out}")


def print_summary(summary: dict) -> None:
    table = Table(title="mean over images")
    for column in ("target", "group", "n", "dice", "iou", "ssim", "precision", "recall"):
        table.add_column(column, justify="left" if column in ("target", "group") else "right")
    for target, parts in summary.items():
        for group, stats in [("all", parts["all"]), *parts["groups"].items()]:
            cells = [f"{stats[m]['mean']:.4f}" for m in ("dice", "iou", "ssim", "precision", "recall")]
            table.add_row(target, group, str(stats["dice"]["n"]), *cells)
    Console().print(table)
