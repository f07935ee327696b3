"""Reading images and masks; atomic writers.

Every image comes back as RGB ``uint8`` HxWx3 whatever its file held (grey, RGBA, palette,
16-bit). An image larger than ``max_pixels`` (default :data:`MAX_PIXELS`) is refused from its
header, before anything is decoded, whatever its format.

Every writer goes through :func:`atomic_path`: it writes a temporary file in the target folder and
renames it, so an interrupted run never leaves a half-written file behind; files get the usual
permissions (0644 under the default umask), and :func:`remove_stale_temps` clears what a killed
process left.
"""

from __future__ import annotations

import contextlib
import csv
import io as _io
import json
import os
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from PIL import Image, UnidentifiedImageError

from blastseg.errors import ImageReadError, first_line

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
MAX_PIXELS = 90_000_000  # about PIL's own safety limit: a 9500 x 9500 field; raise it with --max-pixels
TEMP_SUFFIX = ".blastseg-tmp"


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise ImageReadError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ImageReadError(f"{path}: file is empty")


def _to_uint8(array: np.ndarray) -> np.ndarray:
    """Scale to uint8: integers by their dtype's range, floats as 0..1 (or 0..max when max > 1)."""
    if array.dtype == np.uint8:
        return array
    if array.dtype == bool:
        return array.astype(np.uint8) * 255
    if np.issubdtype(array.dtype, np.integer):
        top = np.iinfo(array.dtype).max
        return np.round(array.astype(np.float64) * 255.0 / top).clip(0, 255).astype(np.uint8)
    values = array.astype(np.float64)
    top = max(1.0, float(np.nanmax(values))) if values.size else 1.0
    return np.round(np.clip(np.nan_to_num(values) / top, 0.0, 1.0) * 255.0).astype(np.uint8)


def _to_rgb(array: np.ndarray, source: object) -> np.ndarray:
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[2] not in (1, 2, 3, 4):
        raise ImageReadError(f"{source}: unsupported image shape {array.shape} (expected H x W with 1 to 4 channels)")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ImageReadError(f"{source}: image has no pixels ({array.shape[1]}x{array.shape[0]})")
    if array.shape[2] <= 2:  # grey, or grey + alpha
        return np.repeat(array[..., :1], 3, axis=2)
    return np.ascontiguousarray(array[..., :3])


def as_rgb(array: np.ndarray, source: object = "image") -> np.ndarray:
    """An in-memory image (grey, RGB or RGBA, any integer or float dtype) as RGB ``uint8``.

    >>> as_rgb(np.zeros((2, 3, 4), np.uint16)).shape
    (2, 3, 3)
    """
    array = np.asarray(array)
    if array.dtype.kind not in "biuf":
        raise ImageReadError(f"{source}: unsupported pixel type {array.dtype}")
    return _to_rgb(_to_uint8(array), source)


def _check_size(path: Path, width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise ImageReadError(
            f"{path}: {width}x{height} is {width * height / 1e6:.0f} megapixels, over the limit of {max_pixels / 1e6:.0f}; "
            "raise it with --max-pixels (or max_pixels in the recipe) if the image is genuine"
        )


def _read_tiff(path: Path, max_pixels: int) -> np.ndarray:
    """The first page of a TIFF, its size checked from the header before decoding."""
    try:
        with tifffile.TiffFile(path) as tiff:
            page = tiff.pages.first
            shape = page.shape
            _check_size(path, *_tiff_size(shape), max_pixels)
            if int(np.prod(shape)) > 4 * max_pixels:
                raise ImageReadError(f"{path}: a {shape} page holds more samples than {max_pixels / 1e6:.0f} megapixels of RGBA")
            return page.asarray()
    except ImageReadError:
        raise
    except Exception as error:  # tifffile raises many types for corrupt files
        raise ImageReadError(f"{path}: not a readable TIFF image ({type(error).__name__}: {first_line(error)})") from None


def _tiff_size(shape: tuple[int, ...]) -> tuple[int, int]:
    """Width and height of a TIFF page of ``shape`` (rows first; a 1-D page is one column)."""
    return (shape[1], shape[0]) if len(shape) >= 2 else (1, shape[0] if shape else 0)


@contextlib.contextmanager
def _pil_header_only() -> Iterator[None]:
    """PIL's own bomb check off while a header is read: ``max_pixels`` is checked from it instead,
    before anything is decoded (PIL's check would refuse in its own words, or warn)."""
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def _read_raw(path: Path, max_pixels: int) -> np.ndarray:
    """Decode a file into an array with its own dtype and channels (palette expanded)."""
    _check_file(path)
    if path.suffix.lower() in (".tif", ".tiff"):
        return _read_tiff(path, max_pixels)
    try:
        with _pil_header_only(), Image.open(path) as image:
            _check_size(path, *image.size, max_pixels)
            image.load()
            if image.mode == "P":
                image = image.convert("RGBA" if "transparency" in image.info else "RGB")
            elif image.mode in ("CMYK", "YCbCr", "LAB", "HSV"):
                image = image.convert("RGB")
            elif image.mode in ("LA", "PA"):
                image = image.convert("RGBA")
            elif image.mode == "1":
                image = image.convert("L")
            return np.asarray(image)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError, MemoryError) as error:
        raise ImageReadError(f"{path}: not a readable image ({type(error).__name__}: {first_line(error)})") from None


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """An image file's width and height from its header, nothing decoded (a decompression bomb
    costs nothing here); :class:`ImageReadError` when no header can be read."""
    path = Path(path)
    _check_file(path)
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            with tifffile.TiffFile(path) as tiff:
                return _tiff_size(tiff.pages.first.shape)
        with _pil_header_only(), Image.open(path) as image:
            return image.size
    except Exception as error:  # PIL and tifffile raise many types for a file that is not an image
        raise ImageReadError(f"{path}: not a readable image ({type(error).__name__}: {first_line(error)})") from None


