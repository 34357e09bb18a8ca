"""The `flallm` command line: sub-commands are listed and shipped configs resolve from anywhere."""

import subprocess
import sys

import pytest

from train.cli import COMMANDS, main
from train.config import load_config


def test_help_lists_every_command(capsys):
    assert main([]) == 2
    out = capsys.readouterr().out
    for command in COMMANDS:
        assert command in out


def test_each_command_module_has_the_cli_interface():
    import importlib

    for module_name, _ in COMMANDS.values():
        module = importlib.import_module(module_name)
        assert callable(module.add_arguments) and callable(module.run), module_name


def test_shipped_configs_resolve_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_config("phoenix14t_stage1").stage == 1
    assert load_config("train/configs/phoenix14t_stage2.yaml").stage == 2
    assert load_config("ablations/joint_end_to_end.yaml").stage == 2
    with pytest.raises(FileNotFoundError, match="nope.yaml does not exist"):
        load_config("nope.yaml")


def test_console_script_prints_the_resolved_config(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "train.cli", "train", "--config", "synthetic_stage1.yaml", "--print-config"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "stage: 1" in result.stdout
