"""The model and processor of a training stage, from its config: stage 1 (visual encoder + VL-adapter + Light-T over
the LLM's tokenizer) or stage 2 (a stage-1 export + a fresh LLM-adapter + the LLM), with every Hub resource named by
its config key when it cannot be loaded."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from . import checkpointing
from .config import TrainConfig
from .model_card import is_repo_id

logger = logging.getLogger(__name__)


def _configure_generation(model, tokenizer, config: TrainConfig) -> None:
    """Decoding settings for validation, the export and the pipeline; language codes handled here.

    mBART-cc25-style tokenizers end targets with `</s> <lang>`: the model's shifted decoder input
    then starts with `<lang>`, so generation must start with it too (decoder_start_token_id). With
    mBART-50-style codes in front (`<lang> text </s>`), the code is forced as first token instead.
    """
    generation = model.generation_config
    generation.num_beams = config.evaluation.num_beams
    generation.max_new_tokens = config.evaluation.max_new_tokens
    for name in ("pad_token_id", "eos_token_id", "bos_token_id"):
        value = getattr(tokenizer, name)
        if value is not None:
            setattr(generation, name, value)
    if not model.config.is_encoder_decoder:
        return
    code = config.model.target_language
    probe = tokenizer("a", add_special_tokens=True)["input_ids"]
    special = set(tokenizer.all_special_ids)
    if code is not None:
        code_id = tokenizer.convert_tokens_to_ids(code)
        if code_id is None or code_id == tokenizer.unk_token_id:
            raise ValueError(
                f"model.target_language={code!r} is not a token of the tokenizer; expected a language code such as de_DE"
            )
        if probe[-1] == code_id:
            generation.decoder_start_token_id = code_id
        elif probe[0] == code_id:
            generation.forced_bos_token_id = code_id
        else:
            raise ValueError(
                f"model.target_language={code!r}: the tokenizer does not add this code to targets (it encodes 'a' as "
                f"{tokenizer.convert_ids_to_tokens(probe)}); expected an mBART-style tokenizer with src_lang/tgt_lang"
            )
    elif (
        len(probe) >= 2
        and probe[-2] == tokenizer.eos_token_id
        and probe[-1] in special
        and probe[-1] != tokenizer.eos_token_id
    ):
        # A tokenizer that appends a language code by default (mbart-large-cc25: en_XX).
        generation.decoder_start_token_id = probe[-1]
        logger.warning(
            "The tokenizer ends targets with %s; generation starts with it. Set model.target_language to choose.",
            tokenizer.convert_ids_to_tokens(probe[-1]),
        )
    elif generation.decoder_start_token_id is None:
        generation.decoder_start_token_id = model.config.text_config.decoder_start_token_id


def _set_target_language(tokenizer, code: str | None) -> None:
    """mBART tokenizers add their `src_lang` code to every encoded text: targets must carry the target language."""
    if code is not None and hasattr(tokenizer, "src_lang"):
        tokenizer.src_lang = code
        if hasattr(tokenizer, "tgt_lang"):
            tokenizer.tgt_lang = code


def _video_processor(config: TrainConfig, model_config: dict):
    from modeling_flallm import FlaLlmVideoProcessor

    settings = dict(config.model.video_processor)
    for key in ("frame_sample_rate", "max_frames"):
        if key in model_config:
            if key in settings and settings[key] != model_config[key]:
                raise ValueError(
                    f"model.video_processor.{key}={settings[key]} differs from model.config.{key}={model_config[key]}"
                )
            settings[key] = model_config[key]
    return FlaLlmVideoProcessor(**settings)


# Where no Hub is reachable, what to set instead of each Hub resource (one message per config key).
OFFLINE_ALTERNATIVES = {
    "model.tokenizer": "a local tokenizer folder, or train one offline: model.tokenizer=null "
    "'model.train_tokenizer={vocab_size: 8000, model_type: unigram}'",
    "model.vision_model": "a local folder of the ResNet (save_pretrained), or random weights: model.vision_model=null",
    "model.language_model": "a local folder with the LLM and its tokenizer (save_pretrained), e.g. the LM `flallm demo` "
    "pre-trains (DIR/lm) or one made with train.lm_pretraining",
}


def from_hub(load, name: str, key: str, what: str):
    """`load(name)`, with a failure to reach or find `name` reported as the config key to change and the offline
    alternative, instead of huggingface_hub's connection traceback."""
    if not is_repo_id(name) and not Path(name).expanduser().exists():
        raise FileNotFoundError(
            f"{key}={name!r}: no such folder (expected the {what}'s save_pretrained folder, or a Hub repo id USER/NAME)"
        )
    try:
        return load(name)
    except OSError as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise OSError(
            f"{key}={name!r}: cannot load the {what} ({reason}). Without access to the Hub, set {key} to "
            f"{OFFLINE_ALTERNATIVES[key]}."
        ) from None


