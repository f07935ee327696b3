"""The ``blastseg`` command line: thin wrappers that parse, call one library function and print.

The library is imported inside each command, so ``blastseg --help`` stays fast and a classical
``segment`` never loads torch.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from blastseg import __version__
from blastseg.errors import BlastsegError, ConfigError, describe_error, missing_extra

app = typer.Typer(help="Find, outline and measure white blood cells in blood smear images.", no_args_is_help=True, pretty_exceptions_enable=False)
console = Console(stderr=True, soft_wrap=True)

INPUT, METHOD, MODEL, OUTPUT, HARDWARE = "Input", "Method", "Model", "Output", "Hardware"
DEBUG_VARIABLE = "BLASTSEG_DEBUG"
USER_ERROR, INTERNAL_ERROR = 2, 3


def debugging() -> bool:
    return os.environ.get(DEBUG_VARIABLE, "") not in ("", "0")


def friendly_errors(command):
    """Print any failure as ``error: <one line>`` on stderr and exit with status 2 (3 for what
    looks like a bug), no traceback unless ``--debug`` or ``BLASTSEG_DEBUG=1`` asks for one."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort, typer.exceptions.TyperException, KeyboardInterrupt):
            raise
        except Exception as error:
            if debugging():
                raise
            print(f"error: {describe_error(error)}", file=sys.stderr)
            expected = isinstance(error, (BlastsegError, OSError, MemoryError)) or missing_extra(error)
            raise typer.Exit(USER_ERROR if expected else INTERNAL_ERROR) from None

    return wrapper


def show_version(value: bool) -> None:
    if value:
        print(f"blastseg {__version__}")
        raise typer.Exit()


@app.callback()
def options(
    debug: Annotated[bool, typer.Option("--debug", help="Show the full traceback of an error (or set BLASTSEG_DEBUG=1).")] = False,
    version: Annotated[Optional[bool], typer.Option("--version", callback=show_version, is_eager=True, help="Print the version and exit.")] = None,
) -> None:
    """Find, outline and measure white blood cells in blood smear images."""
    if debug:
        os.environ[DEBUG_VARIABLE] = "1"


def main(argv: list[str] | None = None) -> None:
    """The ``blastseg`` program: ``app`` with usage errors as one ``error:`` line too."""
    try:
        code = app(args=argv, prog_name="blastseg", standalone_mode=False)
    except typer.exceptions.TyperException as error:  # click's usage and parameter errors
        context = getattr(error, "ctx", None)
        if type(error).__name__ == "NoArgsIsHelpError" and context is not None:
            print(context.get_help())
            sys.exit(0)
        message = error.format_message()
        if "No such option" in message:
            message += "; put -- before file names that start with '-'"
        command = f"{context.command_path} --help" if context is not None else "blastseg --help"
        print(f"error: {message} (see {command})", file=sys.stderr)
        sys.exit(USER_ERROR)
    except (typer.Abort, KeyboardInterrupt):
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


def parse_params(pairs: list[str] | None) -> dict[str, Any]:
    """``["k=4", "k_range=[2, 5]"]`` → ``{"k": 4, "k_range": [2, 5]}`` (values read as YAML)."""
    params = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--param expects KEY=VALUE, got {pair!r}")
        params[key.strip()] = yaml.safe_load(value)
    return params


class RateColumn(ProgressColumn):
    """Items per second over the last half minute (``images/s``, say)."""

    def __init__(self, unit: str):
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:.2f} {self.unit}/s" if task.speed else "")


def progress_bar(unit: str = "images", disable: bool = False) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(unit),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=disable or not console.is_terminal,  # no bar in logs and pipes
    )


