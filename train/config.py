"""Training configuration: a typed schema, YAML files with `base:` inheritance, `key=value` overrides.

A config file is plain YAML in the shape of `TrainConfig` below. `base: other.yaml` (a path relative
to the file, or a list of paths) loads other files first and merges this one over them, so an
ablation only states what differs from the paper's setting. Command-line overrides use dotted keys
and YAML values: `optimizer.lr=0.01`, `model.stage1=runs/p14t/best`, `data.options.num_train=200`.

Stage-dependent settings left empty (`null`) get the paper's value for the stage in `resolved()`, read
from `configs/base_stage{1,2}.yaml` (SGD 1e-2, batch 8, 75 epochs in stage 1; Adam 1e-5 LLM / 1e-3
adapter, batch 16 in stage 2), so the written `training_config.yaml` of a run always shows the values
that were used.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from modeling_flallm.configuration_flallm import FREEZE_CHOICES

SHIPPED_CONFIGS = Path(__file__).resolve().parent / "configs"
# The settings whose default depends on the stage: `resolved()` takes them from the stage's base config.
STAGE_DEFAULTS = (
    ("optimizer", "name"),
    ("optimizer", "lr"),
    ("optimizer", "module_lr"),
    ("training", "batch_size"),
    ("training", "epochs"),
)
OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULERS = ("cosine", "linear", "constant", "constant_with_warmup", "cosine_with_restarts", "polynomial")
MIXED_PRECISION = ("auto", "no", "bf16", "fp16")
LANGUAGE_MODEL_INIT = ("pretrained", "random")


@dataclass
class DataConfig:
    """Which corpus and how to read it (see `data_builders.load_sign_dataset`)."""

    dataset: str = "synthetic"  # phoenix14t | csl_daily | how2sign | synthetic | folder of a prepared dataset
    data_dir: str | None = None  # the raw release (not needed for synthetic or prepared datasets)
    cache_dir: str | None = None  # where `datasets` builds raw/synthetic corpora (null: its default cache)
    options: dict = field(default_factory=dict)  # corpus options, e.g. {skip_bad_samples: true}
    language: str | None = None  # metric language (de/zh/en); null: the corpus's language
    train_split: str = "train"
    validation_split: str | None = "validation"  # null: no validation, the last model is exported
    test_split: str | None = "test"  # null: no test evaluation at the end
    max_train_samples: int | None = None
    max_eval_samples: int | None = None
    max_target_length: int = 128  # target tokens (longer references are cut, with their end token kept)
    num_workers: int = 2  # DataLoader worker processes (video decoding and augmentation)


@dataclass
class ModelConfig:
    """How the model and its processor are built (stage 1, stage 2, or the ablations' variants)."""

    # Stage 1 ----------------------------------------------------------------------------------
    vision_model: str | None = "microsoft/resnet-18"  # ImageNet ResNet for the backbone; null: random init
    tokenizer: str | None = None  # Hub id/dir of the tokenizer Light-T uses (the LLM's, paper)
    train_tokenizer: dict | None = None  # or: kwargs of tokenization_flallm.train_tokenizer, trained offline
    light_t: dict = field(default_factory=dict)  # Light-T (MBartConfig) fields over LIGHT_T_DEFAULTS
    init_from: str | None = None  # start from an exported FLa-LLM dir instead (weights + processor)
    # Stage 2 ----------------------------------------------------------------------------------
    stage1: str | None = None  # stage-1 export dir; null in stage 2: visual encoder from `vision_model`
    language_model: str | None = None  # Hub id/dir of the LLM (and its tokenizer)
    language_model_init: str = "pretrained"  # pretrained | random (the paper's random-init mBART ablation)
    # Both -------------------------------------------------------------------------------------
    trim_vocabulary: bool = True  # trim tokenizer (+ LLM) to the train texts (paper: saves GPU memory)
    target_language: str | None = None  # language code token, e.g. de_DE for mBART (labels and generation)
    config: dict = field(default_factory=dict)  # FlaLlmConfig fields: frame_sample_rate, freeze, adapter_input, ...
    video_processor: dict = field(default_factory=dict)  # FlaLlmVideoProcessor kwargs: size, crop_size, ...
    gradient_checkpointing: bool = False


@dataclass
class OptimizerConfig:
    name: str | None = None  # sgd | adam | adamw; null: sgd (stage 1), adam (stage 2)
    lr: float | None = None  # parameters no `module_lr` prefix matches; null: 1e-2 / 1e-5 (the LLM)
    module_lr: dict | None = None  # {module prefix: lr}; null: {} / {adapter: 1e-3}
    momentum: float = 0.9
    betas: list = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    weight_decay: float = 0.0
    # PyTorch's fused (one-kernel) optimizer step; null: fused on cpu/cuda/mps/xpu. On a CPU it is 1.4-3.2x faster
    # than the per-tensor loop for the demo's and the paper's models (BENCHMARKS.md, "Optimizer step").
    fused: bool | None = None


@dataclass
class SchedulerConfig:
    name: str = "cosine"
    warmup_steps: int = 0
    warmup_ratio: float = 0.0  # used when warmup_steps is 0


@dataclass
class TrainingConfig:
    epochs: int | None = None  # null: 75 (stage 1, paper), 30 (stage 2: the paper does not say)
    max_steps: int | None = None  # stop after this many optimizer steps (smoke runs)
    batch_size: int | None = None  # per process; null: 8 (stage 1), 16 (stage 2)
    gradient_accumulation_steps: int = 1
    mixed_precision: str = "auto"  # auto: bf16 on a bf16 GPU (or what `accelerate launch` says), else no
    max_grad_norm: float | None = None  # gradient clipping; null: off (the paper does not clip)
    log_every_steps: int = 10


@dataclass
class EvaluationConfig:
    every_epochs: int | None = 1  # validate after every N epochs
    every_steps: int | None = None  # and/or every N optimizer steps
    batch_size: int | None = None  # null: the training batch size
    num_beams: int = 5  # paper: beam 5
    max_new_tokens: int = 100
    metric: str = "bleu4"  # the dev metric that picks the exported checkpoint (higher is better)


@dataclass
class CheckpointingConfig:
    every_steps: int | None = None  # also checkpoint every N optimizer steps (always at epoch ends)
    keep_last: int = 2
    resume: bool | str = "auto"  # auto: resume if a checkpoint exists; true: must; false: never; or a path


@dataclass
class FeatureCacheConfig:
    """Stage 2 trains from cached visual features (the encoder is frozen): no train-time augmentation."""

    enabled: bool | None = None  # null: on in stage 2 when the whole visual encoder is frozen
    dir: str | None = None  # null: $FLALLM_CACHE or ~/.cache/flallm/features
    batch_size: int = 8


@dataclass
class LoggingConfig:
    report_to: str | list = "auto"  # auto: tensorboard when installed; none; or accelerate tracker names
    project_name: str = "flallm"
    grad_norms_every_steps: int | None = 100  # per-module gradient norms (train/diagnostics.py); null: off


@dataclass
class HubConfig:
    push_to_hub: str | None = None  # repo id: push the export at the end (train.hub.push_stage_to_hub)
    private: bool | None = None


@dataclass
class TrainConfig:
    stage: int = 1
    output_dir: str = "runs/flallm"
    export_dir: str | None = None  # null: <output_dir>/best
    seed: int = 42
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    checkpointing: CheckpointingConfig = field(default_factory=CheckpointingConfig)
    feature_cache: FeatureCacheConfig = field(default_factory=FeatureCacheConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    hub: HubConfig = field(default_factory=HubConfig)

    # ------------------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict, source: str = "config") -> TrainConfig:
        """Build and validate; unknown keys and wrong types raise ValueError naming `source` and the key."""
        config = _build(cls, data, source, "")
        config.validate(source)
        return config

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    def validate(self, source: str = "config") -> None:
        def check(key, ok, expected):
            if not ok:
                value = _get(self, key)
                raise ValueError(f"{source}: {key}={value!r} is invalid: expected {expected}.")

        check("stage", self.stage in (1, 2), "1 (visual initialing) or 2 (LLM fine-tuning)")
        check("optimizer.name", self.optimizer.name in (None, *OPTIMIZERS), f"one of {OPTIMIZERS}")
        check("scheduler.name", self.scheduler.name in SCHEDULERS, f"one of {SCHEDULERS}")
        check("training.mixed_precision", self.training.mixed_precision in MIXED_PRECISION, f"one of {MIXED_PRECISION}")
        check(
            "model.language_model_init",
            self.model.language_model_init in LANGUAGE_MODEL_INIT,
            f"one of {LANGUAGE_MODEL_INIT}",
        )
        if self.model.config.get("freeze", "none") not in FREEZE_CHOICES:
            raise ValueError(
                f"{source}: model.config.freeze={self.model.config['freeze']!r} is invalid: expected one of {FREEZE_CHOICES}."
            )
        for key in (
            "training.gradient_accumulation_steps",
            "checkpointing.keep_last",
            "evaluation.num_beams",
            "evaluation.max_new_tokens",
            "data.max_target_length",
            "feature_cache.batch_size",
            "training.log_every_steps",
        ):
            check(key, _get(self, key) >= 1, "an integer >= 1")
        for key in (
            "training.epochs",
            "training.max_steps",
            "training.batch_size",
            "evaluation.batch_size",
            "evaluation.every_epochs",
            "evaluation.every_steps",
            "checkpointing.every_steps",
            "data.max_train_samples",
            "data.max_eval_samples",
            "logging.grad_norms_every_steps",
        ):
            check(key, _get(self, key) is None or _get(self, key) >= 1, "null or an integer >= 1")
        check("data.num_workers", self.data.num_workers >= 0, "an integer >= 0")
        check("optimizer.lr", self.optimizer.lr is None or self.optimizer.lr > 0, "null or a float > 0")
        for prefix, lr in (self.optimizer.module_lr or {}).items():
            if not isinstance(lr, (int, float)) or isinstance(lr, bool) or lr <= 0:
                lr = _as_float(lr)
                if lr is None or lr <= 0:
                    raise ValueError(f"{source}: optimizer.module_lr.{prefix} must be a float > 0.")
                self.optimizer.module_lr[prefix] = lr
        check("scheduler.warmup_ratio", 0.0 <= self.scheduler.warmup_ratio < 1.0, "a float in [0, 1)")
        check(
            "training.max_grad_norm",
            self.training.max_grad_norm is None or self.training.max_grad_norm > 0,
            "null or > 0",
        )
        check(
            "checkpointing.resume",
            isinstance(self.checkpointing.resume, bool) or bool(self.checkpointing.resume),
            "auto, true, false or a checkpoint path",
        )
        check(
            "model.tokenizer",
            not (self.model.tokenizer and self.model.train_tokenizer),
            "either model.tokenizer or model.train_tokenizer, not both",
        )
        check("evaluation.metric", bool(self.evaluation.metric), "a metric name such as bleu4")
        self._check_model_fields(source)

    def _check_model_fields(self, source: str) -> None:
        """Typos in the free-form model sections would otherwise be ignored by the config classes."""
        import inspect

        from transformers import MBartConfig

        from modeling_flallm import FlaLlmConfig, FlaLlmVideoProcessor

        sections = {
            "model.config": (self.model.config, {f.name for f in dataclasses.fields(FlaLlmConfig)}),
            "model.light_t": (self.model.light_t, {f.name for f in dataclasses.fields(MBartConfig)}),
            "model.video_processor": (
                self.model.video_processor,
                set(inspect.signature(FlaLlmVideoProcessor.__init__).parameters) - {"self", "kwargs"},
            ),
        }
        for key, (given, known) in sections.items():
            unknown = sorted(set(given) - known)
            if unknown:
                raise ValueError(f"{source}: {key} has unknown field(s) {unknown}; expected some of {sorted(known)}")
        # YAML reads `label_smoothing: 0` as an int; the strict config classes would reject it deep inside.
        for key, config_class in (("config", FlaLlmConfig), ("light_t", MBartConfig)):
            section = getattr(self.model, key)
            floats = [
                f.name for f in dataclasses.fields(config_class) if f.type is float or float in typing.get_args(f.type)
            ]
            for name in floats:
                if type(section.get(name)) is int:
                    section[name] = float(section[name])

    def resolved(self) -> TrainConfig:
        """A copy with every stage-dependent default filled in (paper values)."""
        from data_builders.loading import BUILDERS

        config = copy.deepcopy(self)
        base = read_yaml(SHIPPED_CONFIGS / f"base_stage{config.stage}.yaml")
        for section, key in STAGE_DEFAULTS:
            if getattr(getattr(config, section), key) is None:
                value = base.get(section, {}).get(key, {} if key == "module_lr" else None)
                setattr(getattr(config, section), key, copy.deepcopy(value))
        if config.evaluation.batch_size is None:
            config.evaluation.batch_size = config.training.batch_size
        if config.export_dir is None:
            config.export_dir = str(Path(config.output_dir) / "best")
        if config.data.language is None:
            builder = BUILDERS.get(config.data.dataset)
            config.data.language = builder.LANGUAGE if builder is not None else "en"
        freeze = config.model.config.get("freeze", base.get("model", {}).get("config", {}).get("freeze", "none"))
        if config.feature_cache.enabled is None:
            config.feature_cache.enabled = config.stage == 2 and freeze == "visual_encoder"
        return config


# ----------------------------------------------------------------------------------------------
# Loading


def load_config(source: str | os.PathLike | dict | TrainConfig, overrides=()) -> TrainConfig:
    """A validated `TrainConfig` from a YAML path, a dict or a config, with `key=value` overrides applied."""
    if isinstance(source, TrainConfig):
        data, name = source.to_dict(), "config"
    elif isinstance(source, dict):
        data, name = copy.deepcopy(source), "config"
    else:
        source = resolve_config_path(source)
        data, name = read_yaml(source), str(source)
    for override in overrides:
        apply_override(data, override)
    return TrainConfig.from_dict(data, source=name)


def resolve_config_path(path: str | os.PathLike) -> Path:
    """`path` itself when it exists; otherwise the shipped config of that name, so that
    `phoenix14t_stage1.yaml`, `ablations/joint_end_to_end` or `train/configs/demo_stage1.yaml`
    work from any directory (and from an installed package)."""
    path = Path(path).expanduser()
    if path.exists() or path.is_absolute():
        return path
    relative = path.as_posix().removeprefix("train/configs/")
    for candidate in (SHIPPED_CONFIGS / relative, SHIPPED_CONFIGS / f"{relative}.yaml"):
        if candidate.is_file():
            return candidate
    return path


def read_yaml(path: str | os.PathLike, _seen: tuple = ()) -> dict:
    """A YAML file with its `base:` files merged under it (bases first, this file wins)."""
    path = Path(path).expanduser().resolve()
    if path in _seen:
        raise ValueError(f"{path}: `base:` inheritance loops back to this file ({' -> '.join(map(str, _seen))}).")
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    with open(path, encoding="utf-8") as handle:
        try:
            data = yaml.safe_load(handle) or {}
        except yaml.YAMLError as error:
            raise ValueError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of config keys at the top level, got {type(data).__name__}")
    bases = data.pop("base", None) or []
    merged: dict = {}
    for base in [bases] if isinstance(bases, str) else bases:
        merged = deep_merge(merged, read_yaml(path.parent / base, _seen + (path,)))
    return deep_merge(merged, data)


def deep_merge(base: dict, update: dict) -> dict:
    """`update` over `base`, recursing into mappings (a list or a value replaces)."""
    merged = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def apply_override(data: dict, override: str) -> None:
    """`a.b.c=value` (value parsed as YAML: numbers, true/false, null, [lists], {maps}) into `data`."""
    if "=" not in override:
        raise ValueError(
            f"override {override!r} is invalid: expected KEY=VALUE with a dotted key, e.g. optimizer.lr=0.01"
        )
    key, text = override.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
        raise ValueError(f"override {override!r} has an empty key part: expected e.g. training.epochs=3")
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        value = text
    node = data
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = value


# ----------------------------------------------------------------------------------------------
# Typed construction


def _as_float(value):
    """YAML 1.1 reads `1e-5` (no dot) as a string; accept it as the number it obviously is."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _convert(value, annotation, where: str):
    """`value` as `annotation` (a simple type, `X | None`, or a union), or ValueError naming `where`."""
    options = (
        typing.get_args(annotation)
        if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union
        else (annotation,)
    )
    if value is None:
        if type(None) in options:
            return None
        raise ValueError(f"{where} must not be null")
    for option in options:
        if option is bool and isinstance(value, bool):
            return value
        if option is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if option is str and isinstance(value, str):
            return value
        if option in (dict, list) and isinstance(value, option):
            return value
    for option in options:
        if option is float and _as_float(value) is not None:
            return _as_float(value)
    names = " or ".join("null" if o is type(None) else o.__name__ for o in options)
    raise ValueError(f"{where}={value!r} has the wrong type: expected {names}")


def _build(cls, data, source: str, prefix: str):
    if not isinstance(data, dict):
        raise ValueError(f"{source}: {prefix.rstrip('.') or 'the config'} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(
            f"{source}: unknown key(s) {[prefix + k for k in unknown]}; expected some of {[prefix + k for k in fields]}"
        )
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        annotation = hints[name]
        if dataclasses.is_dataclass(annotation):
            kwargs[name] = _build(annotation, value if value is not None else {}, source, f"{prefix}{name}.")
        else:
            kwargs[name] = _convert(value, annotation, f"{source}: {prefix}{name}")
    return cls(**kwargs)


def _get(config, dotted: str):
    node = config
    for part in dotted.split("."):
        node = getattr(node, part)
    return node
