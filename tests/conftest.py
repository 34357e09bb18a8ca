"""Test-wide settings: never touch the network, one torch thread."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")

import torch  # noqa: E402

# Tests use tiny models: one thread is faster than two, and much faster on a shared machine.
torch.set_num_threads(1)
