"""`flallm demo --quick`: every step runs and leaves the promised interface (stage1/, stage2/, metrics.json).

The quick run cannot learn in seconds; the full demo's numbers and wall time are recorded in BENCHMARKS.md.
"""

import json
import shutil

import pytest
from transformers import AutoModel, AutoTokenizer, pipeline

import modeling_flallm  # noqa: F401  (registers the model and the task)
from data_builders import decode_video, load_sign_dataset
from train import demo

KEYS = {"bleu1", "bleu2", "bleu3", "bleu4", "rougeL"}


def corpus_texts(output_dir, metrics):
    corpus = load_sign_dataset(
        "synthetic", cache_dir=str(output_dir / "cache" / "datasets"), **metrics["corpus"]["options"]
    )
    return corpus["test"]["text"]


def test_quick_demo_writes_metrics_for_both_stages_and_the_baseline(quick_demo, capsys):
    metrics = json.loads((quick_demo / "metrics.json").read_text())
    for stage in ("stage1", "stage2", "baseline", "gloss_to_text"):
        assert set(metrics[stage]) >= KEYS, stage
        assert all(0.0 <= metrics[stage][key] <= 100.0 for key in KEYS)
    assert metrics["stage1"]["num_examples"] == metrics["stage2"]["num_examples"] == 4  # the quick test split
    examples = [json.loads(line) for line in (quick_demo / "examples" / "examples.jsonl").read_text().splitlines()]
    assert [e["reference"] for e in examples] == corpus_texts(quick_demo, metrics)[:3]
    clip = decode_video(str(quick_demo / "examples" / examples[0]["file"]))
    assert clip.shape[1:] == (64, 64, 3) and len(clip) == metrics["examples"][0].get("num_frames", len(clip))
    for stage in ("stage1", "stage2"):  # each stage's curves, named in the report
        assert (quick_demo / "runs" / stage / "curves.png").stat().st_size > 1000
        assert str(quick_demo / "runs" / stage / "curves.png") in demo.format_report(metrics, quick_demo)

    corpus = load_sign_dataset(
        "synthetic", cache_dir=str(quick_demo / "cache" / "datasets"), **metrics["corpus"]["options"]
    )
    assert metrics["baseline"]["sentence"] in corpus["train"]["text"]
    assert [e["reference"] for e in metrics["examples"]] == corpus["test"]["text"][:3]
    assert all(isinstance(e["stage1"], str) and isinstance(e["stage2"], str) for e in metrics["examples"])
    assert set(metrics["seconds"]) >= {"corpus", "lm_pretraining", "stage1", "stage2", "ceiling", "total"}
    # The gloss-to-text ceiling: the LM fine-tuned on the gold signs with stage 2's budget, alongside stage 2.
    ceiling = json.loads((quick_demo / "ceiling.json").read_text())
    assert ceiling["steps"] == metrics["gloss_to_text"]["steps"] == 2  # stage 2's: 16 clips / batch 8, 1 epoch
    assert ceiling["settings"]["epochs"] == 1 and ceiling["settings"]["batch_size"] == 8
    assert len(ceiling["predictions"]) == 4 and all(isinstance(e["gloss_to_text"], str) for e in metrics["examples"])
    assert "gloss-to-text" in demo.format_report(metrics, quick_demo)
    summary = metrics["lm_pretraining"]
    assert summary["steps"] >= 1 and summary["validation_loss_after"] < summary["validation_loss_before"]


def test_both_stage_directories_load_and_translate(quick_demo):
    metrics = json.loads((quick_demo / "metrics.json").read_text())
    corpus = load_sign_dataset(
        "synthetic", cache_dir=str(quick_demo / "cache" / "datasets"), **metrics["corpus"]["options"]
    )
    clip = corpus["test"][0]
    video = decode_video(clip["video"])
    for stage in ("stage1", "stage2"):
        model = AutoModel.from_pretrained(quick_demo / stage)
        assert type(model).__name__ == "FlaLlmForSignTranslation"
        translator = pipeline("sign-language-translation", model=str(quick_demo / stage))
        # The exported model + processor give what the trainer's test evaluation gave for this clip.
        expected = demo.test_predictions(quick_demo / "runs" / stage)[clip["id"]]["hypothesis"]
        assert translator(video)["translation_text"] == expected
    stage2 = AutoModel.from_pretrained(quick_demo / "stage2")
    assert stage2.config.freeze == "visual_encoder" and stage2.config.stage == "llm_fine_tuning"
    # Stage 2's LLM is the demo's pre-trained LM (mBART-shaped, with the <mask> token it was pre-trained with) ...
    lm_tokenizer = AutoTokenizer.from_pretrained(quick_demo / "lm")
    assert lm_tokenizer.mask_token == "<mask>" and stage2.config.text_config.model_type == "mbart"
    # ... and Light-T uses that LM's tokenizer trimmed to the train texts, as in the paper.
    stage1_tokenizer = AutoTokenizer.from_pretrained(quick_demo / "stage1")
    assert set(stage1_tokenizer.get_vocab()) <= set(lm_tokenizer.get_vocab())
    text = corpus["train"][0]["text"]
    assert stage1_tokenizer.decode(stage1_tokenizer(text)["input_ids"], skip_special_tokens=True) == text


