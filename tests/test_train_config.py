"""Training configs: every shipped YAML loads and validates; inheritance, overrides and errors behave."""

from pathlib import Path

import pytest
import yaml

from train import cli
from train.config import TrainConfig, apply_override, load_config, read_yaml

CONFIG_DIR = Path(__file__).resolve().parent.parent / "train" / "configs"
SHIPPED = sorted(CONFIG_DIR.rglob("*.yaml"))


def test_configs_are_shipped_for_each_corpus_stage_and_ablation():
    names = {path.relative_to(CONFIG_DIR).as_posix() for path in SHIPPED}
    for corpus in ("phoenix14t", "csl_daily", "how2sign"):
        assert {f"{corpus}_stage1.yaml", f"{corpus}_stage2.yaml"} <= names
    for ablation in (
        "joint_end_to_end",
        "stage2_only_imagenet",
        "downsample_100_stage1",
        "downsample_50_stage1",
        "downsample_12_5_stage1",
        "light_t_tiny_stage1",
        "light_t_small_stage1",
        "light_t_large_stage1",
        "adapter_input_frame_stage2",
        "adapter_input_light_t_stage2",
        "freeze_none_stage2",
        "freeze_backbone_stage2",
        "llm_mbart_random_stage2",
        "llm_mt5_base_stage2",
        "bag_of_words_stage1",
        "bag_of_words_stage2",
    ):
        assert f"ablations/{ablation}.yaml" in names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.relative_to(CONFIG_DIR).as_posix())
def test_shipped_config_loads_and_validates(path):
    config = load_config(path).resolved()
    assert config.stage in (1, 2)
    assert config.optimizer.lr > 0 and config.training.epochs >= 1 and config.training.batch_size >= 1
    if path.name.startswith("base_"):
        return
    assert config.output_dir.startswith("runs/")
    if config.stage == 1:
        assert config.model.tokenizer or config.model.train_tokenizer
    else:
        # synthetic_stage2.yaml: no LLM can be downloaded offline, the command line names one.
        assert config.model.language_model or path.name == "synthetic_stage2.yaml"
        assert config.model.stage1 or config.model.vision_model, "stage 2 needs a visual encoder source"
    # Round trip: the resolved config written to a run directory loads back to the same values.
    again = TrainConfig.from_dict(yaml.safe_load(config.to_yaml()))
    assert again.to_dict() == config.to_dict()


def test_paper_defaults_per_stage():
    stage1 = load_config(CONFIG_DIR / "phoenix14t_stage1.yaml").resolved()
    assert (stage1.optimizer.name, stage1.optimizer.lr, stage1.optimizer.momentum) == ("sgd", 1e-2, 0.9)
    assert (stage1.training.epochs, stage1.training.batch_size, stage1.scheduler.name) == (75, 8, "cosine")
    assert stage1.model.config["label_smoothing"] == 0.2 and stage1.evaluation.num_beams == 5
    stage2 = load_config(CONFIG_DIR / "phoenix14t_stage2.yaml").resolved()
    assert (stage2.optimizer.name, stage2.optimizer.lr, stage2.optimizer.module_lr) == ("adam", 1e-5, {"adapter": 1e-3})
    assert stage2.training.batch_size == 16 and stage2.feature_cache.enabled
    assert stage2.model.stage1 == "runs/phoenix14t/stage1/best" and stage2.model.target_language == "de_DE"
    # Defaults filled in from the stage when a config leaves them empty.
    bare = TrainConfig.from_dict({"stage": 2, "model": {"language_model": "x", "stage1": "y"}}).resolved()
    assert (bare.optimizer.name, bare.optimizer.lr, bare.optimizer.module_lr, bare.training.batch_size) == (
        "adam",
        1e-5,
        {"adapter": 1e-3},
        16,
    )
    assert bare.feature_cache.enabled and bare.export_dir == "runs/flallm/best"
    assert (
        not TrainConfig.from_dict({"stage": 2, "model": {"config": {"freeze": "none"}}})
        .resolved()
        .feature_cache.enabled
    )


def test_ablations_inherit_and_change_only_their_setting():
    main = load_config(CONFIG_DIR / "phoenix14t_stage1.yaml").to_dict()
    fast = load_config(CONFIG_DIR / "ablations" / "downsample_12_5_stage1.yaml").to_dict()
    assert fast["model"]["config"]["frame_sample_rate"] == 8
    fast["model"]["config"]["frame_sample_rate"] = 4
    fast["output_dir"] = main["output_dir"]
    assert fast == main
    mt5 = load_config(CONFIG_DIR / "ablations" / "llm_mt5_base_stage2.yaml")
    assert mt5.model.language_model == "google/mt5-base" and mt5.model.target_language is None


def test_base_inheritance_merges_mappings_and_detects_loops(tmp_path):
    (tmp_path / "a.yaml").write_text("training: {epochs: 3, batch_size: 2}\nmodel: {config: {frame_sample_rate: 2}}\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\ntraining: {epochs: 5}\n")
    data = read_yaml(tmp_path / "b.yaml")
    assert data["training"] == {"epochs": 5, "batch_size": 2} and data["model"]["config"]["frame_sample_rate"] == 2
    (tmp_path / "loop.yaml").write_text("base: loop.yaml\n")
    with pytest.raises(ValueError, match="loops"):
        read_yaml(tmp_path / "loop.yaml")
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        read_yaml(tmp_path / "missing.yaml")


