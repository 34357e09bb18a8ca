"""Test-wide settings (never touch the network, one torch thread) and the quick demo the tests share."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

# Tests use tiny models: one thread is faster than two, and much faster on a shared machine.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def quick_demo(tmp_path_factory):
    """One `flallm demo --quick` output directory (seconds), shared by the demo tests and the README's examples."""
    from train.cli import main

    output_dir = tmp_path_factory.mktemp("demo")
    threads = torch.get_num_threads()
    assert main(["demo", "--quick", "--output-dir", str(output_dir), "--num-examples", "3"]) == 0
    assert torch.get_num_threads() == threads  # the demo's single-thread setting does not leak
    return output_dir
