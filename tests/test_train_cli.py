"""`flallm train` from the command line: a YAML file, overrides, the summary, and the NaN exit status."""

import json

import yaml
from _train_fixtures import (
    single_thread,  # noqa: F401  (autouse)
    stage1_config,
)

from modeling_flallm import FlaLlmForSignTranslation
from train import cli


def write_config(tmp_path) -> str:
    config = stage1_config(tmp_path / "unused", training={"epochs": 1})
    config["data"]["options"] = {"num_train": 8, "num_validation": 2, "num_test": 2, "resolution": 16, "fps": 8.0}
    config["data"]["cache_dir"] = str(tmp_path / "data")
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_train_command_runs_a_stage_and_prints_a_summary(tmp_path, capsys):
    run_dir = tmp_path / "run"
    status = cli.main(
        [
            "train",
            "--config",
            write_config(tmp_path),
            "--output-dir",
            str(run_dir),
            "training.batch_size=8",
            "data.test_split=test",
            "--no-resume",
        ]
    )
    assert status == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["export_dir"] == str(run_dir / "best") and summary["best_step"] == 1
    assert set(summary["test"]) == {"bleu1", "bleu2", "bleu3", "bleu4", "rougeL"}
    saved = yaml.safe_load((run_dir / "training_config.yaml").read_text())
    assert saved["training"]["batch_size"] == 8 and saved["output_dir"] == str(run_dir)
    # Running the finished run again resumes from its last checkpoint and changes nothing.
    assert (
        cli.main(
            [
                "train",
                "--config",
                write_config(tmp_path),
                "--output-dir",
                str(run_dir),
                "training.batch_size=8",
                "data.test_split=test",
                "--resume",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["best_step"] == 1


def test_nonfinite_loss_exits_with_status_1(tmp_path, monkeypatch, caplog):
    forward = FlaLlmForSignTranslation.forward

    def nan_forward(self, *args, **kwargs):
        output = forward(self, *args, **kwargs)
        output.loss = output.loss * float("nan")
        return output

    monkeypatch.setattr(FlaLlmForSignTranslation, "forward", nan_forward)
    status = cli.main(["train", "--config", write_config(tmp_path), "--output-dir", str(tmp_path / "run")])
    assert status == 1
    assert "loss is not finite" in caplog.text and "no checkpoint was written yet" in caplog.text


def test_an_empty_split_stops_before_training_naming_the_split_and_the_release(tmp_path):
    import pytest

    from data_builders.testing import GERMAN, fake_samples, write_phoenix14t
    from train.trainer import train

    for empty, message in (
        ("train", "nothing to train on"),
        ("validation", r"nothing to evaluate \(data.validation_split: null"),
    ):
        sizes = {"train": 3, "validation": 2, "test": 2, empty: 0}
        release = write_phoenix14t(tmp_path / empty / "raw", fake_samples(sizes, GERMAN))
        config = stage1_config(
            tmp_path / empty / "run",
            data={"dataset": "phoenix14t", "data_dir": str(release), "cache_dir": str(tmp_path / empty / "cache")},
        )
        with pytest.raises(ValueError, match=rf"the '{empty}' split of {release} has no examples: {message}"):
            train(config)
        assert not (tmp_path / empty / "run" / "best").exists()


def test_an_output_dir_that_is_a_file_is_refused_by_name(tmp_path):
    import pytest

    (tmp_path / "taken").write_text("not a directory")
    with pytest.raises(SystemExit, match=r"flallm train: output_dir .*taken is a file: expected a directory"):
        cli.main(["train", "--config", write_config(tmp_path), "--output-dir", str(tmp_path / "taken")])
    assert (tmp_path / "taken").read_text() == "not a directory"


def test_a_hub_resource_that_cannot_be_reached_names_its_key_and_the_offline_alternative(tmp_path, monkeypatch):
    import pytest

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cases = (
        (
            ["model.train_tokenizer=null", "model.tokenizer=someone/not-cached"],
            "model.tokenizer='someone/not-cached'",
            "model.train_tokenizer=",
        ),
        (["model.vision_model=someone/no-resnet"], "model.vision_model='someone/no-resnet'", "model.vision_model=null"),
    )
    for overrides, key, alternative in cases:
        with pytest.raises(SystemExit, match=r"flallm train: ") as error:
            cli.main(["train", "--config", write_config(tmp_path), "--output-dir", str(tmp_path / "run"), *overrides])
        assert (
            key in str(error.value)
            and alternative in str(error.value)
            and "Without access to the Hub" in str(error.value)
        )


def test_stage2_takes_the_stage1_run_directory_and_says_which_export_it_loaded(tmp_path, capsys, caplog):
    import logging

    import pytest

    stage1_run = tmp_path / "stage1"
    assert cli.main(["train", "--config", write_config(tmp_path), "--output-dir", str(stage1_run)]) == 0
    capsys.readouterr()
    from train.model_building import stage1_export

    assert (
        stage1_export(str(stage1_run))
        == str((stage1_run / "best").resolve())
        == stage1_export(str(stage1_run / "best"))
    )
    with pytest.raises(SystemExit, match="--stage1 .*nowhere: neither a stage-1 export"):
        stage1_export(str(tmp_path / "nowhere"))
    with pytest.raises(SystemExit, match=r"model.stage1='runs/x/stage1/best' is not a stage-1 export .* --stage1 DIR"):
        cli.main(
            [
                "train",
                "--config",
                "synthetic_stage2.yaml",
                "--output-dir",
                str(tmp_path / "s2"),
                "model.stage1=runs/x/stage1/best",
                "model.language_model=/nowhere/lm",
            ]
        )
    with (
        caplog.at_level(logging.INFO),
        pytest.raises(SystemExit, match=r"model.language_model='/nowhere/lm': no such folder"),
    ):
        cli.main(
            [
                "train",
                "--config",
                "synthetic_stage2.yaml",
                "--output-dir",
                str(tmp_path / "s2"),
                "--stage1",
                str(stage1_run),
                "model.language_model=/nowhere/lm",
            ]
        )
    assert f"Stage 2 from the stage-1 export {(stage1_run / 'best').resolve()}" in caplog.text
    with pytest.raises(
        SystemExit,
        match=r"model.language_model='someone/no-llm': cannot load the LLM's tokenizer .*"
        r"Without access to the Hub, .*flallm demo",
    ):
        cli.main(
            [
                "train",
                "--config",
                "synthetic_stage2.yaml",
                "--output-dir",
                str(tmp_path / "s2"),
                "--stage1",
                str(stage1_run),
                "model.language_model=someone/no-llm",
            ]
        )


def test_an_offline_tokenizer_gets_the_configs_language_code(tmp_path, capsys):
    from transformers import AutoTokenizer

    for model_type in ("bpe", "unigram"):
        run = tmp_path / model_type
        assert (
            cli.main(
                [
                    "train",
                    "--config",
                    write_config(tmp_path),
                    "--output-dir",
                    str(run),
                    "model.target_language=de_DE",
                    f"model.train_tokenizer={{vocab_size: 300, model_type: {model_type}}}",
                ]
            )
            == 0
        )
        tokenizer = AutoTokenizer.from_pretrained(run / "best")
        ids = tokenizer("regen")["input_ids"]
        assert tokenizer.convert_ids_to_tokens(ids[-2:]) == ["</s>", "de_DE"], model_type
        model = FlaLlmForSignTranslation.from_pretrained(run / "best")
        assert model.generation_config.decoder_start_token_id == tokenizer.convert_tokens_to_ids("de_DE")
    capsys.readouterr()


def test_a_run_draws_its_curves_and_keeps_progress_bars_quiet_in_a_log(tmp_path):
    """curves.png after each validation; with stderr not a terminal, a progress line every 10 s at most (one per
    logged step before: 430 KB of them in one `flallm demo > log`)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from PIL import Image

    run = tmp_path / "run"
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "train.cli",
            "train",
            "--config",
            write_config(tmp_path),
            "--output-dir",
            str(run),
            "training.epochs=10",
            "training.batch_size=2",
            "evaluation.every_epochs=5",
        ],
        cwd=root,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stderr.count("stage 1:") <= 4, result.stderr.count("stage 1:")  # 40 logged steps: 42 lines before
    with Image.open(run / "curves.png") as image:
        assert image.format == "PNG" and image.width > 300
    logged = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged] == list(range(1, 41)) and all(r["loss"] > 0 and r["lr"] >= 0 for r in logged)