ConfigOpt = Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML recipe (method, target, params, preprocess).", rich_help_panel=METHOD)]
MethodOpt = Annotated[Optional[str], typer.Option("--method", "-m", help="otsu, adaptive, hsv, kmeans or watershed.", rich_help_panel=METHOD)]
TargetOpt = Annotated[Optional[str], typer.Option("--target", "-t", help="nucleus, cell or multiclass.", rich_help_panel=METHOD)]
ParamOpt = Annotated[Optional[list[str]], typer.Option("--param", "-p", help="Method parameter KEY=VALUE (repeatable).", rich_help_panel=METHOD)]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace the files blastseg wrote there before (never others).", rich_help_panel=OUTPUT)]
SkipExistingOpt = Annotated[
    bool,
    typer.Option(
        "--skip-existing",
        "--resume",
        help="Carry on a batch in --out (after a kill, say): the images it finished are skipped, the rest are added.",
        rich_help_panel=OUTPUT,
    ),
]
GlobOpt = Annotated[
    Optional[str],
    typer.Option("--glob", help="In folders, take the files matching this pattern, searched recursively (default: every image file).", rich_help_panel=INPUT),
]
WorkersOpt = Annotated[int, typer.Option("--workers", min=1, help="Processes sharing the images (each loads the models once).", rich_help_panel=HARDWARE)]
DaskOpt = Annotated[
    Optional[str],
    typer.Option(
        "--dask",
        metavar="SCHEDULER",
        help="Share the images among the workers of a Dask cluster: a scheduler's address, or local[:N] for N worker processes here (pip install 'blastseg[distributed]').",
        rich_help_panel=HARDWARE,
    ),
]
FailFastOpt = Annotated[bool, typer.Option("--fail-fast", help="Stop at the first image that fails (default: report it and go on).", rich_help_panel=INPUT)]
CellDiameterOpt = Annotated[
    Optional[float],
    typer.Option("--cell-diameter", help="Red-cell diameter in pixels (default: estimated from each image's red cells).", rich_help_panel=INPUT),
]
PixelSizeOpt = Annotated[
    Optional[float], typer.Option("--pixel-size", help="Micrometres per pixel, if known (instead of --cell-diameter).", rich_help_panel=INPUT)
]
MaxPixelsOpt = Annotated[
    Optional[int], typer.Option("--max-pixels", help="Refuse larger images before decoding them (default 90 million).", rich_help_panel=INPUT)
]


def image_progress(progress: Progress, label: str, total: int):
    """An ``on_done`` hook: advance the bar, and print each failed image on its own line."""
    task = progress.add_task(label, total=total)

    def done(path: Path, error: str | None) -> None:
        if error:
            named = error if error.startswith(str(path)) else f"{path}: {error}"
            progress.console.print(f"failed: {named}", markup=False, highlight=False)
        progress.advance(task)

    return done


@contextlib.contextmanager
def dask_cluster(address: str | None, workers: int):
    """The Dask cluster ``--dask`` names (closed afterwards), or ``None``."""
    if address is None:
        yield None
        return
    if workers > 1:
        raise ConfigError("--dask and --workers both share the images: choose one (local:N gives N workers here)")
    from blastseg.cluster import connect

    cluster = connect(address)
    try:
        yield cluster
    finally:
        cluster.close()


def report_batch(result, out: Path, extra: str) -> None:
    """The last lines of segment and predict; exit status 1 when some images failed."""
    console.print(f"wrote {result.files} files, {extra} for {len(result.written)} image(s) to {out}")
    if result.failed:
        console.print(f"{len(result.failed)} image(s) failed; listed under 'failed' in {out / 'summary.json'}; fix them and rerun with --skip-existing")
        raise typer.Exit(1)


