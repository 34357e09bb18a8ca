"""FLa-LLM model configuration."""

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
    MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES,
)

ADAPTER_INPUTS = ("sign", "frame", "light_t")
FREEZE_CHOICES = ("none", "backbone", "visual_encoder")
STAGES = ("visual_initialing", "llm_fine_tuning")

# Light-T (paper, section "Architecture"): a 3+3-layer Transformer encoder-decoder, hidden 512,
# 8 heads, FFN 2048. mBART's layout is used so Light-T and the stage-2 LLM share one code path.
LIGHT_T_DEFAULTS = {
    "encoder_layers": 3,
    "decoder_layers": 3,
    "d_model": 512,
    "encoder_attention_heads": 8,
    "decoder_attention_heads": 8,
    "encoder_ffn_dim": 2048,
    "decoder_ffn_dim": 2048,
    "vocab_size": 8000,
    "max_position_embeddings": 1024,
    "scale_embedding": True,
    "dropout": 0.1,
    "pad_token_id": 1,
    "bos_token_id": 0,
    "eos_token_id": 2,
    "decoder_start_token_id": 2,
}

# ResNet-18, the shape of `microsoft/resnet-18`.
RESNET18_DEFAULTS = {
    "embedding_size": 64,
    "hidden_sizes": [64, 128, 256, 512],
    "depths": [2, 2, 2, 2],
    "layer_type": "basic",
    "hidden_act": "relu",
    "downsample_in_first_stage": False,
}


