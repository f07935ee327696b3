"""Dataset scanning for every supported layout into :class:`Sample` items.

Layouts, each scanned into a list of :class:`Sample`:

- ``zheng``: ``NNN.bmp`` + ``NNN.png`` masks (0/128/255) and ``labels.csv``, one folder or a
  parent of several (``Dataset1``, ``Dataset2``).
- ``allidb2``: single-cell crops ``ImNNN_L.tif`` (L 1 blast, 0 normal); masks, where present, in a
  ``masks/`` folder or as ``ImNNN_L_mask.*``, grey 0/155/255 or RGB coded.
- ``allidb1``: fields ``ImNNN_L.jpg`` with ``ImNNN_L.xyc`` blast centroids.
- ``bccd``: ``JPEGImages/`` + ``Annotations/`` Pascal VOC boxes.
- ``folder``: ``images/`` + ``masks/`` with matching stems, or class sub-folders
  (``blast/*.png``, ``normal/*.png``), with optional ``labels.csv``.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from blastseg.annotations import Box, read_voc, read_xyc
from blastseg.config import checked_name
from blastseg.datasets.box_masks import WHITE_CELL_LABEL, masks_from_boxes
from blastseg.datasets.colour_masks import white_cells_by_colour
from blastseg.datasets.masks import check_encoding, decode_mask
from blastseg.errors import DatasetError, MaskError, lookup
from blastseg.io import IMAGE_SUFFIXES, read_image, read_mask
from blastseg.labels import BLAST, NORMAL

PseudoMask = Literal["boxes", "colour"]  # see datasets.box_masks and datasets.colour_masks


@dataclass
class Sample:
    """One item of a dataset: an image and whatever annotation it comes with."""

    image: Path
    mask: Path | None = None
    label: str | None = None
    centroids: np.ndarray | None = None
    boxes: list[Box] | None = None
    encoding: str = "auto"
    group: str = ""
    pseudo_mask: PseudoMask | None = None  # without a mask file, how the label map is made
    nucleus_known: bool = True  # false: the nuclei of its label map are too rough to train on
    edge_known: bool = True  # false: its box pseudo-cells' edges beyond the stained core are UNSURE

    @property
    def name(self) -> str:
        return self.image.stem

    def load(self) -> tuple[np.ndarray, np.ndarray | None]:
        """Read the image (RGB uint8) and, when there is a mask, its label map."""
        image = read_image(self.image)
        if self.mask is None:
            return image, self.pseudo_labels(image)
        labels = decode_mask(read_mask(self.mask), self.encoding)
        if labels.shape != image.shape[:2]:
            raise MaskError(f"{self.mask}: mask is {labels.shape[1]}x{labels.shape[0]} but its image {self.image.name} is {image.shape[1]}x{image.shape[0]}")
        return image, labels

    def pseudo_labels(self, image: np.ndarray) -> np.ndarray | None:
        """The label map made without a mask file: cells grown in the white-cell boxes
        (``boxes``) or found by colour (``colour``); ``None`` without a ``pseudo_mask`` or when
        the colour rule does not trust the field."""
        if self.pseudo_mask == "boxes":
            return masks_from_boxes(image, self.boxes or [], edge_known=self.edge_known)
        if self.pseudo_mask == "colour":
            return white_cells_by_colour(image)
        return None


ZHENG_CLASSES = {1: "neutrophil", 2: "lymphocyte", 3: "monocyte", 4: "eosinophil", 5: "basophil"}
ALLIDB_NAME = re.compile(r"^Im\d+_([01])$", re.IGNORECASE)


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def read_label_csv(path: Path) -> dict[str, str]:
    """Read ``image_id,class_label`` rows; ids are matched to stems with and without zero padding."""
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or len(header) < 2:
            raise DatasetError(f"{path}: expected a header 'image_id,class_label'")
        return {row[0].strip(): row[1].strip() for row in reader if len(row) >= 2}


def label_for(stem: str, labels: dict[str, str]) -> str | None:
    for key in (stem, stem.lstrip("0") or "0"):
        if key in labels:
            return labels[key]
    return None


def scan_zheng(root: Path) -> list[Sample]:
    folders = [root] if list(root.glob("*.bmp")) else sorted(p for p in root.iterdir() if p.is_dir())
    samples = []
    for folder in folders:
        labels_file = folder / "labels.csv"
        labels = read_label_csv(labels_file) if labels_file.is_file() else {}
        for image in sorted(folder.glob("*.bmp")):
            mask = image.with_suffix(".png")
            raw = label_for(image.stem, labels)
            label = ZHENG_CLASSES.get(int(raw), raw) if raw and raw.isdigit() else raw
            samples.append(Sample(image, mask if mask.is_file() else None, label, encoding="zheng", group=folder.name))
    return samples


def _find_mask(image: Path, mask_dirs: list[Path]) -> Path | None:
    candidates = [d / f"{image.stem}{s}" for d in mask_dirs for s in IMAGE_SUFFIXES]
    candidates += [image.with_name(f"{image.stem}_mask{s}") for s in IMAGE_SUFFIXES]
    return next((c for c in candidates if c.is_file() and c != image), None)


def scan_allidb2(root: Path) -> list[Sample]:
    mask_dirs = [d for d in (root / "masks", root.parent / "masks") if d.is_dir()]
    samples = []
    for image in _images_in(root):
        match = ALLIDB_NAME.match(image.stem)
        if match and image.suffix.lower() in (".tif", ".tiff"):
            label = BLAST if match.group(1) == "1" else NORMAL
            samples.append(Sample(image, _find_mask(image, mask_dirs), label, group=root.name))
    return samples


def scan_allidb1(root: Path) -> list[Sample]:
    samples = []
    for image in _images_in(root):
        match = ALLIDB_NAME.match(image.stem)
        xyc = image.with_suffix(".xyc")
        if match and image.suffix.lower() in (".jpg", ".jpeg"):
            centroids = read_xyc(xyc) if xyc.is_file() else np.zeros((0, 2))
            label = "ALL" if match.group(1) == "1" else "healthy"
            samples.append(Sample(image, None, label, centroids=centroids, group=root.name))
    return samples


def scan_bccd(root: Path) -> list[Sample]:
    annotations = root / "Annotations"
    samples = []
    for image in _images_in(root / "JPEGImages"):
        xml = annotations / f"{image.stem}.xml"
        boxes = read_voc(xml) if xml.is_file() else None
        samples.append(Sample(image, boxes=boxes, group=root.name))
    return samples


def bccd_fields(root: str | Path, split: str | None = None) -> list[Sample]:
    """The BCCD fields, all or those of one of the dataset's own lists (``ImageSets/Main/SPLIT.txt``:
    train, val, trainval, test)."""
    root = Path(root)
    samples = scan_bccd(root)
    if split is None:
        return samples
    listing = root / "ImageSets" / "Main" / f"{split}.txt"
    if not listing.is_file():
        raise DatasetError(f"{listing}: no such list; BCCD lists are train, val, trainval and test")
    return listed(samples, listing)


def listed(samples: list[Sample], listing: str | Path) -> list[Sample]:
    """The samples whose image stem is a word of the text file ``listing`` (one name per line;
    lines starting with ``#`` are comments)."""
    try:
        lines = Path(listing).read_text().splitlines()
        names = {word for line in lines if not line.lstrip().startswith("#") for word in line.split()}
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetError(f"{listing}: cannot read the image list ({error.__class__.__name__})") from None
    return [sample for sample in samples if sample.image.stem in names]


def scan_folder(root: Path) -> list[Sample]:
    labels_file = root / "labels.csv"
    labels = read_label_csv(labels_file) if labels_file.is_file() else {}
    if (root / "images").is_dir():
        mask_dirs = [d for d in (root / "masks",) if d.is_dir()]
        return [Sample(image, _find_mask(image, mask_dirs), label_for(image.stem, labels), group=root.name) for image in _images_in(root / "images")]
    samples = [Sample(image, None, label_for(image.stem, labels), group=root.name) for image in _images_in(root)]
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        samples += [Sample(image, None, sub.name, group=root.name) for image in _images_in(sub)]
    return samples


LAYOUTS: dict[str, Callable[[Path], list[Sample]]] = {
    "zheng": scan_zheng,
    "allidb2": scan_allidb2,
    "allidb1": scan_allidb1,
    "bccd": scan_bccd,
    "folder": scan_folder,
}


def check_layout(name: str) -> str:
    """``auto`` or a name in :data:`LAYOUTS` (an unknown one lists the valid names)."""
    if name != "auto":
        lookup(LAYOUTS, name, "dataset layout")
    return name


LayoutName = checked_name(check_layout)


def detect_layout(root: Path) -> str:
    """Guess the layout of a dataset folder from the files it holds."""
    if (root / "JPEGImages").is_dir():
        return "bccd"
    if (root / "images").is_dir():
        return "folder"
    stems = [p for p in _images_in(root) if ALLIDB_NAME.match(p.stem)]
    if stems:
        return "allidb2" if any(p.suffix.lower() in (".tif", ".tiff") for p in stems) else "allidb1"
    if list(root.glob("*.bmp")) or any(list(d.glob("*.bmp")) for d in root.iterdir() if d.is_dir()):
        return "zheng"
    return "folder"


def can_pseudo_mask(sample: Sample, kind: PseudoMask) -> bool:
    """Whether ``sample`` can train on a pseudo-mask of ``kind``: it has a white-cell box
    (``boxes``; a field without one may hold a missed cell), or the colour rule trusts every
    object in it (``colour``; the image is read to see)."""
    if kind == "boxes":
        return any(box.label == WHITE_CELL_LABEL for box in sample.boxes or [])
    return white_cells_by_colour(read_image(sample.image)) is not None


def scan_dataset(root: str | Path, layout: str = "auto", encoding: str | None = None) -> list[Sample]:
    """Scan a dataset folder into samples; ``layout="auto"`` detects it.

    ``encoding`` overrides the mask encoding the layout assumes (see ``MASK_ENCODINGS``).

    >>> samples = scan_dataset("../shared/data/zheng_wbc/Dataset1")  # doctest: +SKIP
    >>> samples[0].label  # doctest: +SKIP
    'lymphocyte'
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder")
    if layout == "auto":
        layout = detect_layout(root)
    samples = lookup(LAYOUTS, layout, "dataset layout")(root)
    if not samples:
        raise DatasetError(f"{root}: no images found for layout {layout!r} (extensions: {', '.join(IMAGE_SUFFIXES)})")
    if encoding is not None:
        check_encoding(encoding)
        for sample in samples:
            sample.encoding = encoding
    return samples
