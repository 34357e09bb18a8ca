"""`flallm study TABLE`: the tables' runs, their configs on both corpora, resume, results and pictures.

A quick study cannot learn in seconds; the measured tables are in BENCHMARKS.md ("Reproduction").
"""

import json
import os
from pathlib import Path

import pytest
from PIL import Image

from train import study
from train.cli import main


def _valid_png(path: Path) -> None:
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width > 100 and image.height > 100
        image.verify()


@pytest.fixture(scope="module")
def quick_study(tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("study")
    assert (
        main(["study", "factorization", "--quick", "--seeds", "0", "1", "--jobs", "1", "--output-dir", str(output_dir)])
        == 0
    )
    return output_dir


def test_quick_study_writes_every_row_for_every_seed(quick_study):
    results = json.loads((quick_study / "results.json").read_text())
    assert [row["label"] for row in results["rows"]] == [row.label for row in study.TABLES["factorization"].rows]
    assert results["seeds"] == [0, 1] and results["quick"] and not results["failed"]
    assert len(results["runs"]) == 4 * 2
    for run in results["runs"]:
        assert run["error"] is None
        assert all(0.0 <= run["scores"][key] <= 100.0 for key in ("bleu1", "bleu4", "rougeL")), run
        assert run["config"]["seed"] == run["seed"] and run["seconds"] > 0
    for row in results["rows"]:
        assert row["num_seeds"] == 2 and set(row["mean"]) == {"bleu1", "bleu4", "rougeL"}
    # The "stage 1 only" row is the factorized run's own stage 1; stage 2 started from that seed's export.
    by_run = {(run["run"], run["seed"]): run for run in results["runs"]}
    assert by_run["factorized", 1]["config"]["model"]["stage1"] == str(Path(by_run["stage1", 1]["output_dir"]) / "best")
    assert by_run["joint", 0]["config"]["model"]["stage1"] is None

    text = (quick_study / "results.md").read_text()
    assert "| factorized (FLa-LLM) |" in text and "23.09" in text and "paper's ordering" in text
    assert "--quick: a smoke run" in text
    _valid_png(quick_study / "results.png")
    _valid_png(quick_study / "gradients.png")  # joint and factorized stage 1: the paper's gradient analysis
    assert "Gradient norm of the visual encoder" in text


def test_a_study_started_again_trains_nothing_and_a_new_table_only_its_new_rows(quick_study, monkeypatch):
    trained = []
    monkeypatch.setattr(study, "train_run", lambda config, commit: trained.append(config.output_dir))
    assert (
        main(
            ["study", "factorization", "--quick", "--seeds", "0", "1", "--jobs", "1", "--output-dir", str(quick_study)]
        )
        == 0
    )
    assert trained == []
    # adapter-input shares the stage-1 and factorized runs (same --runs-dir); the fake run writes no result.
    assert (
        main(
            [
                "study",
                "adapter-input",
                "--quick",
                "--seeds",
                "0",
                "1",
                "--jobs",
                "1",
                "--runs-dir",
                str(quick_study),
                "--output-dir",
                str(quick_study / "adapter"),
            ]
        )
        == 1
    )
    assert sorted(Path(p).relative_to(quick_study / "runs").as_posix() for p in trained) == [
        "adapter_frame/seed0",
        "adapter_frame/seed1",
        "adapter_light_t/seed0",
        "adapter_light_t/seed1",
    ]
    results = json.loads((quick_study / "adapter" / "results.json").read_text())
    assert [row["num_seeds"] for row in results["rows"]] == [0, 2, 0]
    assert "cannot be checked" in (quick_study / "adapter" / "results.md").read_text()


def test_a_finished_run_made_with_another_config_is_not_reused(quick_study):
    with pytest.raises(ValueError, match=r"stage1/seed0 is a finished run made with another config .*'training'"):
        study.run_study(
            "factorization",
            seeds=[0],
            output_dir=quick_study,
            quick=True,
            jobs=1,
            overrides=["stage1.training.batch_size=4"],
        )


def test_real_corpora_use_the_paper_configs(tmp_path):
    configs, lm = study.build_run_configs(
        study.TABLES["factorization"],
        [3],
        tmp_path,
        dataset="phoenix14t",
        overrides=["data.data_dir=/data/PHOENIX-2014-T", "stage2.model.language_model=/lm"],
    )
    assert lm is None and sorted(name for name, _ in configs) == ["factorized", "joint", "stage1", "stage2_only"]
    for (name, _seed), config in configs.items():
        assert (
            config.seed == 3 and config.data.dataset == "phoenix14t" and config.data.data_dir == "/data/PHOENIX-2014-T"
        )
        assert config.output_dir == str(tmp_path / "runs" / name / "seed3")
    assert configs["stage1", 3].training.epochs == 75  # the paper's stage 1 (phoenix14t_stage1.yaml)
    assert configs["factorized", 3].model.stage1 == str(tmp_path / "runs" / "stage1" / "seed3" / "best")
    assert configs["factorized", 3].model.language_model == "/lm"
    joint = configs["joint", 3]  # ablations/joint_end_to_end.yaml
    assert joint.model.stage1 is None and joint.model.vision_model == "microsoft/resnet-18"
    assert joint.model.config["freeze"] == "none" and joint.training.epochs == 40
    with pytest.raises(ValueError, match="lm.* overrides .* stage2.model.language_model"):
        study.build_run_configs(
            study.TABLES["llm-init"], [0], tmp_path, dataset="phoenix14t", overrides=["lm.training.epochs=1"]
        )


def test_synthetic_ablation_runs_change_only_what_the_row_says(tmp_path):
    configs, _ = study.build_run_configs(study.TABLES["freezing"], [0], tmp_path)
    base, none, backbone = (configs[name, 0] for name in ("factorized", "freeze_none", "freeze_backbone"))
    assert base.model.config.get("freeze", "visual_encoder") == "visual_encoder"
    assert none.model.config["freeze"] == "none" and backbone.model.config["freeze"] == "backbone"
    assert not none.feature_cache.enabled and not backbone.feature_cache.enabled
    assert none.training == base.training and none.model.stage1 == base.model.stage1
    configs, _ = study.build_run_configs(study.TABLES["factorization"], [0], tmp_path)
    stage1, joint = configs["stage1", 0], configs["joint", 0]
    assert joint.model.config["vision_config"] == stage1.model.config["vision_config"]
    assert (joint.training.epochs, joint.training.batch_size) == (stage1.training.epochs, stage1.training.batch_size)
    assert joint.optimizer.module_lr["visual_encoder"] == stage1.optimizer.lr


def _row(label, paper, mean, std=0.5):
    return {"label": label, "paper_bleu4": paper, "mean": {"bleu4": mean}, "std": {"bleu4": std}}


def test_the_ordering_line_says_which_pairs_hold():
    holds = study.ordering([_row("a", 20, 30), _row("b", 10, 20), _row("c", 5, 19.8)])
    assert holds["holds"] and holds["within_std"] == [("b", "c")]
    assert "**holds**" in study.ordering_sentence(holds) and "b > c" in study.ordering_sentence(holds)
    broken = study.ordering([_row("a", 20, 10), _row("b", 10, 20)])
    assert not broken["holds"] and broken["inversions"] == [("a", "b")] and broken["here"] == ["b", "a"]
    # Every pair counts, not only neighbours in the paper's order: c above a is an inversion too.
    three = study.ordering([_row("a", 20, 30), _row("b", 10, 20), _row("c", 5, 40)])
    assert three["inversions"] == [("a", "c"), ("b", "c")]
    assert "**does not hold**" in study.ordering_sentence(broken) and "not resolved" not in study.ordering_sentence(
        broken
    )
    noisy = study.ordering([_row("a", 20, 19.8), _row("b", 10, 20)])
    assert noisy["inversions"] == noisy["within_std"] == [("a", "b")]
    assert "a is not above b (by less than one std: not resolved by these seeds)" in study.ordering_sentence(noisy)


def test_a_failed_job_skips_what_needs_it_and_the_others_go_on(tmp_path):
    def fail():
        raise OSError("disk full")

    ran = []
    jobs = [
        study.Job("a", fail, ()),
        study.Job("b", ran.append, ("b",), needs=("a",)),
        study.Job("c", ran.append, ("c",)),
    ]
    failed = study.run_jobs(jobs, parallel=1)
    assert ran == ["c"] and failed == {"a": "OSError: disk full", "b": "skipped: a did not finish"}


def test_parallel_jobs_run_in_their_own_processes_with_their_own_logs(tmp_path):
    made, missing = tmp_path / "made", tmp_path / "missing"
    jobs = [
        study.Job("touch", Path.touch, (made,), done=made.is_file, log=tmp_path / "touch.log"),
        study.Job("remove", os.remove, (missing,), done=lambda: True, log=tmp_path / "remove.log"),
        study.Job("after", Path.touch, (tmp_path / "after",), needs=("remove",), log=tmp_path / "after.log"),
    ]
    failed = study.run_jobs(jobs, parallel=2)
    assert made.is_file() and not (tmp_path / "after").exists()
    assert set(failed) == {"remove", "after"} and str(tmp_path / "remove.log") in failed["remove"]
    assert "FileNotFoundError" in (tmp_path / "remove.log").read_text()


def test_unknown_table_and_repeated_seeds_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown study table 'nope'"):
        study.run_study("nope", output_dir=tmp_path)
    with pytest.raises(ValueError, match="distinct"):
        study.run_study("factorization", seeds=[0, 0], output_dir=tmp_path)
