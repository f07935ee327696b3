"""Held-out Zheng Dice of networks trained at one red-cell scale: as predict sees them, and alone.

Each checkpoint segments the recipe's test crops twice: with the scale estimated as ``predict``
does it (red cells, else the white cell's size), and with the red-cell size the recipe states for
the crop's sub-dataset (the network alone, without the estimate's errors). Mean Dice per
sub-dataset and target, at each crop's own resolution::

    python3 scripts/bench_scaled_candidates.py runs/scaled_model [more run folders or .json cards] [--tta]

``default`` names the bundled model (which has no red-cell size: both modes then run it at the
crops' own resolution); ``--tta`` averages over flips as ``blastseg predict --tta`` does.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from blastseg.config import load_config
from blastseg.datasets.layouts import scan_dataset
from blastseg.datasets.splits import select, split_samples
from blastseg.labels import target_mask
from blastseg.metrics import dice
from blastseg.scale import Scale
from blastseg.segment.deep import DeepSegmenter
from blastseg.training.recipe import TrainConfig

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "scaled_model.yaml", help="the recipe: data, split and red-cell sizes")
    parser.add_argument("--tta", action="store_true", help="average over flips (blastseg predict --tta)")
    args = parser.parse_args()
    config = load_config(args.config, TrainConfig)
    samples = scan_dataset(config.data.path, config.data.layout, config.data.mask_encoding)
    test = select(samples, split_samples(samples, config.data.split, config.data.seed)["test"])
    pairs = [(sample, *sample.load()) for sample in test]
    for checkpoint in args.checkpoints:
        segmenter = DeepSegmenter.load(checkpoint, device="cpu", tta=args.tta)
        for mode in ("estimated", "recipe"):
            scores: dict[tuple[str, str], list[float]] = {}
            for sample, image, labels in pairs:
                scale = Scale(config.data.group_red_cell_px(sample.group), "recipe") if mode == "recipe" else None
                predicted = segmenter.segment(image, scale).labels
                for target in ("nucleus", "cell"):
                    scores.setdefault((sample.group, target), []).append(dice(target_mask(predicted, target), target_mask(labels, target)))
            figures = ", ".join(f"{group} {target} {np.mean(values):.4f}" for (group, target), values in sorted(scores.items()))
            print(f"{checkpoint} [{mode} scale{', tta' if args.tta else ''}]: {figures}")


if __name__ == "__main__":
    main()