@app.command()
@friendly_errors
def segment(
    images: Annotated[list[Path], typer.Argument(help="Image files (jpg, png, bmp, tif) or folders of them.", show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for NAME_mask.png and NAME_overlay.png.", rich_help_panel=OUTPUT)] = Path("blastseg_out"),
    config: ConfigOpt = None,
    method: MethodOpt = None,
    target: TargetOpt = None,
    param: ParamOpt = None,
    glob: GlobOpt = None,
    overwrite: OverwriteOpt = False,
    skip_existing: SkipExistingOpt = False,
    fail_fast: FailFastOpt = False,
    max_pixels: MaxPixelsOpt = None,
    cell_diameter: CellDiameterOpt = None,
    pixel_size: PixelSizeOpt = None,
    workers: WorkersOpt = 1,
    dask: DaskOpt = None,
) -> None:
    """Segment images with a classical method and write a mask and an overlay for each."""
    from blastseg.batch import OutputRules, ScaleOptions, segment_with_recipe
    from blastseg.config import validate
    from blastseg.folders import find_images
    from blastseg.segment.recipe import SegmentConfig

    recipe = SegmentConfig.from_options(config, method, target, parse_params(param), max_pixels)
    scale = validate(ScaleOptions, {"cell_diameter": cell_diameter, "pixel_size": pixel_size}, "command line").scale()
    inputs = find_images(images, glob, exclude=out)
    with dask_cluster(dask, workers) as cluster, progress_bar() as progress:
        on_done = image_progress(progress, f"{recipe.method} {recipe.target}", len(inputs))
        result = segment_with_recipe(inputs, recipe, out, OutputRules(overwrite, skip_existing, fail_fast), on_done, scale, workers, cluster)
    report_batch(result, out, "cells.csv and summary.json")


CheckpointOpt = Annotated[
    str, typer.Option("--checkpoint", help="Run folder, NAME.safetensors/NAME.json, or 'default' (the bundled model).", rich_help_panel=MODEL)
]
DEFAULT_CHECKPOINT = "default"  # artifacts.DEFAULT, written out so that --help imports no library module
DeviceOpt = Annotated[str, typer.Option("--device", help="auto (CUDA when present), cpu or cuda.", rich_help_panel=HARDWARE)]
EngineOpt = Annotated[
    str,
    typer.Option(
        "--engine",
        help="auto (on the CPU the model's int8 twin, else its ONNX twin, in ONNX Runtime; else PyTorch), torch, onnx or int8.",
        rich_help_panel=HARDWARE,
    ),
]
RegionsOpt = Annotated[
    bool,
    typer.Option(
        "--regions/--no-regions",
        help="Run the network at full resolution only around the cells a half-resolution pass finds (--no-regions: everywhere).",
        rich_help_panel=HARDWARE,
    ),
]
TileOpt = Annotated[int, typer.Option("--tile-size", help="Images larger than this go through overlapping tiles.", rich_help_panel=HARDWARE)]
BatchOpt = Annotated[int, typer.Option("--batch-size", help="Images or tiles per forward pass.", rich_help_panel=HARDWARE)]
TtaOpt = Annotated[bool, typer.Option("--tta", help="Average over flips (4x slower).", rich_help_panel=MODEL)]


@app.command()
@friendly_errors
def predict(
    images: Annotated[list[Path], typer.Argument(help="Image files of any size (jpg, png, bmp, tif) or folders of them.", show_default=False)],
    checkpoint: CheckpointOpt = DEFAULT_CHECKPOINT,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for masks, overlays, instances and cells.csv.", rich_help_panel=OUTPUT)] = Path(
        "blastseg_out"
    ),
    threshold: Annotated[Optional[float], typer.Option(help="Probability threshold (default: the model's).", rich_help_panel=MODEL)] = None,
    tta: TtaOpt = False,
    classifier: Annotated[
        Optional[str],
        typer.Option(
            "--classifier",
            help="Classify each cell: a classifier (run folder or NAME.json), 'default' (the bundled white-cell type classifier) or 'none'.",
            rich_help_panel=MODEL,
        ),
    ] = None,
    instances: Annotated[
        Optional[Path],
        typer.Option("--instances", help="YAML with an 'instances:' section: how masks become cells (see configs/instances.yaml).", rich_help_panel=OUTPUT),
    ] = None,
    min_cell_area: Annotated[
        Optional[int],
        typer.Option(
            help="Smaller cell components are dropped (pixels where red cells are 86 across, scaled to each image; default 100).", rich_help_panel=OUTPUT
        ),
    ] = None,
    min_nucleus_fraction: Annotated[
        Optional[float],
        typer.Option(help="Cells whose nucleus is under this fraction of the image's largest are dropped (default 0.2).", rich_help_panel=OUTPUT),
    ] = None,
    xyc: Annotated[
        bool,
        typer.Option(
            "--xyc", help="Write NAME.xyc with the blast centroids, as ALL-IDB1 has them (needs a classifier with a 'blast' class).", rich_help_panel=OUTPUT
        ),
    ] = False,
    blast_alert: Annotated[
        Optional[float],
        typer.Option("--blast-alert", metavar="PERCENT", help="Flag each image whose blast percentage reaches PERCENT (summary.json).", rich_help_panel=OUTPUT),
    ] = None,
    glob: GlobOpt = None,
    overwrite: OverwriteOpt = False,
    skip_existing: SkipExistingOpt = False,
    fail_fast: FailFastOpt = False,
    max_pixels: MaxPixelsOpt = None,
    cell_diameter: CellDiameterOpt = None,
    pixel_size: PixelSizeOpt = None,
    workers: WorkersOpt = 1,
    dask: DaskOpt = None,
    device: DeviceOpt = "auto",
    engine: EngineOpt = "auto",
    regions: RegionsOpt = True,
    tile_size: TileOpt = 512,
    batch_size: BatchOpt = 4,
) -> None:
    """Find, outline, measure and (with --classifier) classify the cells of images with a trained
    network: masks, overlays, cells.csv and summary.json (counts per class, blast percentage with
    its 95 % interval)."""
    from blastseg.batch import OutputRules, PredictOptions, instance_rules, predict_files
    from blastseg.config import validate
    from blastseg.folders import find_images

    rules = instance_rules(instances, min_area=min_cell_area, min_nucleus_fraction=min_nucleus_fraction)
    flags = {
        "checkpoint": checkpoint,
        "classifier": classifier,
        "threshold": threshold,
        "tta": tta,
        "device": device,
        "engine": engine,
        "regions": regions,
        "tile_size": tile_size,
        "batch_size": batch_size,
        "instances": rules,
        "cell_diameter": cell_diameter,
        "pixel_size": pixel_size,
        "xyc": xyc,
        "blast_alert": blast_alert,
        **({"max_pixels": max_pixels} if max_pixels is not None else {}),
    }
    options = validate(PredictOptions, flags, "command line")
    inputs = find_images(images, glob, exclude=out)
    with dask_cluster(dask, workers) as cluster, progress_bar() as progress:
        on_done = image_progress(progress, f"predict {checkpoint}", len(inputs))
        result = predict_files(inputs, out, options, OutputRules(overwrite, skip_existing, fail_fast), on_done, workers, cluster)
    summary = result.summary
    counts = ", ".join(f"{n} {name}" for name, n in (summary["counts"] or {}).items())
    blasts = f"; blasts {summary['blast_percent']}% (95% CI {'-'.join(map(str, summary['blast_percent_ci']))})" if summary["blast_percent"] is not None else ""
    alerts = f"; {len(summary['blast_alert_images'])} image(s) at or over {blast_alert}% blasts" if "blast_alert_images" in summary else ""
    console.print(f"{summary['cells']} cells{f' ({counts})' if counts else ''}{blasts}{alerts}")
    report_batch(result, out, "cells.csv and summary.json")


class ProgressMonitor:
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
        self.progress.console.print(
            f"epoch {record['epoch']}: loss {record['train_loss']:.4f}, val Dice {record['val_dice']:.4f} ({dice}), lr {record['lr']:.2g}"
        )


@app.command("train")
@friendly_errors
def train_command(
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML training recipe (see configs/unet.yaml).", rich_help_panel=INPUT)] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Run folder (default: runs/CONFIG_NAME).", rich_help_panel=OUTPUT)] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the interrupted run in --out (with --config: start it if it never began).", rich_help_panel=OUTPUT)
    ] = False,
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
    from blastseg.config import load_config
    from blastseg.training.distributed import from_environment
    from blastseg.training.recipe import TrainConfig
    from blastseg.training.segmentation import cross_validate, train

    cfg = load_config(config, TrainConfig) if config else None
    main_rank = from_environment().main  # under torchrun, rank 0 alone speaks
    with progress_bar("batches", disable=not main_rank) as progress:
        monitor = ProgressMonitor(progress) if main_rank else None
        try:
            if folds:
                result = cross_validate(cfg, out, folds, overwrite, monitor)
            else:
                result = train(cfg, out, resume=resume, overwrite=overwrite, monitor=monitor)
        except KeyboardInterrupt:
            console.print(f"interrupted; continue with: blastseg train --resume --out {out}")
            raise typer.Exit(130) from None
    if not main_rank:
        return
    if folds:
        for target, metrics in result.test.items():
            console.print(f"{target}: Dice {metrics['dice']['mean']:.4f} +- {metrics['dice']['std']:.4f} over {folds} folds")
    else:
        console.print(f"stopped by {result.stopped} after {result.epochs} epochs; best epoch {result.best_epoch}")
        print_summary(result.test)
    console.print(f"run folder: {out}")


