"""Training with DistributedDataParallel: two gloo ranks on the CPU, launched by torchrun as a user
would (``torchrun --nproc_per_node 2 -m blastseg train``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml
from safetensors.torch import load_file

from blastseg.training.distributed import state_digest
from tests.test_train import recipe

pytestmark = pytest.mark.slow


def torchrun(*args) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "blastseg", "train", *map(str, args)]


def test_two_ranks_hold_the_same_weights_rank_0_writes_once_and_a_killed_run_resumes(cells_dataset, tmp_path):
    (tmp_path / "ddp.yaml").write_text(yaml.safe_dump(recipe(cells_dataset, epochs=3, steps_per_epoch=2, device="cpu")))
    straight = subprocess.run(torchrun("--config", tmp_path / "ddp.yaml", "--out", tmp_path / "straight"), capture_output=True, text=True, timeout=600)
    assert straight.returncode == 0, straight.stderr[-3000:]
    assert sum(line.startswith("epoch ") for line in straight.stderr.splitlines()) == 3  # one line per epoch: rank 0 alone speaks
    ranks = json.loads((tmp_path / "straight" / "distributed.json").read_text())
    assert ranks["world_size"] == 2 and ranks["backend"] == "gloo"
    saved = state_digest(load_file(tmp_path / "straight" / "last.safetensors"))
    assert ranks["weights_sha256_per_rank"] == [saved, saved]  # rank 0's checkpoint is what both ranks hold

    killed = subprocess.Popen(
        torchrun("--config", tmp_path / "ddp.yaml", "--out", tmp_path / "killed"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 600
    while not (tmp_path / "killed" / "last_state.pt").is_file():
        assert killed.poll() is None and time.monotonic() < deadline, "the run ended before its first epoch was saved"
        time.sleep(0.05)
    os.killpg(killed.pid, signal.SIGKILL)  # torchrun and both ranks at once, as a lost machine would
    killed.wait(60)
    epochs_done = len((tmp_path / "killed" / "metrics.csv").read_text().splitlines()) - 1
    assert epochs_done < 3
    resumed = subprocess.run(torchrun("--resume", "--out", tmp_path / "killed"), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert len((tmp_path / "killed" / "metrics.csv").read_text().splitlines()) == 1 + 3
    again = json.loads((tmp_path / "killed" / "distributed.json").read_text())["weights_sha256_per_rank"]
    assert again == [saved, saved]  # the resumed run ends where the uninterrupted one did
