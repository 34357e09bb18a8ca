"""Stage 1 then stage 2 on the tiny synthetic corpus, end to end: exports, run directory, language codes,
frozen encoder, feature cache, parameter groups and the training switches."""

import json

import numpy as np
import pytest
import torch
import yaml
from _train_fixtures import (
    STAGE1,
    TINY_LIGHT_T,
    TINY_VISION,
    single_thread,  # noqa: F401  (autouse)
    stage1_config,
    tiny_corpus,
)
from modeling_fixtures import tiny_model
from transformers import MBartConfig, MBartForConditionalGeneration, ResNetConfig, ResNetModel, pipeline

from data_builders import synthetic_text
from modeling_flallm import FlaLlmForSignTranslation, FlaLlmProcessor
from modeling_flallm.tokenization_flallm import train_tokenizer
from train import hub, model_card, trainer
from train.config import TrainConfig, load_config
from train.optimizer import build_optimizer

STAGE1_MODEL = STAGE1["model"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return tiny_corpus(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def stage1(tmp_path_factory, corpus):
    run_dir = tmp_path_factory.mktemp("stage1")
    # Adam and a few clips seen 6 times: enough for the loss to fall visibly. The backbone starts from a
    # local "pre-trained" ResNet folder, as it would from microsoft/resnet-18.
    backbone_dir = tmp_path_factory.mktemp("resnet")
    torch.manual_seed(1)
    ResNetModel(ResNetConfig(**TINY_VISION)).save_pretrained(backbone_dir)
    config = stage1_config(
        run_dir,
        optimizer={"name": "adam", "lr": 1e-2},
        training={"epochs": 6},
        data={"test_split": "test", "max_train_samples": 8},
        evaluation={"every_epochs": None, "every_steps": 6},
    )
    config["model"]["vision_model"] = str(backbone_dir)
    return trainer.train(config, datasets=corpus)


def tiny_language_model(directory, corpus):
    """A small mBART-shaped seq2seq LM + tokenizer with mBART language codes, saved like a Hub checkpoint."""
    texts = list(corpus["train"]["text"]) + synthetic_text(400, seed=1, split=None)  # more than the train set uses
    tokenizer = train_tokenizer(texts, vocab_size=300, language_codes=["de_DE", "en_XX"], target_language="en_XX")
    config = MBartConfig(
        **{
            **TINY_LIGHT_T,
            "vocab_size": len(tokenizer),
            "pad_token_id": 1,
            "bos_token_id": 0,
            "eos_token_id": 2,
            "decoder_start_token_id": 2,
            "forced_eos_token_id": 2,
            "dropout": 0.0,
        }
    )
    torch.manual_seed(0)
    MBartForConditionalGeneration(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return len(tokenizer)


def test_stage1_exports_a_loadable_model_and_a_run_directory(stage1, corpus):
    run_dir, export_dir = stage1.output_dir, stage1.export_dir
    assert export_dir == run_dir / "best" and stage1.global_step == 12
    for name in ("training_config.yaml", "train.log", "metrics.json", "init/config.json"):
        assert (run_dir / name).is_file(), name
    assert len(list((run_dir / "predictions").glob("validation-step*.jsonl"))) == 2
    assert sorted((run_dir / "predictions").glob("test-*.jsonl"))
    summary = json.loads((run_dir / "metrics.json").read_text())
    assert [record["step"] for record in summary["history"]] == [6, 12]
    assert all("train_loss" in record for record in summary["history"])
    assert summary["best_step"] == stage1.best_step == stage1.metrics["validation"]["step"]

    metrics = json.loads((export_dir / "metrics.json").read_text())
    assert set(metrics) == {"validation", "test"} and metrics["test"]["num_examples"] == 4
    assert {"bleu4", "rougeL", "signature"} <= set(metrics["test"])
    assert load_config(export_dir / "training_config.yaml").stage == 1
    model = FlaLlmForSignTranslation.from_pretrained(export_dir)
    processor = FlaLlmProcessor.from_pretrained(export_dir)
    assert model.config.stage == "visual_initialing" and model.generation_config.num_beams == 1
    assert model.config.vision_config._name_or_path.endswith("resnet0")  # from_vision_pretrained's source
    translator = pipeline("sign-language-translation", model=model, processor=processor)
    video = np.random.default_rng(0).integers(0, 256, (12, 16, 16, 3), dtype=np.uint8)
    assert isinstance(translator(video)["translation_text"], str)
    card = model_card.render_model_card(export_dir, "someone/flallm-synthetic-stage1")
    assert "synthetic" in str(card)


def test_stage2_from_stage1_with_language_codes_and_feature_cache(tmp_path, stage1, corpus, monkeypatch):
    lm_dir = tmp_path / "lm"
    original_vocab = tiny_language_model(lm_dir, corpus)
    pushed = {}
    monkeypatch.setattr(
        hub,
        "push_stage_to_hub",
        lambda path, repo, **kw: (
            pushed.update(path=path, repo=repo) or type("Info", (), {"commit_url": "http://commit"})()
        ),
    )
    config = {
        "stage": 2,
        "output_dir": str(tmp_path / "stage2"),
        "seed": 0,
        "data": {"dataset": "synthetic", "num_workers": 0, "test_split": None, "max_target_length": 24},
        "model": {
            "stage1": str(stage1.export_dir),
            "language_model": str(lm_dir),
            "target_language": "en_XX",
            "config": {"adapter_hidden_size": 16},
        },
        "training": {"epochs": 1, "batch_size": 4, "log_every_steps": 1},
        "evaluation": {"num_beams": 2, "max_new_tokens": 8},
        "feature_cache": {"dir": str(tmp_path / "cache")},
        "logging": {"report_to": "none"},
        "hub": {"push_to_hub": "someone/flallm-stage2"},
    }
    result = trainer.train(config, datasets=corpus)
    assert result.global_step == 4
    assert pushed == {"path": str(result.export_dir), "repo": "someone/flallm-stage2"}
    assert [path.name for path in (tmp_path / "cache").rglob("*-train/*.arrow")] == ["part-00000-of-00001.arrow"]

    model = FlaLlmForSignTranslation.from_pretrained(result.export_dir)
    processor = FlaLlmProcessor.from_pretrained(result.export_dir)
    assert model.config.stage == "llm_fine_tuning" and model.config.freeze == "visual_encoder"
    # Trimmed to the corpus, and the decoder starts with the target language code (mBART-cc25 style).
    assert len(processor.tokenizer) < original_vocab
    assert model.config.text_config.vocab_size == len(processor.tokenizer)
    code = processor.tokenizer.convert_tokens_to_ids("en_XX")
    assert model.generation_config.decoder_start_token_id == code
    labels = processor.tokenize_targets(["the boy reads"])[0]
    assert labels[labels >= 0][-1].item() == code
    # The frozen visual encoder is exactly stage 1's (weights and BatchNorm statistics).
    first = FlaLlmForSignTranslation.from_pretrained(stage1.export_dir).visual_encoder.state_dict()
    for key, value in model.visual_encoder.state_dict().items():
        assert torch.equal(value, first[key]), key
    saved = yaml.safe_load((result.export_dir / "training_config.yaml").read_text())
    assert saved["feature_cache"]["enabled"] is True and saved["optimizer"]["module_lr"] == {"adapter": 1e-3}
    assert model_card.read_run_dir(result.export_dir).training_config["model"]["stage1"] == str(stage1.export_dir)


def test_stage2_without_cache_and_training_switches(tmp_path, stage1, corpus):
    lm_dir = tmp_path / "lm"
    vocab_size = tiny_language_model(lm_dir, corpus)
    config = {
        "stage": 2,
        "output_dir": str(tmp_path / "run"),
        "seed": 0,
        "data": {"dataset": "synthetic", "num_workers": 0, "validation_split": None, "test_split": None},
        "model": {
            "stage1": str(stage1.export_dir),
            "language_model": str(lm_dir),
            "trim_vocabulary": False,
            "gradient_checkpointing": True,
        },
        "training": {
            "epochs": 3,
            "max_steps": 3,
            "batch_size": 4,
            "gradient_accumulation_steps": 2,
            "max_grad_norm": 1.0,
            "mixed_precision": "bf16",
        },  # bf16 autocast works on CPUs too
        "scheduler": {"name": "linear", "warmup_steps": 1},
        "feature_cache": {"enabled": False},
        "logging": {"report_to": "none"},
    }
    result = trainer.train(config, datasets=corpus)
    assert result.global_step == 3 and result.best_step is None and result.metrics == {}
    model = FlaLlmForSignTranslation.from_pretrained(result.export_dir)  # the last model is exported
    assert model.config.text_config.vocab_size == vocab_size
    # No model.target_language, but the tokenizer appends en_XX to every text: generation starts with it.
    assert model.generation_config.decoder_start_token_id == FlaLlmProcessor.from_pretrained(
        result.export_dir
    ).tokenizer.convert_tokens_to_ids("en_XX")


def test_optimizer_groups_follow_module_prefixes():
    model = tiny_model(freeze="visual_encoder")
    config = TrainConfig.from_dict({"stage": 2}).resolved()
    optimizer = build_optimizer(model, config)
    assert isinstance(optimizer, torch.optim.Adam)
    groups = {group["name"]: group for group in optimizer.param_groups}
    assert {name: group["lr"] for name, group in groups.items()} == {"adapter": 1e-3, "default": 1e-5}
    assert {id(p) for p in groups["adapter"]["params"]} == {id(p) for p in model.adapter.parameters()}
    trained = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert not trained & {id(p) for p in model.visual_encoder.parameters()}  # frozen: not optimized
    assert trained >= {id(p) for p in model.language_model.parameters()}
    config.optimizer.module_lr = {"adaptor": 1e-3}
    with pytest.raises(ValueError, match="adaptor"):
        build_optimizer(model, config)


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw"])
def test_fused_optimizer_step_matches_the_per_tensor_loop(name):
    """The fused step (the default on CPU/GPU, ~4x faster for small models) updates like torch's reference loop."""
    updated = {}
    for fused in (None, False):
        model = tiny_model()
        config = TrainConfig.from_dict({"stage": 1, "optimizer": {"name": name, "lr": 1e-2, "fused": fused}}).resolved()
        optimizer = build_optimizer(model, config)
        assert optimizer.defaults["fused"] is (fused is None)
        torch.manual_seed(1)
        for _ in range(3):
            for parameter in model.parameters():
                parameter.grad = torch.randn_like(parameter)
            optimizer.step()
        updated[fused] = [p.detach().clone() for p in model.parameters()]
    for fused_value, loop_value in zip(updated[None], updated[False]):
        torch.testing.assert_close(fused_value, loop_value, rtol=1e-5, atol=1e-6)


def test_stage1_learns_the_tiny_corpus(stage1):
    losses = [record["train_loss"] for record in stage1.history]
    # Same 8 clips in both windows (epochs 1-3, 4-6): without learning the means would agree within ~1%.
    assert len(losses) == 2 and losses[1] < 0.95 * losses[0], losses


def test_stage1_with_a_language_models_tokenizer_trimmed_to_the_corpus(tmp_path, corpus):
    """The paper's Light-T vocabulary: the LLM's tokenizer (here with mBART language codes) trimmed."""
    lm_dir = tmp_path / "lm"
    original_vocab = tiny_language_model(lm_dir, corpus)
    config = stage1_config(
        tmp_path / "run", training={"max_steps": 1}, data={"validation_split": None, "test_split": None}
    )
    config["model"].pop("train_tokenizer")
    config["model"].update(tokenizer=str(lm_dir), target_language="en_XX")
    result = trainer.train(config, datasets=corpus)
    processor = FlaLlmProcessor.from_pretrained(result.export_dir)
    model = FlaLlmForSignTranslation.from_pretrained(result.export_dir)
    assert len(processor.tokenizer) < original_vocab
    assert model.config.text_config.vocab_size == len(processor.tokenizer) and model.config.text_config.d_model == 16
    assert model.generation_config.decoder_start_token_id == processor.tokenizer.convert_tokens_to_ids("en_XX")


def test_stage2_on_light_t_states_trains_from_the_cache(tmp_path, stage1, corpus):
    """The paper's third LLM-adapter input: the frozen stage-1 Light-T encoder is part of the visual encoder."""
    lm_dir = tmp_path / "lm"
    tiny_language_model(lm_dir, corpus)
    config = {
        "stage": 2,
        "output_dir": str(tmp_path / "run"),
        "seed": 0,
        "data": {"dataset": "synthetic", "num_workers": 0, "validation_split": None, "test_split": None},
        "model": {
            "stage1": str(stage1.export_dir),
            "language_model": str(lm_dir),
            "config": {"adapter_input": "light_t"},
        },
        "training": {"max_steps": 2, "batch_size": 4},
        "feature_cache": {"dir": str(tmp_path / "cache")},
        "logging": {"report_to": "none"},
    }
    result = trainer.train(config, datasets=corpus)
    assert list((tmp_path / "cache").rglob("done.json"))
    model = FlaLlmForSignTranslation.from_pretrained(result.export_dir)
    first = FlaLlmForSignTranslation.from_pretrained(stage1.export_dir)
    assert model.config.adapter_input == "light_t"
    light_t = first.language_model.get_encoder().state_dict()
    for key, value in model.visual_encoder.light_t_encoder.state_dict().items():
        assert torch.equal(value, light_t[key]), key


def test_tensorboard_tracker_records_training_and_validation_curves(tmp_path, corpus):
    """`logging.report_to: tensorboard` (or `auto` with tensorboard installed) writes the run's curves."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = stage1_config(
        tmp_path / "run",
        training={"epochs": 2, "batch_size": 8, "log_every_steps": 1},
        logging={"report_to": "tensorboard", "project_name": "tiny", "grad_norms_every_steps": 2},
    )
    result = trainer.train(config, datasets=corpus)
    event_files = sorted((tmp_path / "run" / "runs").rglob("events.out.tfevents.*"))
    assert event_files, "no TensorBoard event file under the run directory"
    scalars = {}
    for path in event_files:
        accumulator = EventAccumulator(str(path.parent))
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            scalars[tag] = [event.step for event in accumulator.Scalars(tag)]
    assert scalars["train/loss"] == list(range(1, result.global_step + 1))
    assert {
        "train/frames_per_second",
        "train/lr_default",
        "validation/bleu4",
        "validation/encoder_output_spread",
    } <= set(scalars)
    assert scalars["validation/bleu4"][-1] == result.global_step
    # Per-module gradient norms (the paper's analysis), also in grad_norms.jsonl and train.log.
    modules = ("backbone", "temporal", "adapter", "lm_encoder", "lm_decoder")
    assert all(scalars[f"grad_norm/{module}"] == list(range(2, result.global_step + 1, 2)) for module in modules)
    records = [json.loads(line) for line in (tmp_path / "run" / "grad_norms.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(2, result.global_step + 1, 2))
    assert all(r[module] > 0 for r in records for module in modules)
    assert "gradient norms at step 2: backbone" in (tmp_path / "run" / "train.log").read_text()


def test_stage1_with_the_bag_of_words_loss_exports_its_head_and_stage2_drops_it(tmp_path, corpus):
    config = stage1_config(
        tmp_path / "stage1",
        model={
            **STAGE1_MODEL,
            "config": {**STAGE1_MODEL["config"], "bag_of_words_weight": 1.0, "decoder_word_dropout": 0.2},
        },
    )
    result = trainer.train(config, datasets=corpus)
    model = FlaLlmForSignTranslation.from_pretrained(result.export_dir)
    assert model.config.bag_of_words_weight == 1.0 and model.config.decoder_word_dropout == 0.2
    assert model.bag_of_words_head is not None
    language_model = MBartForConditionalGeneration(MBartConfig(**{**TINY_LIGHT_T, "vocab_size": 40, "pad_token_id": 1}))
    stage2 = FlaLlmForSignTranslation.from_stage1(model, language_model=language_model)
    assert stage2.bag_of_words_head is None and stage2.config.decoder_word_dropout == 0.0


def test_a_slow_loader_is_named_in_a_warning_and_its_share_is_logged(tmp_path, corpus, monkeypatch, caplog):
    """Issue 15: when the steps mostly wait for batches, `flallm train` says so once, with what to change, and every
    train_log.jsonl line records the share of the time spent waiting."""
    import logging
    import time

    from train.sampling import SeededCollator

    real_collate = SeededCollator.__call__
    monkeypatch.setattr(SeededCollator, "__call__", lambda self, rows: time.sleep(0.1) or real_collate(self, rows))
    config = stage1_config(
        tmp_path / "run",
        training={"epochs": 1, "batch_size": 1},
        data={"max_train_samples": 16, "validation_split": None},
    )
    with caplog.at_level(logging.WARNING, logger="train"):
        trainer.train(config, datasets=corpus)
    warnings = [r.getMessage() for r in caplog.records if "the input pipeline is the bottleneck" in r.getMessage()]
    assert len(warnings) == 1 and "data.num_workers=0" in warnings[0] and "bench/bench_loader.py" in warnings[0]
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    # Accelerate's loader fetches one batch ahead: the last step's batch was waited for during the one before.
    assert len(log) == 16 and all(0.5 < record["data_wait"] < 1 for record in log[:-1])

    monkeypatch.setattr(SeededCollator, "__call__", real_collate)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="train"):
        trainer.train(
            stage1_config(
                tmp_path / "quick", training={"epochs": 1}, data={"max_train_samples": 16, "validation_split": None}
            ),
            datasets=corpus,
        )
    assert "bottleneck" not in caplog.text