def _stage1_tokenizer(config: TrainConfig, texts: list[str]):
    from transformers import AutoTokenizer

    from modeling_flallm.tokenization_flallm import train_tokenizer

    if config.model.train_tokenizer is not None:
        options = dict(config.model.train_tokenizer)
        code = config.model.target_language
        if code is not None:  # the corpus's language code (de_DE for PHOENIX-2014T) becomes a token of the tokenizer
            codes = list(options.get("language_codes") or [])
            options["language_codes"] = codes if code in codes else [*codes, code]
            options.setdefault("target_language", code)
        return train_tokenizer(texts, **options)
    if config.model.tokenizer is None:
        raise ValueError(
            "stage 1 needs model.tokenizer (a Hub id or folder, trimmed to the corpus) or model.train_tokenizer"
        )
    tokenizer = from_hub(AutoTokenizer.from_pretrained, config.model.tokenizer, "model.tokenizer", "tokenizer")
    _set_target_language(tokenizer, config.model.target_language)
    if config.model.trim_vocabulary:
        from modeling_flallm.vocab_trimming import trim_vocabulary

        tokenizer = trim_vocabulary(tokenizer, texts).tokenizer
    return tokenizer


def stage1_processor(config: TrainConfig, texts: list[str]):
    """Video processor + the tokenizer Light-T uses (the LLM's trimmed to the corpus, or one trained offline)."""
    from modeling_flallm import FlaLlmProcessor

    if config.model.init_from is not None:
        return FlaLlmProcessor.from_pretrained(config.model.init_from)
    tokenizer = _stage1_tokenizer(config, texts)
    return FlaLlmProcessor(video_processor=_video_processor(config, config.model.config), tokenizer=tokenizer)


def stage1_model(config: TrainConfig, processor):
    """Visual encoder (ImageNet ResNet when `model.vision_model`) + VL-adapter + Light-T over the processor's tokenizer."""
    from transformers import MBartConfig

    from modeling_flallm import FlaLlmConfig, FlaLlmForSignTranslation
    from modeling_flallm.configuration_flallm import LIGHT_T_DEFAULTS

    if config.model.init_from is not None:
        return FlaLlmForSignTranslation.from_pretrained(config.model.init_from)
    tokenizer = processor.tokenizer
    light_t = {**LIGHT_T_DEFAULTS, **config.model.light_t}
    light_t.update(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.eos_token_id,
        forced_eos_token_id=tokenizer.eos_token_id,
    )
    model_config = FlaLlmConfig(
        text_config=MBartConfig(**light_t).to_dict(), stage="visual_initialing", **config.model.config
    )
    if config.model.vision_model:
        return from_hub(
            lambda name: FlaLlmForSignTranslation.from_vision_pretrained(name, config=model_config),
            config.model.vision_model,
            "model.vision_model",
            "ImageNet backbone",
        )
    return FlaLlmForSignTranslation(model_config)


def stage1_export(path: str) -> str:
    """The stage-1 export behind `--stage1`: the folder itself (it has config.json) or a run directory's best/."""
    folder = Path(path).expanduser()
    for candidate in (folder, folder / "best"):
        if (candidate / "config.json").is_file():
            return str(candidate.resolve())
    raise SystemExit(
        f"flallm train: --stage1 {path}: neither a stage-1 export (a folder with config.json) nor a stage-1 "
        "run directory with best/config.json"
    )


