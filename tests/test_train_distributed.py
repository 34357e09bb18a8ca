"""Two CPU processes (gloo) under `accelerate launch`: both ranks end with identical weights."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch
from _train_fixtures import stage1_config, tiny_corpus
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parent.parent
WORKER = Path(__file__).parent / "_train_worker.py"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_processes_agree(tmp_path):
    data_cache, weights_dir = tmp_path / "data", tmp_path / "weights"
    weights_dir.mkdir()
    tiny_corpus(data_cache)
    run_dir = tmp_path / "run"
    config = stage1_config(run_dir, training={"epochs": 1, "batch_size": 2}, checkpointing={"every_steps": 2})
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(free_port()),
        str(WORKER),
        json.dumps(config),
        str(data_cache),
        str(weights_dir),
    ]
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "CUDA_VISIBLE_DEVICES": "",
    }
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "2 process(es)" in (run_dir / "train.log").read_text()

    # 16 clips, 2 per process per step: 4 optimizer steps.
    results = [json.loads(path.read_text()) for path in sorted(weights_dir.glob("result-rank*.json"))]
    assert [result["global_step"] for result in results] == [4, 4]
    rank0 = torch.load(weights_dir / "weights-rank0.pt")
    rank1 = torch.load(weights_dir / "weights-rank1.pt")
    assert sorted(rank0) == sorted(rank1)
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
    # BatchNorm statistics too (each rank updates them from its own batches; they are averaged).
    assert any("running_mean" in key for key in rank0)
    # What the ranks hold is what the final checkpoint (written by rank 0) holds.
    saved = load_file(str(sorted((run_dir / "checkpoints").glob("step-*"))[-1] / "model.safetensors"))
    for key, value in saved.items():
        assert torch.equal(value, rank0[key]), key
