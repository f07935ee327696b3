"""User-facing errors.

Every mistake a user can make (a bad file, a wrong name, a bad config) raises a subclass of
:class:`BlastsegError` whose message says what was wrong and what to do. The CLI prints it on one
line and exits with status 2; bugs still raise ordinary exceptions with a traceback.
"""

from __future__ import annotations

from collections.abc import Iterable


class BlastsegError(Exception):
    """Base class of every error caused by user input."""


class ImageReadError(BlastsegError):
    """An image or mask file is missing, empty, truncated or not an image."""


class MaskError(BlastsegError):
    """A mask does not fit its image or holds values its encoding does not know."""


class DatasetError(BlastsegError):
    """A dataset folder is empty, or its layout is not one blastseg reads."""


class ConfigError(BlastsegError):
    """A configuration value or key is invalid."""


class TrainingError(BlastsegError):
    """Training cannot go on (the loss diverged)."""


class AnnotationError(BlastsegError):
    """An annotation file (ALL-IDB ``.xyc`` centroids, Pascal VOC boxes) is missing or malformed."""


class ModelFileError(BlastsegError):
    """A checkpoint, classifier or weights file is missing, broken, foreign, or of another architecture."""


class OutputError(BlastsegError):
    """An output folder cannot be made or written (a file is in the way, no permission)."""


class OutputExistsError(OutputError):
    """An output file or run folder already exists and would be overwritten."""


class UnknownNameError(BlastsegError, KeyError):
    """A name looked up in a registry (segmenter, preprocessing step, encoding…) is not known."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def first_line(error: BaseException) -> str:
    """The first line of a library's error message (many run to a paragraph)."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else "no details"


TRAIN_EXTRA = (
    "torch",
    "torchvision",
    "timm",
    "segmentation_models_pytorch",
    "albumentations",
    "matplotlib",
    "onnx",
    "sklearn",
)  # pip install "blastseg[train]"


def describe_error(error: BaseException) -> str:
    """``error`` on one line: a user mistake as it says, a system error with its file, anything
    else with its type (``BLASTSEG_DEBUG=1`` shows the traceback).

    >>> describe_error(FileNotFoundError(2, "No such file or directory", "a.jpg"))
    'a.jpg: No such file or directory'
    """
    if isinstance(error, BlastsegError):
        text = str(error)
    elif isinstance(error, OSError) and error.strerror:
        text = f"{error.filename}: {error.strerror}" if error.filename else error.strerror
    elif isinstance(error, MemoryError):
        text = "out of memory; try a smaller --batch-size or --tile-size, or a smaller image"
    elif missing_extra(error):
        text = f"{error.name} is not installed: training, export and the torch engine need the training extra (pip install 'blastseg[train]')"
    else:
        text = f"unexpected {type(error).__name__}: {str(error).strip()}; rerun with BLASTSEG_DEBUG=1 for the traceback, and please report it"
    return " ".join(text.split())


def missing_extra(error: BaseException) -> bool:
    """Whether ``error`` is a package of the training extra missing from a light install.

    >>> missing_extra(ModuleNotFoundError("No module named 'torch'", name="torch"))
    True
    """
    return isinstance(error, ModuleNotFoundError) and (error.name or "").split(".")[0] in TRAIN_EXTRA


def lookup(registry: dict, name: str, kind: str):
    """Return ``registry[name]`` or raise :class:`UnknownNameError` listing the valid names.

    >>> lookup({"otsu": 1}, "otsu", "segmenter")
    1
    """
    try:
        return registry[name]
    except KeyError:
        raise UnknownNameError(f"unknown {kind} {name!r}; valid: {_names(registry)}") from None


def _names(names: Iterable[str]) -> str:
    return ", ".join(sorted(names))