def test_overrides_use_dotted_keys_and_yaml_values(tmp_path):
    (tmp_path / "c.yaml").write_text("stage: 2\n")
    config = load_config(
        tmp_path / "c.yaml",
        [
            "optimizer.lr=1e-5",
            "optimizer.module_lr.adapter=0.002",
            "training.max_grad_norm=1",
            "model.stage1=null",
            "data.options.num_train=20",
            "model.config={freeze: none}",
        ],
    )
    assert config.optimizer.lr == 1e-5  # YAML 1.1 reads "1e-5" as a string: accepted as the float it is
    assert config.optimizer.module_lr == {"adapter": 0.002}
    assert config.training.max_grad_norm == 1.0 and config.model.stage1 is None
    assert config.data.options == {"num_train": 20} and config.model.config == {"freeze": "none"}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        apply_override({}, "optimizer.lr")


@pytest.mark.parametrize(
    "data, message",
    [
        ({"optimizer": {"lrr": 0.1}}, r"unknown key\(s\) \['optimizer.lrr'\]"),
        ({"training": {"epochs": "many"}}, r"training.epochs='many' has the wrong type"),
        ({"stage": 3}, r"stage=3 is invalid"),
        ({"optimizer": {"name": "lion"}}, r"optimizer.name='lion' is invalid"),
        ({"training": {"mixed_precision": "fp8"}}, r"mixed_precision"),
        ({"model": {"config": {"freeze": "all"}}}, r"model.config.freeze='all' is invalid"),
        ({"optimizer": {"module_lr": {"adapter": -1}}}, r"optimizer.module_lr.adapter"),
        ({"model": {"tokenizer": "x", "train_tokenizer": {"vocab_size": 100}}}, r"not both"),
        ({"training": None, "data": []}, r"data must be a mapping"),
        ({"model": {"config": {"frame_sample_rte": 2}}}, r"model.config has unknown field\(s\) \['frame_sample_rte'\]"),
        ({"model": {"light_t": {"encoder_layer": 2}}}, r"model.light_t has unknown field\(s\) \['encoder_layer'\]"),
        ({"model": {"video_processor": {"crop": 2}}}, r"model.video_processor has unknown field\(s\) \['crop'\]"),
    ],
)
def test_invalid_configs_name_the_key(data, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig.from_dict(data, source="my.yaml")


def test_cli_print_config(capsys):
    path = CONFIG_DIR / "phoenix14t_stage2.yaml"
    assert (
        cli.main(["train", "--config", str(path), "--print-config", "optimizer.lr=3e-5", "--output-dir", "/tmp/r"]) == 0
    )
    printed = yaml.safe_load(capsys.readouterr().out)
    assert (
        printed["optimizer"]["lr"] == 3e-5
        and printed["output_dir"] == "/tmp/r"
        and printed["export_dir"] == "/tmp/r/best"
    )


def test_shipped_configs_are_found_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("phoenix14t_stage1.yaml", "train/configs/phoenix14t_stage1.yaml", "ablations/joint_end_to_end"):
        assert load_config(name).output_dir.startswith("runs/")
    (tmp_path / "phoenix14t_stage1.yaml").write_text("stage: 2\n")  # a local file wins
    assert load_config("phoenix14t_stage1.yaml").stage == 2
    with pytest.raises(FileNotFoundError, match="nothing.yaml"):
        load_config("nothing.yaml")


def test_grad_norm_modules_follow_the_model_layout():
    from train.diagnostics import module_of

    assert module_of("visual_encoder.backbone.embedder.embedder.convolution.weight") == "backbone"
    assert module_of("visual_encoder.temporal.conv.weight") == "temporal"
    assert module_of("visual_encoder.light_t_encoder.layers.0.fc1.weight") == "visual_light_t"
    assert module_of("adapter.linear_1.weight") == "adapter"
    assert module_of("language_model.model.encoder.layers.0.fc1.weight") == "lm_encoder"
    assert module_of("language_model.model.decoder.layers.0.fc1.weight") == "lm_decoder"
    assert module_of("language_model.lm_head.weight") == "lm_other"
    assert module_of("language_model.model.layers.0.mlp.up_proj.weight") == "lm_other"  # a causal LM


def test_integer_values_of_float_model_fields_are_accepted():
    # YAML and the command line read `0` as an int; the strict config classes would reject it deep inside.
    config = load_config(
        CONFIG_DIR / "demo_stage1.yaml",
        ["model.config.bag_of_words_weight=0", "model.config.label_smoothing=0", "model.light_t.dropout=0"],
    )
    assert config.model.config["bag_of_words_weight"] == 0.0 and isinstance(
        config.model.config["label_smoothing"], float
    )
    from modeling_flallm import FlaLlmConfig

    assert (
        FlaLlmConfig(**{k: v for k, v in config.model.config.items() if k != "vision_config"}).bag_of_words_weight
        == 0.0
    )
