"""Checkpoints are atomic and pruned; NaN/inf stops training with the last good checkpoint intact."""

import json

import pytest
import torch
from _train_fixtures import (
    single_thread,  # noqa: F401  (autouse)
    stage1_config,
    tiny_corpus,
)
from accelerate import Accelerator
from safetensors.torch import load_file

from modeling_flallm import FlaLlmForSignTranslation
from train import checkpointing, trainer
from train.checkpointing import TrainerState, latest_checkpoint, list_checkpoints, remove_incomplete, save_checkpoint


@pytest.fixture
def accelerator():
    accelerator = Accelerator(cpu=True)
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    accelerator.prepare(model, optimizer)
    return accelerator


def test_checkpoint_holds_state_and_keeps_last_n(tmp_path, accelerator):
    for step in range(1, 5):
        save_checkpoint(
            accelerator, tmp_path, TrainerState(epoch=1, batches_in_epoch=step, global_step=step), keep_last=2
        )
    assert [path.name for path in list_checkpoints(tmp_path)] == ["step-00000003", "step-00000004"]
    latest = latest_checkpoint(tmp_path)
    assert checkpointing.read_state(latest).batches_in_epoch == 4
    assert {"model.safetensors", "optimizer.bin", "trainer_state.json"} <= {p.name for p in latest.iterdir()}
    # Saving the same step again replaces it (e.g. after the final evaluation).
    save_checkpoint(accelerator, tmp_path, TrainerState(epoch=2, global_step=4), keep_last=2)
    assert checkpointing.read_state(latest_checkpoint(tmp_path)).epoch == 2


@pytest.mark.parametrize("crash_in", ["save_state", "fsync_tree"])
def test_crash_while_saving_never_leaves_a_valid_looking_checkpoint(tmp_path, accelerator, monkeypatch, crash_in):
    save_checkpoint(accelerator, tmp_path, TrainerState(global_step=1), keep_last=3)

    def crash(path, *args, **kwargs):
        (tmp_path / ".tmp-step-00000002").mkdir(exist_ok=True)
        (tmp_path / ".tmp-step-00000002" / "model.safetensors").write_bytes(b"half a file")
        raise OSError("disk full")

    if crash_in == "save_state":
        monkeypatch.setattr(accelerator, "save_state", crash)
    else:
        monkeypatch.setattr(checkpointing, "fsync_tree", crash)
    with pytest.raises(
        checkpointing.CheckpointError,
        match=r"step 2 .* failed \(OSError: disk full\); is the disk full\? "
        r".*step-00000001 is intact",
    ):
        save_checkpoint(accelerator, tmp_path, TrainerState(global_step=2), keep_last=3)
    assert [path.name for path in list_checkpoints(tmp_path)] == ["step-00000001"]
    (tmp_path / ".tmp-step-00000002").mkdir()  # a crash (kill -9) leaves it; the next run removes it first
    remove_incomplete(tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["step-00000001"]
    # A folder with the right name but no trainer_state.json is not a checkpoint either.
    (tmp_path / "step-00000009").mkdir()
    assert latest_checkpoint(tmp_path).name == "step-00000001"


@pytest.fixture
def small_disk(tmp_path):
    """A 1.5 MB tmpfs (needs root and mount; skipped where the machine cannot)."""
    import subprocess

    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1536k", "tmpfs", str(mount_point)], capture_output=True
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {result.stderr.decode().strip()}")
    yield mount_point
    subprocess.run(["umount", str(mount_point)], check=False)


def test_a_full_disk_names_the_intact_checkpoint_and_leaves_it_loadable(small_disk):
    accelerator = Accelerator(cpu=True)
    model = torch.nn.Linear(256, 512)  # 0.5 MB of weights, 1 MB with the momentum: one checkpoint fits, two do not
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model, optimizer = accelerator.prepare(model, optimizer)
    model(torch.ones(1, 256)).sum().backward()
    optimizer.step()
    save_checkpoint(accelerator, small_disk, TrainerState(global_step=1), keep_last=3)
    saved = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    with pytest.raises(checkpointing.CheckpointError, match=r"step 2 .*is the disk full\? .*step-00000001 is intact"):
        save_checkpoint(accelerator, small_disk, TrainerState(global_step=2), keep_last=3)
    assert [path.name for path in small_disk.iterdir()] == ["step-00000001"]  # the partial folder is gone
    checkpointing.load_checkpoint(accelerator, latest_checkpoint(small_disk))
    assert torch.equal(model.weight, saved)


class _InfiniteGradient(torch.autograd.Function):
    """Identity forward, inf gradient backward: a finite loss whose gradients blow up."""

    @staticmethod
    def forward(ctx, value):
        return value.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * float("inf")


@pytest.mark.parametrize("failure", ["loss", "gradient norm"])
def test_nonfinite_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch, failure):
    forward = FlaLlmForSignTranslation.forward
    calls = {"n": 0}

    def failing_forward(self, *args, **kwargs):
        output = forward(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] >= 3:  # the third training batch goes wrong
            output.loss = output.loss * float("nan") if failure == "loss" else _InfiniteGradient.apply(output.loss)
        return output

    monkeypatch.setattr(FlaLlmForSignTranslation, "forward", failing_forward)
    run_dir = tmp_path / "run"
    config = stage1_config(run_dir, checkpointing={"every_steps": 1, "keep_last": 5})
    with pytest.raises(trainer.NonFiniteLossError, match=f"{failure} is not finite") as error:
        trainer.train(config, datasets=tiny_corpus(tmp_path / "data"))
    assert "optimizer step 2" in str(error.value) and "step-00000002" in str(error.value)
    checkpoints = list_checkpoints(run_dir / "checkpoints")
    assert [path.name for path in checkpoints] == ["step-00000001", "step-00000002"]
    assert not list((run_dir / "checkpoints").glob(".tmp-*"))
    weights = load_file(str(checkpoints[-1] / "model.safetensors"))
    assert all(torch.isfinite(value).all() for value in weights.values() if value.is_floating_point())
    assert json.loads((checkpoints[-1] / "trainer_state.json").read_text())["global_step"] == 2
    assert not (run_dir / "metrics.json").exists()


def test_resume_policies(tmp_path):
    run_dir = tmp_path / "run"
    with pytest.raises(FileNotFoundError, match="no complete checkpoint"):
        trainer.train(stage1_config(run_dir, checkpointing={"resume": True}))
    accelerator = Accelerator(cpu=True)
    save_checkpoint(accelerator, run_dir / "checkpoints", TrainerState(global_step=3), keep_last=1)
    with pytest.raises(ValueError, match="already holds checkpoints"):
        trainer.train(stage1_config(run_dir, checkpointing={"resume": False}))
    with pytest.raises(FileNotFoundError, match="not a complete checkpoint"):
        trainer.train(stage1_config(run_dir, checkpointing={"resume": str(tmp_path / "nowhere")}))
