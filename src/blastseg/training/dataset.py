"""The torch Dataset that feeds segmentation training: images and targets in memory, augmented on the fly."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import torch
from torch.utils.data import Dataset

from blastseg.datasets.layouts import Sample
from blastseg.errors import DatasetError
from blastseg.preprocess import Normalize, Pipeline
from blastseg.scale import resized
from blastseg.segment.heads import encode_target
from blastseg.tensors import to_tensor


class SegmentationDataset(Dataset):
    """Images and their training targets, held in memory, augmented on the fly.

    Each item is ``(image tensor 3xHxW, target)`` with the target as :func:`encode_target` makes it
    (nuclei unknown inside the cells of samples whose ``nucleus_known`` is false).
    ``factors`` (one per sample) resize the images and masks once, when they are loaded: to the
    red-cell size the network trains at.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        output: str,
        preprocess: Pipeline,
        normalize: Normalize,
        transform: Callable | None = None,
        channels: int = 3,
        factors: Sequence[float] | None = None,
    ):
        self.output, self.normalize, self.transform, self.channels = output, normalize, transform, channels
        self.items = []
        for sample, factor in zip(samples, factors or [1.0] * len(samples)):
            image, labels = sample.load()
            if labels is None:
                raise DatasetError(f"{sample.image}: no mask found; training needs a mask for every image")
            image = resized(preprocess(image), factor)
            if image.shape[:2] != labels.shape:
                labels = cv2.resize(labels, image.shape[1::-1], interpolation=cv2.INTER_NEAREST)
            self.items.append((image, labels, sample.nucleus_known))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, labels, nucleus_known = self.items[index]
        if self.transform is not None:
            out = self.transform(image=image, mask=labels)
            image, labels = out["image"], out["mask"]
        return to_tensor(image, self.normalize, self.channels), torch.from_numpy(encode_target(labels, self.output, nucleus_known))