def build_stage2(config: TrainConfig, texts: list[str]):
    """Stage-1 visual encoder (frozen) + fresh LLM-adapter + the language model, its vocabulary trimmed to the corpus.

    Without `model.stage1` the visual encoder starts from `model.vision_model` (ImageNet): the
    paper's "stage 2 only" and "joint end-to-end" ablations.
    """
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    from modeling_flallm import FlaLlmConfig, FlaLlmForSignTranslation, FlaLlmProcessor, FlaLlmVideoProcessor

    if config.model.stage1 is not None:
        stage1 = str(config.model.stage1)
        if not is_repo_id(stage1) and not (Path(stage1) / "config.json").is_file():
            raise FileNotFoundError(
                f"model.stage1={stage1!r} is not a stage-1 export (no config.json there): "
                "train stage 1 first, or pass its run directory with --stage1 DIR"
            )
        logger.info("Stage 2 from the stage-1 export %s", stage1 if is_repo_id(stage1) else Path(stage1).resolve())
    name = config.model.language_model
    if name is None:
        raise ValueError("stage 2 needs model.language_model (a Hub id or folder with the LLM and its tokenizer)")
    tokenizer = from_hub(AutoTokenizer.from_pretrained, name, "model.language_model", "LLM's tokenizer")
    _set_target_language(tokenizer, config.model.target_language)
    lm_config = from_hub(AutoConfig.from_pretrained, name, "model.language_model", "LLM's config")
    auto_class = AutoModelForSeq2SeqLM if getattr(lm_config, "is_encoder_decoder", False) else AutoModelForCausalLM
    if config.model.language_model_init == "pretrained":
        language_model = from_hub(auto_class.from_pretrained, name, "model.language_model", "LLM")
    else:
        language_model = auto_class.from_config(lm_config)
    if config.model.trim_vocabulary:
        from modeling_flallm.vocab_trimming import trim_vocabulary

        tokenizer = trim_vocabulary(tokenizer, texts, model=language_model).tokenizer
    overrides = dict(config.model.config)
    freeze = overrides.pop("freeze", "visual_encoder")
    if config.model.stage1 is not None:
        model = FlaLlmForSignTranslation.from_stage1(
            config.model.stage1, language_model=language_model, freeze=freeze, **overrides
        )
        video_processor = FlaLlmVideoProcessor.from_pretrained(config.model.stage1)
        for key, value in config.model.video_processor.items():
            setattr(video_processor, key, value)
    else:
        model_config = FlaLlmConfig(
            text_config=language_model.config.to_dict(), stage="llm_fine_tuning", freeze=freeze, **overrides
        )
        model = FlaLlmForSignTranslation(model_config, language_model=language_model)
        if config.model.vision_model:
            backbone = from_hub(
                AutoModel.from_pretrained, config.model.vision_model, "model.vision_model", "ImageNet backbone"
            )
            model.visual_encoder.backbone.load_state_dict(backbone.state_dict())
        video_processor = _video_processor(config, config.model.config)
    return model, FlaLlmProcessor(video_processor=video_processor, tokenizer=tokenizer)


def build_model(config: TrainConfig, texts: list[str], init_dir: Path, resume: bool, accelerator):
    """The model and processor of the stage, and `init_dir` (config + generation config + processor).

    On resume the model is rebuilt from `init_dir` (its weights then come from the checkpoint), so
    neither the ImageNet backbone nor the LLM is loaded again. The main process builds first; the
    others take its processor from `init_dir`, so a tokenizer trained offline is identical everywhere.
    """
    from transformers import GenerationConfig

    from modeling_flallm import FlaLlmConfig, FlaLlmForSignTranslation, FlaLlmProcessor

    with accelerator.main_process_first():
        if resume:
            model = FlaLlmForSignTranslation(FlaLlmConfig.from_pretrained(init_dir))
            model.generation_config = GenerationConfig.from_pretrained(init_dir)
            processor = FlaLlmProcessor.from_pretrained(init_dir)
            _set_target_language(processor.tokenizer, config.model.target_language)  # in case loading reset src_lang
        else:
            if config.stage == 1:
                if accelerator.is_main_process:
                    processor = stage1_processor(config, texts)
                else:
                    processor = FlaLlmProcessor.from_pretrained(init_dir)
                    _set_target_language(processor.tokenizer, config.model.target_language)
                model = stage1_model(config, processor)
            else:
                model, processor = build_stage2(config, texts)
            _configure_generation(model, processor.tokenizer, config)
            if accelerator.is_main_process:
                tmp = init_dir.with_name(f".tmp-{init_dir.name}")
                shutil.rmtree(tmp, ignore_errors=True)
                model.config.save_pretrained(tmp)
                model.generation_config.save_pretrained(tmp)
                processor.save_pretrained(tmp)
                checkpointing.fsync_tree(tmp)
                checkpointing.replace_dir(tmp, init_dir)
    if config.model.gradient_checkpointing:
        # transformers >= 5.2x renames it activation checkpointing; both recompute the LM layers in backward.
        enable = getattr(model, "activation_checkpointing_enable", None)
        if enable is not None:
            enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model, processor
