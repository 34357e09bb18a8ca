"""A run killed with SIGKILL and resumed ends exactly where the uninterrupted run ends."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from _train_fixtures import stage1_config, tiny_corpus
from safetensors.torch import load_file

WORKER = Path(__file__).parent / "_train_worker.py"
ROOT = Path(__file__).resolve().parent.parent


def start(config: dict, data_cache: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, str(WORKER), json.dumps(config), str(data_cache)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(process: subprocess.Popen) -> str:
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output[-3000:]
    return output


def final_weights(run_dir: Path) -> dict:
    checkpoints = sorted((run_dir / "checkpoints").glob("step-*"))
    return load_file(str(checkpoints[-1] / "model.safetensors"))


def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path):
    data_cache = tmp_path / "data"
    tiny_corpus(data_cache)  # build the corpus once, before two processes read it
    # Augmentation on (training collator), dropout on, momentum on: all of it must resume exactly.
    settings = {
        "checkpointing": {"every_steps": 1, "keep_last": 3},
        "training": {"epochs": 2},
        "model": {**stage1_config("x")["model"], "light_t": {**stage1_config("x")["model"]["light_t"], "dropout": 0.3}},
    }
    # The uninterrupted run and the run to be killed go side by side (one thread each).
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    uninterrupted = start(stage1_config(straight, **settings), data_cache)
    process = start(stage1_config(killed, **settings), data_cache)
    target = killed / "checkpoints" / "step-00000003" / "trainer_state.json"
    deadline = time.monotonic() + 240
    while not target.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (killed / "metrics.json").exists()
    finish(uninterrupted)

    output = finish(start(stage1_config(killed, **settings), data_cache))
    assert "Resumed from" in output
    assert not list((killed / "checkpoints").glob(".tmp-*"))

    expected, actual = final_weights(straight), final_weights(killed)
    assert sorted(expected) == sorted(actual)
    for key in expected:
        assert torch.equal(expected[key], actual[key]), key
    history = json.loads((straight / "metrics.json").read_text())["history"]
    assert history == json.loads((killed / "metrics.json").read_text())["history"]


def test_augmented_batches_do_not_depend_on_workers_or_global_rng(tmp_path):
    from modeling_fixtures import tiny_processor
    from torch.utils.data import DataLoader

    from data_builders import SignTranslationCollator
    from train.sampling import EpochShuffleSampler, SeededCollator

    train = tiny_corpus(tmp_path / "data")["train"].select(range(8))

    def batches(num_workers: int, epoch: int):
        sampler = EpochShuffleSampler(len(train), seed=3)
        collate = SeededCollator(SignTranslationCollator(tiny_processor(frame_sample_rate=2), training=True), seed=3)
        sampler.set_epoch(epoch)
        collate.set_epoch(epoch)
        torch.manual_seed(num_workers)  # the global RNG must not matter
        loader = DataLoader(train, batch_size=4, sampler=sampler, collate_fn=collate, num_workers=num_workers)
        return [(batch["pixel_values"], batch["labels"]) for batch in loader]

    in_process, in_workers = batches(0, epoch=1), batches(2, epoch=1)
    for (pixels, labels), (other_pixels, other_labels) in zip(in_process, in_workers, strict=True):
        assert torch.equal(pixels, other_pixels) and torch.equal(labels, other_labels)
    # Another epoch: another order and other augmentations.
    assert not torch.equal(batches(0, epoch=2)[0][0], in_process[0][0])


def test_two_fresh_runs_of_one_config_and_seed_end_with_the_same_tokenizer_and_weights(tmp_path):
    data_cache = tmp_path / "data"
    tiny_corpus(data_cache)
    for model_type in ("unigram", "bpe"):
        model = {**stage1_config("x")["model"], "train_tokenizer": {"vocab_size": 300, "model_type": model_type}}
        runs = [tmp_path / model_type / name for name in ("a", "b")]
        for process in [start(stage1_config(run, model=model, training={"epochs": 1}), data_cache) for run in runs]:
            finish(process)
        first, second = ((run / "best" / "tokenizer.json").read_bytes() for run in runs)
        assert first == second, model_type
        expected, actual = (final_weights(run) for run in runs)
        assert all(torch.equal(expected[key], actual[key]) for key in expected), model_type
