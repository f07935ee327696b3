"""What the web page accepts: image files recognised by their first bytes, within limits.

A name a browser sends is only ever shown, escaped, never used as a path: each upload is saved
as ``image_NNN`` with the extension its content calls for.

>>> image_type(b"\\x89PNG\\r\\n\\x1a\\n...")
'.png'
>>> image_type(b"<html>") is None
True
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from pydantic import Field

from blastseg.config import StrictModel
from blastseg.errors import BlastsegError, ImageReadError
from blastseg.io import image_size, read_image

SIGNATURES = (
    (b"\xff\xd8\xff", ".jpg"),
    (b"\x89PNG\r\n\x1a\n", ".png"),
    (b"BM", ".bmp"),
    (b"II*\x00", ".tif"),
    (b"MM\x00*", ".tif"),
)
CHUNK = 1 << 20


class Limits(StrictModel):
    """What one request may hold (``blastseg serve`` flags set them)."""

    max_files: int = Field(default=20, ge=1, le=1000)
    max_file_mb: float = Field(default=50.0, gt=0, le=2000)
    max_pixels: int = Field(default=40_000_000, ge=1, description="width x height of one image, read from its header before decoding")


class UploadRefused(BlastsegError):
    """An upload the server will not analyse, with the HTTP status that says why (413 too large, 415 not an image, 422 unreadable)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def image_type(head: bytes) -> str | None:
    """The extension an image's first bytes call for (JPEG, PNG, BMP, TIFF), or ``None``."""
    return next((extension for signature, extension in SIGNATURES if head.startswith(signature)), None)


def save_upload(stream: BinaryIO, shown_name: str, folder: Path, stem: str, limits: Limits) -> Path:
    """Copy one uploaded file to ``folder/STEM.EXT`` and check it: at most ``max_file_mb`` (413), an
    image by content (415), at most ``max_pixels`` by its header (413), and decodable (422).
    A refused file is deleted; the message names ``shown_name`` and fits on one line."""
    head = stream.read(16)
    extension = image_type(head)
    if extension is None:
        raise UploadRefused(415, f"{shown_name}: not a JPEG, PNG, BMP or TIFF image (judged by its content)")
    path = folder / f"{stem}{extension}"
    most = int(limits.max_file_mb * 2**20)
    size = len(head)
    try:
        with path.open("wb") as out:
            out.write(head)
            while chunk := stream.read(CHUNK):
                size += len(chunk)
                if size > most:
                    raise UploadRefused(413, f"{shown_name}: larger than the limit of {limits.max_file_mb:g} MB")
                out.write(chunk)
        width, height = image_size(path)
        if width * height > limits.max_pixels:
            raise UploadRefused(413, f"{shown_name}: {width}x{height} pixels, over the limit of {limits.max_pixels / 1e6:g} megapixels")
        read_image(path, limits.max_pixels)
    except ImageReadError as error:
        path.unlink(missing_ok=True)
        reason = str(error).split(": ", 1)[-1]
        raise UploadRefused(422, f"{shown_name}: {reason}") from None
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path
