"""Test-wide settings: never touch the network, keep torch small on 2 cores."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")

import torch  # noqa: E402

torch.set_num_threads(min(2, os.cpu_count() or 1))