def test_resume_reuses_the_lm_and_the_finished_stages(quick_demo, tmp_path):
    copy = tmp_path / "demo"
    shutil.copytree(quick_demo, copy)
    lm_stamp = (copy / "lm" / "model.safetensors").stat().st_mtime_ns
    before = json.loads((copy / "metrics.json").read_text())
    metrics = demo.run_demo(copy, quick=True, resume=True, num_examples=1)
    assert (copy / "lm" / "model.safetensors").stat().st_mtime_ns == lm_stamp
    for stage in ("stage1", "stage2"):
        assert metrics[stage]["step"] == before[stage]["step"]  # resumed at the end: no further training
        assert metrics[stage]["bleu4"] == before[stage]["bleu4"]


def test_constant_baseline_predicts_the_most_frequent_training_sentence():
    train = ["the man reads", "the man reads", "the dog eats the cake"]
    result = demo.constant_baseline(train, ["the man reads the book", "the dog eats"])
    assert result["sentence"] == "the man reads" and result["train_count"] == 2
    assert result["bleu1"] > 0 and set(result) >= KEYS
    # All distinct: the tie is broken on the training sentences alone (the most typical one), never on the test set.
    tied = demo.constant_baseline(["the man reads the book", "the woman reads the book", "a cat"], ["a cat"])
    assert tied["sentence"] != "a cat" and tied["train_count"] == 1


def test_overrides_are_checked(tmp_path):
    with pytest.raises(ValueError, match="stage1.KEY=VALUE"):
        demo.build_configs(tmp_path, overrides=["stage3.training.epochs=1"])
    with pytest.raises(ValueError, match="unknown section"):
        demo.build_configs(tmp_path, overrides=["lm.optimizer.lr=1"])
    with pytest.raises(ValueError, match="unknown key"):
        demo.build_configs(tmp_path, overrides=["stage1.training.epoch=3"])
    # LM settings are checked before anything trains (the LM itself trains in a second process, alongside stage 1).
    with pytest.raises(ValueError, match=r"lm.training: unknown key\(s\) \['epoch'\]"):
        demo.build_configs(tmp_path, overrides=["lm.training.epoch=3"])
    with pytest.raises(ValueError, match="lm.tokenizer: unknown key"):
        demo.build_configs(tmp_path, overrides=["lm.tokenizer.vocabulary=300"])
    lm, stage1, stage2, _ = demo.build_configs(
        tmp_path, overrides=["data.num_train=50", "stage2.training.epochs=2", "lm.training.epochs=5"]
    )
    assert stage1.data.options["num_train"] == stage2.data.options["num_train"] == 50
    assert stage2.training.epochs == 2 and lm["training"]["epochs"] == 5
    assert stage1.model.tokenizer == str(tmp_path / "tokenizer") and stage2.model.language_model == str(tmp_path / "lm")
    assert stage2.model.stage1 == str(tmp_path / "stage1") and stage1.export_dir == str(tmp_path / "stage1")


def test_a_failing_lm_process_stops_the_demo_with_a_clear_error_and_keeps_stage1(tmp_path):
    # The LM pre-trains in a second process alongside stage 1; its failure (here: a diverging lr) must surface.
    with pytest.raises(RuntimeError, match="LM pre-training failed.*--resume"):
        demo.run_demo(tmp_path, quick=True, overrides=["lm.training.lr=1e12"], num_examples=1)
    assert (tmp_path / "stage1" / "config.json").is_file() and not (tmp_path / "lm").exists()
    assert not (tmp_path / "metrics.json").exists()
