"""Rebuild the bundled default segmentation model from configs/default_model.yaml.

Trains into runs/default_model (``--resume`` continues an interrupted run), then copies the best
checkpoint into the package as ``assets/models/default.{safetensors,json}`` and prints the
held-out test scores per sub-dataset. Run from the repository root with ../shared/data beside it::

    python3 scripts/train_default_model.py
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from blastseg.config import load_config
from blastseg.segment.checkpoint import bundled_checkpoint, load_checkpoint, save_checkpoint
from blastseg.training.recipe import TrainConfig
from blastseg.training.segmentation import train

ROOT = Path(__file__).resolve().parents[1]
NOT_FOR = (
    "dense smears of small lymphoblasts (all_blasts fields: the pale background is taken for cytoplasm and touching cells merge); "
    "stains, scanners and magnifications unlike the Zheng crops'; platelets are outlined as cells; diagnosis"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "default_model.yaml")
    parser.add_argument("--run", type=Path, default=ROOT / "runs" / "default_model")
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()

    started = time.perf_counter()
    config = None if args.resume else load_config(args.config, TrainConfig)
    result = train(config, args.run, resume=args.resume, overwrite=not args.resume)
    minutes = (time.perf_counter() - started) / 60

    model, card = load_checkpoint(args.run)
    scores = {target: {group: round(stats["dice"]["mean"], 4) for group, stats in parts["groups"].items()} for target, parts in result.test.items()}
    card = card.model_copy(
        update={
            "trained_on": "Zheng et al. WBC Dataset1 + Dataset2, 70% train split (seed 0), configs/default_model.yaml",
            "not_for": NOT_FOR,
            "metrics": {"test_dice": scores, "best_epoch": result.best_epoch, "training_minutes": round(result.training_minutes, 1)},
        }
    )
    save_checkpoint(bundled_checkpoint().with_suffix(""), model, card)
    print(
        f"stopped by {result.stopped} after {result.epochs} epochs (best {result.best_epoch}); "
        f"{minutes:.1f} min in all, {result.training_minutes:.1f} min training"
    )
    for target, groups in scores.items():
        print(target, " ".join(f"{g} Dice {v:.4f}" for g, v in groups.items()))


if __name__ == "__main__":
    main()
