"""Reading images and masks; atomic writers.

Every image comes back as RGB ``uint8`` HxWx3 whatever its file held (grey, RGBA, palette,
16-bit). Every writer writes to a temporary file in the target folder and renames it, so an
interrupted run never leaves a half-written file behind.
"""

from __future__ import annotations

import contextlib
import csv
import io as _io
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from PIL import Image, UnidentifiedImageError

from blastseg.errors import ImageReadError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")


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


def _to_rgb(array: np.ndarray) -> np.ndarray:
    if array.ndim == 2:
        return np.repeat(array[..., None], 3, axis=2)
    if array.ndim == 3 and array.shape[2] == 1:
        return np.repeat(array, 3, axis=2)
    if array.ndim == 3 and array.shape[2] in (3, 4):
        return np.ascontiguousarray(array[..., :3])
    raise ImageReadError(f"unsupported image shape {array.shape}")


def _read_raw(path: Path) -> np.ndarray:
    """Decode a file into an array with its own dtype and channels (palette expanded)."""
    _check_file(path)
    if path.suffix.lower() in (".tif", ".tiff"):
        try:
            return tifffile.imread(path)
        except Exception as error:  # tifffile raises many types for corrupt files
            raise ImageReadError(f"{path}: not a readable TIFF image ({error})") from None
    try:
        with Image.open(path) as image:
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
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ImageReadError(f"{path}: not a readable image ({error})") from None


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read any supported image file as RGB ``uint8`` with shape (H, W, 3).

    >>> read_image("smear.jpg").shape  # doctest: +SKIP
    (480, 640, 3)
    """
    path = Path(path)
    return _to_rgb(_to_uint8(_read_raw(path)))


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a mask file as ``uint8``: HxW for grey masks, HxWx3 for colour-coded masks.

    Integer masks whose values fit in 0..255 keep their values whatever the file's bit depth
    (a 16-bit label mask of 0/1/2 stays 0/1/2); wider ones are scaled like images.
    """
    path = Path(path)
    raw = _read_raw(path)
    fits = np.issubdtype(raw.dtype, np.integer) and raw.size and raw.min() >= 0 and raw.max() <= 255
    array = raw.astype(np.uint8) if fits else _to_uint8(raw)
    if array.ndim == 3:
        if array.shape[2] == 4:
            array = array[..., :3]
        if array.shape[2] == 1 or (np.all(array[..., 0] == array[..., 1]) and np.all(array[..., 1] == array[..., 2])):
            array = array[..., 0]
    return np.ascontiguousarray(array)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    >>> with atomic_path("out/summary.json") as tmp:  # doctest: +SKIP
    ...     tmp.write_text("{}")
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(handle)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_png(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write a uint8 grey (HxW) or RGB (HxWx3) array as PNG, atomically."""
    buffer = _io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG")
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
    buffer = _io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: _csv_value(row.get(key)) for key in columns})
    return write_bytes(path, buffer.getvalue().encode())


def _csv_value(value: Any) -> Any:
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.6g}"
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__} to JSON")