@app.command()
@friendly_errors
def evaluate(
    data: Annotated[Path, typer.Option("--data", "-d", help="Dataset folder with images and masks.", rich_help_panel=INPUT)],
    layout: Annotated[str, typer.Option(help="auto, zheng, allidb2, allidb1, bccd or folder.", rich_help_panel=INPUT)] = "auto",
    mask_encoding: Annotated[
        Optional[str], typer.Option(help="zheng, allidb2_grey, allidb2_rgb, binary (default: the layout's).", rich_help_panel=INPUT)
    ] = None,
    config: ConfigOpt = None,
    method: MethodOpt = None,
    target: TargetOpt = None,
    param: ParamOpt = None,
    sweep: Annotated[bool, typer.Option("--sweep", help="k-means only: choose k and clusters with the ground truth.", rich_help_panel=METHOD)] = False,
    checkpoint: Annotated[
        Optional[str],
        typer.Option(
            "--checkpoint", help="Score a trained network (run folder, checkpoint file or 'default') instead of a classical method.", rich_help_panel=MODEL
        ),
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for per_image.csv and summary.json.", rich_help_panel=OUTPUT)] = Path("blastseg_eval"),
    overwrite: OverwriteOpt = False,
    device: DeviceOpt = "auto",
    engine: EngineOpt = "auto",
    regions: RegionsOpt = True,
    tile_size: TileOpt = 512,
    tta: TtaOpt = False,
) -> None:
    """Score a classical method or a trained network against a dataset's masks: Dice, IoU, SSIM and more."""
    from blastseg.evaluation.segmentation import evaluate_to_folder
    from blastseg.segment import load_segmenter
    from blastseg.segment.recipe import SegmentConfig

    if checkpoint:
        scored = load_segmenter(checkpoint, engine=engine, regions=regions, device=device, tile_size=tile_size, tta=tta)
    else:
        scored = SegmentConfig.from_options(config, method, target, parse_params(param))
    with progress_bar() as progress:
        task = progress.add_task(f"evaluating {checkpoint or scored.method}", total=None)
        result = evaluate_to_folder(
            data,
            scored,
            out,
            sweep,
            layout,
            mask_encoding,
            overwrite,
            on_done=lambda _: progress.advance(task),
        )
    print_summary(result.summary)
    console.print(f"wrote {out / 'per_image.csv'} and {out / 'summary.json'}")


@app.command("export")
@friendly_errors
def export_command(
    checkpoint: CheckpointOpt = DEFAULT_CHECKPOINT,
    fmt: Annotated[str, typer.Option("--format", help="onnx (the only format so far).", rich_help_panel=OUTPUT)] = "onnx",
    int8: Annotated[
        bool, typer.Option("--int8", help="Write the int8 twin (NAME.int8.onnx): about 2x faster on the CPU; needs --calibration.", rich_help_panel=MODEL)
    ] = False,
    calibration: Annotated[
        Optional[list[Path]],
        typer.Option(
            "--calibration", help="Images (files or folders) like the model's training images, for the int8 ranges (repeatable).", rich_help_panel=INPUT
        ),
    ] = None,
    calibration_images: Annotated[
        int, typer.Option("--calibration-images", min=1, help="At most this many calibration images, evenly spread over those found.", rich_help_panel=INPUT)
    ] = 64,
    out: Annotated[
        Optional[Path], typer.Option("--out", "-o", help="The file to write (default: NAME.onnx or NAME.int8.onnx beside the weights).", rich_help_panel=OUTPUT)
    ] = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Write a segmentation network's ONNX twin (or, with --int8, its int8 twin): predict runs it with ONNX Runtime on the CPU."""
    if fmt != "onnx":
        raise ConfigError(f"unknown export format {fmt!r}; valid: onnx")
    if calibration and not int8:
        raise ConfigError("--calibration is for --int8")
    if not int8:
        from blastseg.segment.export import export_onnx

        console.print(f"wrote {export_onnx(checkpoint, out, overwrite)}")
        return
    from blastseg.segment.export import calibration_set, export_int8

    images = calibration_set(calibration or [], calibration_images)
    console.print(f"wrote {export_int8(checkpoint, images, out, overwrite)} (calibrated on {len(images)} images)")


@app.command()
@friendly_errors
def serve(
    host: Annotated[
        str, typer.Option(help="Address to listen on; 0.0.0.0 lets other machines reach the page (no login: only on a trusted network).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port.")] = 8000,
    max_files: Annotated[int, typer.Option(min=1, help="Images per upload.", rich_help_panel=INPUT)] = 20,
    max_file_mb: Annotated[float, typer.Option(min=0.001, help="Megabytes per image file.", rich_help_panel=INPUT)] = 50.0,
    max_pixels: Annotated[int, typer.Option(min=1, help="Pixels per image, read from its header before decoding.", rich_help_panel=INPUT)] = 40_000_000,
    keep_minutes: Annotated[float, typer.Option(min=1, help="Minutes a job's files are kept before they are deleted.", rich_help_panel=OUTPUT)] = 60.0,
) -> None:
    """Serve the web page: upload images, see the cells, correct the count, download the results."""
    import uvicorn

    from blastseg.serve.app import create_app
    from blastseg.serve.uploads import Limits

    limits = Limits(max_files=max_files, max_file_mb=max_file_mb, max_pixels=max_pixels)
    server = uvicorn.Server(uvicorn.Config(create_app(limits, keep_minutes), host=host, port=port, log_level="warning"))
    console.print(f"blastseg page at http://{host if ':' not in host else f'[{host}]'}:{port}/ (Ctrl-C stops it)")
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn stops cleanly on Ctrl-C, then raises it again
        server.run()


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
    from blastseg.config import load_config
    from blastseg.training.classifier import train_classifier
    from blastseg.training.classifier_recipe import ClassifyConfig

    cfg = load_config(config, ClassifyConfig)
    out = out or Path("runs") / config.stem
    with progress_bar() as progress:
        task = progress.add_task("finding and labelling cells", total=None)
        scores = train_classifier(cfg, out, overwrite, on_done=lambda _: progress.advance(task))
    table = Table(title=f"{cfg.model}, {cfg.folds}-fold cross-validation, {scores.cells} cells")
    for column in ("class", "n", "precision", "recall", "F1"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for name, stats in scores.per_class.items():
        table.add_row(name, str(stats["support"]), f"{stats['precision']:.3f}", f"{stats['recall']:.3f}", f"{stats['f1']:.3f}")
    Console().print(table)
    console.print(f"macro F1 {scores.macro_f1:.4f} (majority-class baseline {scores.majority_baseline['macro_f1']:.4f}), accuracy {scores.accuracy:.4f}")
    for warning in scores.warnings:
        console.print(f"warning: {warning}", markup=False)
    for name, count in scores.left_out_classes.items():
        console.print(f"left out {name}: {count} cells, fewer than the {cfg.folds} folds")
    if scores.unmatched_centroids:
        console.print(f"{scores.unmatched_centroids} listed blast centroids matched no cell: see {out / 'unmatched_centroids.csv'}")
    if scores.skipped_images:
        console.print(f"{scores.skipped_images} images gave no labelled cell: see {out / 'skipped.csv'}")
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
