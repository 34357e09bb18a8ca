"""The documented PHOENIX-2014T path with the small preset (docs/training.md, the block after
`<!-- small-preset-path -->`), run exactly as written, offline, on a tiny release in the official layout: prepare,
pretrain-lm, stage 1, stage 2, evaluate."""

import json
import re
import shlex
from pathlib import Path

from data_builders.testing import GERMAN, fake_samples, write_phoenix14t
from train.cli import main

README = Path(__file__).resolve().parents[1] / "docs" / "training.md"
RELEASE_IN_README = "/data/PHOENIX-2014-T-release-v3"


def readme_commands() -> list[str]:
    text = README.read_text(encoding="utf-8")
    block = re.search(r"<!-- small-preset-path -->\n```bash\n(.*?)```", text, flags=re.S).group(1)
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


def test_the_documented_small_path_has_at_most_three_overrides_per_command():
    commands = readme_commands()
    assert [shlex.split(c)[1] for c in commands] == ["prepare", "pretrain-lm", "train", "train", "evaluate"]
    for command in commands:
        assert sum("=" in arg and not arg.startswith("-") for arg in shlex.split(command)) <= 3, command


def test_the_documented_small_path_runs_end_to_end_offline(tmp_path, monkeypatch, capsys):
    samples = fake_samples({"train": 12, "validation": 3, "test": 3}, GERMAN, frames=(16, 24))
    release = write_phoenix14t(tmp_path / "raw", samples, size=(52, 42))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for command in readme_commands():
        argv = shlex.split(command.replace(RELEASE_IN_README, str(release)))
        assert argv[0] == "flallm"
        assert main(argv[1:]) == 0, command
    out = capsys.readouterr().out
    assert "BLEU-4" in out
    lm = json.loads((tmp_path / "runs/phoenix14t-small/lm/pretraining.json").read_text())
    assert lm["validation_loss_after"] < lm["validation_loss_before"]
    metrics = json.loads((tmp_path / "runs/phoenix14t-small/stage2/best/metrics_test.json").read_text())
    assert metrics["num_examples"] == 3 and 0.0 <= metrics["bleu4"] <= 100.0
