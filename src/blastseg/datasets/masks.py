"""Mask encodings: how a dataset's mask files code background, cytoplasm and nucleus, decoded
into the shared label map (0 background, 1 cytoplasm, 2 nucleus)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from blastseg.config import checked_name
from blastseg.errors import MaskError, lookup
from blastseg.labels import BACKGROUND, CYTOPLASM, NUCLEUS


@dataclass(frozen=True)
class MaskEncoding:
    """How a mask file codes the classes: a palette of pixel values → label ids."""

    name: str
    palette: dict[tuple[int, ...], int]

    def decode(self, mask: np.ndarray) -> np.ndarray:
        """Map every pixel to the label of its nearest palette value (snaps anti-aliasing)."""
        channels = len(next(iter(self.palette)))
        if (mask.ndim == 3) != (channels == 3):
            kind = "an RGB" if channels == 3 else "a grey"
            raise MaskError(f"mask encoding {self.name!r} expects {kind} mask, got shape {mask.shape}")
        values = np.array(list(self.palette.keys()), dtype=np.int32)
        ids = np.array(list(self.palette.values()), dtype=np.uint8)
        pixels = mask.reshape(-1, channels).astype(np.int32)
        # masks hold few distinct values: find the nearest palette entry once per distinct value
        distinct, inverse = np.unique(pixels, axis=0, return_inverse=True)
        distance = ((distinct[:, None, :] - values[None, :, :]) ** 2).sum(axis=2)
        return ids[distance.argmin(axis=1)][inverse.ravel()].reshape(mask.shape[:2])


MASK_ENCODINGS: dict[str, MaskEncoding] = {
    encoding.name: encoding
    for encoding in (
        MaskEncoding("zheng", {(0,): BACKGROUND, (128,): CYTOPLASM, (255,): NUCLEUS}),
        MaskEncoding("allidb2_grey", {(0,): BACKGROUND, (155,): CYTOPLASM, (255,): NUCLEUS}),
        MaskEncoding(
            "allidb2_rgb",
            {(255, 255, 255): BACKGROUND, (0, 0, 255): CYTOPLASM, (0, 255, 255): NUCLEUS},
        ),
        # one foreground, labelled nucleus so that both targets read it: it means whatever
        # target the user evaluates against
        MaskEncoding("binary", {(0,): BACKGROUND, (255,): NUCLEUS}),
    )
}


def check_encoding(name: str) -> str:
    """``auto`` or a name in :data:`MASK_ENCODINGS` (an unknown one lists the valid names)."""
    if name != "auto":
        lookup(MASK_ENCODINGS, name, "mask encoding")
    return name


EncodingName = checked_name(check_encoding)


def guess_encoding(mask: np.ndarray) -> str:
    """Name the encoding a mask most likely uses, from its shape and values."""
    if mask.ndim == 3:
        return "allidb2_rgb"
    values = np.unique(mask)
    if values.size <= 2 and set(values.tolist()) <= {0, 1, 255}:
        return "binary"
    near_128 = np.count_nonzero(np.abs(mask.astype(np.int16) - 128) <= 8)
    near_155 = np.count_nonzero(np.abs(mask.astype(np.int16) - 155) <= 8)
    return "allidb2_grey" if near_155 > near_128 else "zheng"


def decode_mask(mask: np.ndarray, encoding: str = "auto") -> np.ndarray:
    """Decode a raw mask array into a label map (0 background, 1 cytoplasm, 2 nucleus).

    >>> decode_mask(np.array([[0, 130, 250]], np.uint8), "zheng").tolist()
    [[0, 1, 2]]
    """
    if encoding == "auto":
        encoding = guess_encoding(mask)
    if encoding == "binary":
        mask = np.where(mask > 0, 255, 0).astype(np.uint8)
    return lookup(MASK_ENCODINGS, encoding, "mask encoding").decode(mask)