def read_image(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read any supported image file as RGB ``uint8`` with shape (H, W, 3).

    >>> read_image("smear.jpg").shape  # doctest: +SKIP
    (480, 640, 3)
    """
    path = Path(path)
    return as_rgb(_read_raw(path, max_pixels), path)


def read_mask(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read a mask file as ``uint8``: HxW for grey masks, HxWx3 for colour-coded masks.

    Integer masks whose values fit in 0..255 keep their values whatever the file's bit depth
    (a 16-bit label mask of 0/1/2 stays 0/1/2); wider ones are scaled like images.
    """
    path = Path(path)
    raw = _read_raw(path, max_pixels)
    fits = np.issubdtype(raw.dtype, np.integer) and raw.size and raw.min() >= 0 and raw.max() <= 255
    array = raw.astype(np.uint8) if fits else _to_uint8(raw)
    if array.ndim not in (2, 3) or array.size == 0:
        raise ImageReadError(f"{path}: unsupported mask shape {array.shape}")
    if array.ndim == 3:
        if array.shape[2] == 4:
            array = array[..., :3]
        if array.shape[2] == 1 or (np.all(array[..., 0] == array[..., 1]) and np.all(array[..., 1] == array[..., 2])):
            array = array[..., 0]
    return np.ascontiguousarray(array)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path`` with the
    permissions a plain ``open`` would give (0644 under the default umask).

    >>> with atomic_path("out/summary.json") as tmp:  # doctest: +SKIP
    ...     tmp.write_text("{}")
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    os.close(handle)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def remove_stale_temps(folder: str | os.PathLike) -> int:
    """Delete the temporary files a killed writer left in ``folder``; returns how many."""
    stale = list(Path(folder).glob(f".*{TEMP_SUFFIX}")) if Path(folder).is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_png(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write a uint8 grey (HxW) or RGB (HxWx3) array as PNG, atomically, at zlib level 1: about
    five times faster than Pillow's default level 6 for a file about a fifth larger
    (``scripts/bench_postprocess.py``)."""
    buffer = _io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG", compress_level=1)
    return write_bytes(path, buffer.getvalue())


def write_tiff(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write an array (for example 16-bit instance labels) as a compressed TIFF, atomically."""
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, array, compression="zlib")
    return Path(path)


def write_json(path: str | os.PathLike, data: Any) -> Path:
    return write_bytes(path, (json.dumps(data, indent=2, default=_json_default) + "\n").encode())


def write_csv(path: str | os.PathLike, rows: Sequence[dict], columns: Sequence[str] | None = None) -> Path:
    """Write dict rows as CSV; columns default to the keys of the first row, in order."""
    columns = list(columns if columns is not None else (rows[0].keys() if rows else []))
    return write_bytes(path, csv_text(rows, columns, header=True).encode())


def append_csv(path: str | os.PathLike, rows: Sequence[dict], columns: Sequence[str]) -> Path:
    """Append rows to a CSV that :func:`write_csv` started (its header written when the file is new), flushed to disk."""
    path = Path(path)
    if not path.is_file():
        return write_csv(path, rows, columns)
    return append_text(path, csv_text(rows, columns, header=False))


def append_text(path: str | os.PathLike, text: str) -> Path:
    """Append ``text`` (whole lines: CSV rows, JSON Lines) and flush it to disk."""
    path = Path(path)
    with path.open("a", newline="") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    return path


def csv_text(rows: Sequence[dict], columns: Sequence[str], header: bool) -> str:
    """Rows as CSV text; text that a spreadsheet would run as a formula is escaped.

    >>> csv_text([{"image": "=cmd()", "area": 0.5}], ["image", "area"], header=False)
    "'=cmd(),0.5\\n"
    >>> csv_text([{"image": "-1+1", "area": "-0.5"}], ["image", "area"], header=False)  # a number read back stays one
    "'-1+1,-0.5\\n"
    """
    buffer = _io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    if header:
        writer.writeheader()
    for row in rows:
        writer.writerow({key: _csv_value(row.get(key)) for key in columns})
    return buffer.getvalue()


def _csv_value(value: Any) -> Any:
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.6g}"
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r") and not _is_number(value):
        return "'" + value  # OWASP's advice against CSV injection
    return value


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__} to JSON")