@strict
class FlaLlmConfig(PreTrainedConfig):
    r"""
    Configuration of [`FlaLlmForSignTranslation`]: visual encoder (ResNet backbone + local temporal
    module) -> adapter -> language model.

    Stage 1 ("visual initialing") uses the lightweight translator Light-T as language model; stage 2
    ("LLM fine-tuning") uses a pre-trained LLM (mBART-large-cc25 in the paper) and freezes the
    visual encoder. A stage is a configuration of the same model class.

    Args:
        vision_config (`dict` or `PreTrainedConfig`, *optional*):
            Backbone config; a transformers `ResNetConfig` with the ResNet-18 shape by default.
        text_config (`dict` or `PreTrainedConfig`, *optional*):
            Language model config: any seq2seq (mBART, T5, ...) or causal (Llama, Qwen2, ...) config.
            Defaults to Light-T, an `MBartConfig` with 3+3 layers, d_model 512, 8 heads, FFN 2048.
        frame_sample_rate (`int`, *optional*, defaults to 4):
            Keep one frame in `frame_sample_rate` (T -> T/4 in the paper) before the backbone.
        temporal_kernel_size (`int`, *optional*, defaults to 5):
            Kernel of the Conv1D-BN-ReLU local temporal module (odd, so that length is preserved).
        temporal_hidden_size (`int`, *optional*, defaults to 1024):
            Width of the local temporal module ("sign-wise" features).
        adapter_hidden_size (`int`, *optional*, defaults to 1024):
            Hidden layer of the adapter MLP (VL-Adapter in stage 1, LLM-Adapter in stage 2).
        adapter_input (`str`, *optional*, defaults to `"sign"`):
            `"sign"`: the temporal module's output feeds the adapter (best in the paper);
            `"frame"`: the backbone's per-frame features do (no temporal module); `"light_t"`: the
            hidden states of the stage-1 Light-T encoder do (the frozen stage-1 VL-adapter and Light-T
            encoder then belong to the visual encoder; see `light_t_config`). The paper's Table 8.
        light_t_config (`dict` or `PreTrainedConfig`, *optional*):
            With `adapter_input="light_t"`: the stage-1 Light-T config whose encoder is kept.
        light_t_adapter_hidden_size (`int`, *optional*):
            With `adapter_input="light_t"`: hidden size of the kept stage-1 VL-adapter
            (default: `adapter_hidden_size`).
        freeze (`str`, *optional*, defaults to `"none"`):
            `"none"`, `"backbone"` or `"visual_encoder"` (backbone + temporal module). Frozen parts get
            no gradients and keep BatchNorm running statistics fixed.
        max_frames (`int`, *optional*, defaults to 1024):
            Longest video (after frame sampling) the model accepts.
        label_smoothing (`float`, *optional*, defaults to 0.2):
            Label smoothing of the cross-entropy loss (0.2 in both stages of the paper).
        visual_embedding_scale (`float`, *optional*):
            Multiplier applied to the adapter output before the language model. `None` uses the
            language model's own token-embedding scale (sqrt(d_model) for mBART with
            `scale_embedding=True`), so the adapter produces vectors in the space of the word
            embeddings it replaces.
        bag_of_words_weight (`float`, *optional*, defaults to 0.0):
            Beyond the paper: weight of a gloss-free auxiliary loss that asks the language model
            encoder's output over the visual input (the visual embeddings for decoder-only language
            models) which target tokens occur in the sentence: a linear head per time step, averaged
            over time, binary cross-entropy (pseudo-glosses from the text itself, as in Sign2GPT).
            Trained from scratch, Light-T's encoder otherwise learns to map every clip to nearly the
            same vector and its decoder writes the language prior (BENCHMARKS.md, "Stage 1
            diagnosis"); this loss keeps what the decoder reads informative. 0 disables it (the paper).
        decoder_word_dropout (`float`, *optional*, defaults to 0.0):
            Beyond the paper: in training, replace this fraction of the language model's decoder input
            tokens (after the first) with the padding token, whose embedding is zero (word dropout,
            Bowman et al. 2016). A decoder that cannot predict the sentence from its own prefix alone
            has to read the visual input, which keeps it from settling on the language prior. Encoder-
            decoder language models only; 0 disables it (the paper).
        stage (`str`, *optional*, defaults to `"visual_initialing"`):
            Which training stage this checkpoint belongs to (used by model cards and the trainer).
        use_lora (`bool`, *optional*, defaults to `False`):
            Wrap the language model with peft LoRA adapters (`lora_rank`, `lora_alpha`, `lora_dropout`,
            `lora_target_modules`; all linear layers by default) instead of fine-tuning it fully.
    """

    model_type = "flallm"
    sub_configs_defaults = {
        "vision_config": SubConfigSpec(config_class=AutoConfig, model_type="resnet", init_kwargs=RESNET18_DEFAULTS),
        "text_config": SubConfigSpec(config_class=AutoConfig, model_type="mbart", init_kwargs=LIGHT_T_DEFAULTS),
        "light_t_config": SubConfigSpec(config_class=AutoConfig, model_type="mbart", optional=True),
    }

    vision_config: dict | PreTrainedConfig | None = None
    text_config: dict | PreTrainedConfig | None = None
    light_t_config: dict | PreTrainedConfig | None = None
    light_t_adapter_hidden_size: int | None = None
    frame_sample_rate: int = 4
    temporal_kernel_size: int = 5
    temporal_hidden_size: int = 1024
    adapter_hidden_size: int = 1024
    adapter_input: str = "sign"
    freeze: str = "none"
    max_frames: int = 1024
    label_smoothing: float = 0.2
    visual_embedding_scale: float | None = None
    bag_of_words_weight: float = 0.0
    decoder_word_dropout: float = 0.0
    stage: str = "visual_initialing"
    use_lora: bool = False
    lora_rank: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_target_modules: list[str] | None = None
    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        self._check_values()

    def _check_values(self):
        """Reject values the model cannot honour with a `ValueError` naming the field (a plain
        `ValueError`, unlike `@strict` validators, whose errors are wrapped in another type)."""

        def check(name, ok, expected):
            if not ok:
                raise ValueError(f"FlaLlmConfig.{name}={getattr(self, name)!r} is invalid: expected {expected}.")

        check("frame_sample_rate", self.frame_sample_rate >= 1, "an integer >= 1 (1 keeps every frame)")
        check(
            "temporal_kernel_size",
            self.temporal_kernel_size >= 1 and self.temporal_kernel_size % 2 == 1,
            "an odd integer >= 1, so the temporal module keeps the sequence length",
        )
        check("temporal_hidden_size", self.temporal_hidden_size >= 1, "an integer >= 1")
        check("adapter_hidden_size", self.adapter_hidden_size >= 1, "an integer >= 1")
        check("adapter_input", self.adapter_input in ADAPTER_INPUTS, f"one of {ADAPTER_INPUTS}")
        if self.adapter_input == "light_t" and not getattr(self.light_t_config, "is_encoder_decoder", False):
            raise ValueError(
                "FlaLlmConfig.light_t_config is required with adapter_input='light_t': the config of the stage-1 "
                "encoder-decoder (Light-T) whose encoder states feed the adapter. Build such a model with "
                "FlaLlmForSignTranslation.from_stage1(stage1, language_model, adapter_input='light_t')."
            )
        check("freeze", self.freeze in FREEZE_CHOICES, f"one of {FREEZE_CHOICES}")
        check("max_frames", self.max_frames >= 1, "an integer >= 1")
        check("label_smoothing", 0.0 <= self.label_smoothing < 1.0, "a float in [0, 1)")
        check("bag_of_words_weight", self.bag_of_words_weight >= 0.0, "a float >= 0 (0 disables the loss)")
        check("decoder_word_dropout", 0.0 <= self.decoder_word_dropout < 1.0, "a float in [0, 1) (0 disables it)")
        check("stage", self.stage in STAGES, f"one of {STAGES}")
        check("lora_rank", self.lora_rank >= 1, "an integer >= 1")
        check("lora_dropout", 0.0 <= self.lora_dropout < 1.0, "a float in [0, 1)")
        if self.vision_config.model_type != "resnet":
            raise ValueError(
                f"FlaLlmConfig.vision_config has model_type={self.vision_config.model_type!r}: expected 'resnet' "
                "(the paper's ResNet-18 backbone, e.g. microsoft/resnet-18)."
            )
        text_type = self.text_config.model_type
        if (
            text_type not in MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES
            and text_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
        ):
            raise ValueError(
                f"FlaLlmConfig.text_config has model_type={text_type!r}, which is neither a seq2seq language model "
                "(e.g. 'mbart', 't5', 'mt5', 'bart') nor a causal language model (e.g. 'llama', 'qwen2', 'xglm')."
            )

    @property
    def is_encoder_decoder(self) -> bool:
        return bool(getattr(self.text_config, "is_encoder_decoder", False))

    @is_encoder_decoder.setter
    def is_encoder_decoder(self, value):
        # The base config assigns a default at init; the language model decides.
        pass


__all__ = ["FlaLlmConfig"]
