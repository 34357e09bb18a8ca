"""`flallm push` against a loopback Hub: the real huggingface_hub client, checked on what arrives.

The push runs in a subprocess: huggingface_hub reads HF_ENDPOINT and HF_HUB_OFFLINE at import, and
this test session runs offline (conftest).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from _hub_server import HubServer
from safetensors.numpy import save_file

from train import hub, model_card

REPO_ROOT = Path(__file__).resolve().parent.parent

RESNET18 = {"model_type": "resnet", "hidden_sizes": [64, 128, 256, 512], "depths": [2, 2, 2, 2]}
LIGHT_T = {"model_type": "mbart", "encoder_layers": 3, "decoder_layers": 3, "d_model": 512}
MBART_LARGE = {
    "model_type": "mbart",
    "_name_or_path": "facebook/mbart-large-cc25",
    "encoder_layers": 12,
    "decoder_layers": 12,
    "d_model": 1024,
}
RECORD = {
    "dataset": "phoenix14t",
    "language": "de",
    "bleu1": 40.123,
    "bleu2": 30.0,
    "bleu3": 22.5,
    "bleu4": 18.456,
    "rougeL": 41.0,
    "chrf": 44.5,
    "signature": "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0",
    "rouge_signature": "rougeL|lcs-f-beta:1.2|avg:sentence|tok:13a|rouge-score:0.1.2",
}


def make_run_dir(path: Path, stage: str, text_config: dict, training_config: dict, metrics_files: dict) -> Path:
    path.mkdir(parents=True)
    config = {
        "model_type": "flallm",
        "stage": stage,
        "vision_config": RESNET18,
        "text_config": text_config,
        "frame_sample_rate": 4,
        "adapter_input": "sign",
        "freeze": "visual_encoder" if stage != "visual_initialing" else "none",
        "auto_map": {"AutoConfig": "configuration_flallm.FlaLlmConfig"},
    }
    (path / "config.json").write_text(json.dumps(config))
    save_file(
        {"adapter.weight": np.zeros((4, 3), dtype=np.float32), "adapter.bias": np.zeros(4, dtype=np.float32)},
        str(path / "model.safetensors"),
    )
    (path / "tokenizer.json").write_text('{"version": "1.0"}')
    (path / "processor_config.json").write_text('{"processor_class": "FlaLlmProcessor"}')
    (path / "configuration_flallm.py").write_text("# remote code\n")
    (path / "training_config.yaml").write_text(yaml.safe_dump(training_config))
    for name, content in metrics_files.items():
        (path / name).write_text(json.dumps(content))
    # Training leftovers that must stay local, and a stale card that the rendered one replaces.
    (path / "checkpoints" / "step_10").mkdir(parents=True)
    (path / "checkpoints" / "step_10" / "optimizer.pt").write_bytes(b"state")
    (path / "runs").mkdir()
    (path / "runs" / "events.out").write_bytes(b"log")
    (path / "README.md").write_text("old card")
    return path


@pytest.fixture
def stage1_dir(tmp_path):
    return make_run_dir(
        tmp_path / "stage1",
        "visual_initialing",
        LIGHT_T,
        {"stage": 1, "data": {"dataset": "phoenix14t"}, "model": {"backbone": "microsoft/resnet-18"}, "epochs": 75},
        {
            "metrics_test.json": {**RECORD, "split": "test"},
            "metrics_validation.json": {**RECORD, "split": "validation", "bleu4": 19.0},
        },
    )


@pytest.fixture
def stage2_dir(tmp_path):
    return make_run_dir(
        tmp_path / "stage2",
        "llm_fine_tuning",
        MBART_LARGE,
        {
            "stage": 2,
            "dataset": "phoenix14t",
            "stage1_model": "someone/flallm-phoenix-stage1",
            "language_model": "facebook/mbart-large-cc25",
        },
        {"metrics.json": {"test": {**RECORD, "bleu4": 22.0}}},
    )


def hub_env(hub_server, tmp_path) -> dict:
    env = dict(os.environ)
    env.update(
        HF_ENDPOINT=hub_server.endpoint,
        HF_TOKEN="hf_testtoken",
        HF_HUB_OFFLINE="0",
        HF_HOME=str(tmp_path / "hf"),
        HF_HUB_DISABLE_TELEMETRY="1",
        PYTHONPATH=str(REPO_ROOT),
    )
    return env


def run_python(args, env):
    result = subprocess.run(
        [sys.executable, *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result


def test_cli_push_stage1(stage1_dir, tmp_path):
    with HubServer() as server:
        result = run_python(
            [
                "-m",
                "train.cli",
                "--log-level",
                "WARNING",
                "push",
                "--model",
                str(stage1_dir),
                "--repo-id",
                "someone/flallm-phoenix-stage1",
                "--private",
                "--commit-message",
                "Stage 1 after 75 epochs",
            ],
            hub_env(server, tmp_path),
        )
    state = server.state
    assert state.repos["someone/flallm-phoenix-stage1"]["visibility"] == "private"
    assert state.authorizations == {"Bearer hf_testtoken"}
    [commit] = state.commits
    assert commit.summary == "Stage 1 after 75 epochs"
    assert not commit.create_pr and commit.revision == "main"
    assert "/someone/flallm-phoenix-stage1/commit/" in result.stdout
    assert sorted(commit.files) == sorted(
        [
            "README.md",
            "config.json",
            "configuration_flallm.py",
            "metrics_test.json",
            "metrics_validation.json",
            "model.safetensors",
            "processor_config.json",
            "tokenizer.json",
            "training_config.yaml",
            "pipeline_flallm.py",
            "video_io.py",
        ]
    )  # the pipeline's remote code, added by the push
    assert commit.files["model.safetensors"] == (stage1_dir / "model.safetensors").read_bytes()
    assert commit.files["pipeline_flallm.py"] == (REPO_ROOT / "modeling_flallm" / "pipeline_flallm.py").read_bytes()
    pushed_config = json.loads(commit.files["config.json"])
    assert pushed_config["custom_pipelines"] == {"sign-language-translation": hub.PIPELINE_ENTRY}
    assert pushed_config["auto_map"] == json.loads((stage1_dir / "config.json").read_text())["auto_map"]
    assert "custom_pipelines" not in json.loads((stage1_dir / "config.json").read_text())  # local file untouched
    assert commit.files["training_config.yaml"] == (stage1_dir / "training_config.yaml").read_bytes()
    # The card was validated by the server before the commit.
    assert state.validated == [commit.files["README.md"].decode()]

    meta = commit.card_metadata()
    assert meta["license"] == "cc-by-nc-sa-3.0"
    assert meta["language"] == ["de", "gsg"]
    assert meta["datasets"] == ["phoenix14t"]
    assert meta["base_model"] == ["microsoft/resnet-18"]
    assert meta["pipeline_tag"] == "translation"
    assert meta["library_name"] == "transformers"
    assert {"sign-language-translation", "flallm-stage-1"} <= set(meta["tags"])
    [model_index] = meta["model-index"]
    assert model_index["name"] == "flallm-phoenix-stage1"
    scores = {(r["dataset"]["split"], m["name"]): m for r in model_index["results"] for m in r["metrics"]}
    assert scores[("test", "BLEU-4")]["value"] == 18.46
    assert scores[("test", "BLEU-4")]["config"] == RECORD["signature"]
    assert scores[("test", "BLEU-1")]["args"] == {"max_ngram_order": 1}
    assert scores[("validation", "BLEU-4")]["value"] == 19.0
    assert scores[("test", "ROUGE-L")]["config"] == RECORD["rouge_signature"]
    assert scores[("test", "chrF")]["value"] == 44.5

    card = commit.files["README.md"].decode()
    assert "FLa-LLM stage 1 (visual initialing)" in card
    assert "Light-T (mbart, 3+3 layers, hidden 512)" in card
    assert "| RWTH-PHOENIX-Weather-2014T | test | 40.12 | 30.00 | 22.50 | 18.46 | 41.00 | 44.50 |" in card
    assert "epochs: 75" in card  # training config embedded for reproduction
    assert "from_stage1" in card


def test_library_push_stage2_as_pull_request(stage2_dir, tmp_path):
    script = (
        "import sys; from train.hub import push_stage_to_hub\n"
        "info = push_stage_to_hub(sys.argv[1], 'someone/flallm-phoenix', create_pr=True)\n"
        "print(info.pr_url)\n"
    )
    with HubServer() as server:
        result = run_python(["-c", script, str(stage2_dir)], hub_env(server, tmp_path))
    [commit] = server.state.commits
    assert commit.create_pr
    assert result.stdout.strip().endswith("/someone/flallm-phoenix/discussions/1")
    assert commit.summary == "Upload FLa-LLM stage 2 (llm_fine_tuning)"
    assert "phoenix14t test: BLEU-4 22.00" in commit.description
    assert "visibility" not in server.state.repos["someone/flallm-phoenix"]  # public unless asked

    meta = commit.card_metadata()
    assert meta["base_model"] == ["someone/flallm-phoenix-stage1", "facebook/mbart-large-cc25"]
    assert "flallm-stage-2" in meta["tags"]
    [model_index] = meta["model-index"]
    assert {m["name"]: m["value"] for m in model_index["results"][0]["metrics"]}["BLEU-4"] == 22.0
    card = commit.files["README.md"].decode()
    assert "FLa-LLM stage 2 (LLM fine-tuning)" in card
    assert "**facebook/mbart-large-cc25**" in card
    assert "| *FLa-LLM paper* | test | 46.29 | 35.33 | 28.03 | 23.09 | 45.27 | |" in card
    assert "Stage 1 checkpoint: `someone/flallm-phoenix-stage1`" in card


def test_stage_is_resolved_from_argument_training_config_or_config(stage1_dir):
    info = model_card.read_run_dir(stage1_dir)
    assert model_card.resolve_stage(info) == 1
    assert model_card.resolve_stage(info, "llm-fine-tuning") == 2
    info.training_config = {}
    assert model_card.resolve_stage(info) == 1  # config.json's stage field
    info.config.pop("stage")
    with pytest.raises(ValueError, match="cannot tell which stage"):
        model_card.resolve_stage(info)
    assert [model_card.normalize_stage(v) for v in (1, "2", "stage_1", "Stage-2", "visual_initialing")] == [
        1,
        2,
        1,
        2,
        1,
    ]
    with pytest.raises(ValueError, match="stage=3"):
        model_card.normalize_stage(3)


def test_dry_run_card_without_metrics_or_training_config(tmp_path):
    run_dir = tmp_path / "bare"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(
        json.dumps(
            {"model_type": "flallm", "stage": "llm_fine_tuning", "text_config": MBART_LARGE, "vision_config": RESNET18}
        )
    )
    card = model_card.render_model_card(run_dir, "someone/bare", dataset="how2sign")
    assert card.data.license == "cc-by-nc-4.0"
    assert card.data.language == ["en", "ase"]
    assert card.data.eval_results is None
    assert "No evaluation results were recorded" in card.text
    assert "9.66 BLEU-4" in card.text  # the paper's How2Sign number, for orientation
    assert "No training configuration was found" in card.text


def test_bad_run_directories_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        model_card.read_run_dir(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ValueError, match="model_type='bert'"):
        model_card.read_run_dir(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "flallm", "stage": "visual_initialing"}))
    (tmp_path / "metrics.json").write_text(json.dumps({"loss": 1.0}))
    with pytest.raises(ValueError, match="metrics.json"):
        model_card.read_run_dir(tmp_path)


def test_latest_evaluation_of_a_split_wins(stage2_dir):
    # metrics.json (written by training) has test BLEU-4 22.0; a later `flallm evaluate` wrote metrics_test.json.
    (stage2_dir / "metrics_test.json").write_text(json.dumps({**RECORD, "split": "test", "bleu4": 23.5}))
    info = model_card.read_run_dir(stage2_dir)
    assert [(r["split"], r["bleu4"]) for r in info.evaluations] == [("test", 23.5)]


def test_pushed_training_export_runs_as_remote_code(tmp_path):
    """A training export (model + processor save_pretrained) pushed, downloaded, and run without flallm."""
    from _slt_fixtures import translate_without_flallm
    from modeling_fixtures import random_video, tiny_model, tiny_processor
    from PIL import Image

    from train.translate import load_translator

    export = tmp_path / "export"
    tiny_model(seed=1).save_pretrained(export)
    tiny_processor(frame_sample_rate=2).save_pretrained(export)
    frames = tmp_path / "frames"
    frames.mkdir()
    for i, frame in enumerate(random_video(6, seed=3)):
        Image.fromarray(frame).save(frames / f"{i:03d}.png")
    generation = {"num_beams": 2, "min_new_tokens": 2, "max_new_tokens": 4}
    expected = load_translator(str(export))(str(frames), **generation)  # with the package, in this process

    with HubServer() as server:
        run_python(
            [
                "-m",
                "train.cli",
                "--log-level",
                "WARNING",
                "push",
                "--model",
                str(export),
                "--repo-id",
                "someone/tiny",
                "--stage",
                "1",
                "--dataset",
                "synthetic",
            ],
            hub_env(server, tmp_path),
        )
    [commit] = server.state.commits
    download = tmp_path / "download"
    for name, content in commit.files.items():
        (download / name).parent.mkdir(parents=True, exist_ok=True)
        (download / name).write_bytes(content)
    report = translate_without_flallm(download, frames, generation, tmp_path)
    assert report["result"] == expected and expected["translation_text"]
    assert report["class"].startswith("transformers_modules.")
    assert report["leaked"] == []


STRAY_FILES = (".env", "id_rsa", "optimizer.bin", "random_states_0.pkl", "pytorch_model.bin", "notes.txt", "evil.py")


def test_only_model_files_are_pushed_and_the_dry_run_names_what_is_skipped(stage1_dir, tmp_path):
    for name in STRAY_FILES:
        (stage1_dir / name).write_text("secret")
    (stage1_dir / "logs").mkdir()
    (stage1_dir / "logs" / "config.json").write_text("{}")  # allowed names count only at the top level
    upload, skipped = hub.select_files(stage1_dir)
    assert not set(STRAY_FILES) & set(upload) and "logs/config.json" not in upload
    assert set(STRAY_FILES) | {"logs/config.json", "checkpoints/step_10/optimizer.pt"} <= set(skipped)
    with HubServer() as server:
        dry = run_python(
            [
                "-m",
                "train.cli",
                "--log-level",
                "WARNING",
                "push",
                "--model",
                str(stage1_dir),
                "--repo-id",
                "someone/stray",
                "--dry-run",
            ],
            hub_env(server, tmp_path),
        )
        run_python(
            [
                "-m",
                "train.cli",
                "--log-level",
                "WARNING",
                "push",
                "--model",
                str(stage1_dir),
                "--repo-id",
                "someone/stray",
            ],
            hub_env(server, tmp_path),
        )
    files, skipped_text = dry.stdout.split("\nSkipped (not model files; never uploaded):\n")
    assert all(f"  {name}\n" in skipped_text + "\n" for name in STRAY_FILES)
    assert not any(f"  {name}\n" in files for name in STRAY_FILES)
    [commit] = server.state.commits
    assert not set(STRAY_FILES) & set(commit.files) and "model.safetensors" in commit.files
