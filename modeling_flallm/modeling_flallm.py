"""FLa-LLM: a visual encoder (ResNet + local temporal module) bridged into a language model.

One class serves both training stages of the paper (see `FlaLlmConfig`): stage 1 trains the
visual encoder with the lightweight translator Light-T, stage 2 freezes the encoder and bridges
it into a pre-trained LLM through `inputs_embeds`.
"""

import copy
import math
import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    GenerationConfig,
    GenerationMixin,
    PreTrainedModel,
)
from transformers.utils import ModelOutput, logging

from .configuration_flallm import FlaLlmConfig

logger = logging.get_logger(__name__)


@dataclass
class FlaLlmOutput(ModelOutput):
    """
    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*):
            Label-smoothed cross-entropy over the non-padding target tokens.
        logits (`torch.FloatTensor` of shape `(batch, target_length, vocab_size)`):
            Scores of the target tokens, aligned with `labels` (for decoder-only language models too:
            the visual prefix is cut off).
        visual_features (`torch.FloatTensor` of shape `(batch, num_steps, feature_size)`):
            What the adapter consumed (see `FlaLlmForSignTranslation.get_visual_features`).
        visual_mask (`torch.LongTensor` of shape `(batch, num_steps)`):
            1 for real time steps, 0 for padding.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    visual_features: torch.FloatTensor | None = None
    visual_mask: torch.LongTensor | None = None


class FlaLlmTemporalModule(nn.Module):
    """Conv1D -> BatchNorm -> ReLU over time ("local temporal module", sign-wise features).

    Padded steps are zeroed before the convolution (so a video sees the same zero padding alone
    or in a batch) and are left out of the BatchNorm statistics.
    """

    def __init__(self, input_size: int, hidden_size: int, kernel_size: int):
        super().__init__()
        self.conv = nn.Conv1d(input_size, hidden_size, kernel_size, padding=kernel_size // 2)
        self.norm = nn.BatchNorm1d(hidden_size)
        self.activation = nn.ReLU()

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        valid = mask.bool()
        hidden = features.masked_fill(~valid[..., None], 0.0)
        hidden = self.conv(hidden.transpose(1, 2)).transpose(1, 2)
        normalized = self.activation(self.norm(hidden[valid]))
        return hidden.new_zeros(hidden.shape).index_put((valid,), normalized)


class FlaLlmVisualEncoder(nn.Module):
    """Per-frame ResNet features, then the local temporal module.

    With `adapter_input="light_t"` it also holds the stage-1 VL-adapter and Light-T encoder, and
    returns the Light-T encoder's hidden states (the paper's third adapter-input variant).
    """

    def __init__(self, config: FlaLlmConfig):
        super().__init__()
        self.backbone = AutoModel.from_config(config.vision_config)
        self.feature_size = config.vision_config.hidden_sizes[-1]
        self.temporal = (
            FlaLlmTemporalModule(self.feature_size, config.temporal_hidden_size, config.temporal_kernel_size)
            if config.adapter_input in ("sign", "light_t")
            else None
        )
        self.vl_adapter = self.light_t_encoder = None
        if config.adapter_input == "light_t":
            light_t = config.light_t_config
            hidden_size = config.light_t_adapter_hidden_size or config.adapter_hidden_size
            self.vl_adapter = FlaLlmAdapter(config.temporal_hidden_size, hidden_size, light_t.hidden_size)
            self.light_t_encoder = AutoModelForSeq2SeqLM.from_config(light_t).get_encoder()
            self.light_t_scale = math.sqrt(light_t.hidden_size) if getattr(light_t, "scale_embedding", False) else 1.0

    @property
    def output_size(self) -> int:
        if self.light_t_encoder is not None:
            return self.vl_adapter.linear_2.out_features
        return self.temporal.conv.out_channels if self.temporal is not None else self.feature_size

    def frame_features(self, pixel_values: torch.Tensor, pixel_mask: torch.Tensor) -> torch.Tensor:
        """All real frames of the batch go through the CNN in one call; padded frames are skipped."""
        valid = pixel_mask.bool()
        frames = pixel_values[valid].contiguous(memory_format=torch.channels_last)  # NHWC: faster convs (BENCHMARKS.md)
        pooled = self.backbone(pixel_values=frames).pooler_output.flatten(1)
        batch_size, num_frames = pixel_mask.shape
        features = pooled.new_zeros(batch_size, num_frames, pooled.shape[-1])
        return features.index_put((valid,), pooled)

    def forward(self, pixel_values: torch.Tensor, pixel_mask: torch.Tensor) -> torch.Tensor:
        features = self.frame_features(pixel_values, pixel_mask)
        if self.temporal is not None:
            features = self.temporal(features, pixel_mask)
        if self.light_t_encoder is not None:
            padding = ~pixel_mask.bool()[..., None]
            embeds = (self.vl_adapter(features) * self.light_t_scale).masked_fill(padding, 0.0)
            features = self.light_t_encoder(inputs_embeds=embeds, attention_mask=pixel_mask).last_hidden_state
            features = features.masked_fill(padding, 0.0)
        return features


class FlaLlmAdapter(nn.Module):
    """MLP with one hidden layer mapping visual features to the language model's embedding size
    (the paper's VL-Adapter in stage 1 and LLM-Adapter in stage 2)."""

    def __init__(self, input_size: int, hidden_size: int, output_size: int):
        super().__init__()
        self.linear_1 = nn.Linear(input_size, hidden_size)
        self.act = nn.GELU()
        self.linear_2 = nn.Linear(hidden_size, output_size)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear_2(self.act(self.linear_1(features)))


class FlaLlmPreTrainedModel(PreTrainedModel):
    config: FlaLlmConfig
    config_class = FlaLlmConfig
    base_model_prefix = "model"
    main_input_name = "pixel_values"
    input_modalities = ("video", "text")
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_attention_backend = True

    def save_pretrained(self, save_directory, *args, **kwargs):
        # `register_for_auto_class` maps one Auto class; the generation Auto class is added by hand.
        auto_map = dict(getattr(self.config, "auto_map", None) or {})
        auto_map.setdefault("AutoModelForImageTextToText", "modeling_flallm.FlaLlmForSignTranslation")
        self.config.auto_map = auto_map
        return super().save_pretrained(save_directory, *args, **kwargs)

    def _init_weights(self, module):
        if isinstance(module, (FlaLlmTemporalModule, FlaLlmAdapter)) or module is getattr(
            self, "bag_of_words_head", None
        ):
            for submodule in module.modules():
                if hasattr(submodule, "reset_parameters"):
                    submodule.reset_parameters()
            return
        super()._init_weights(module)


def _language_model_class(text_config):
    return AutoModelForSeq2SeqLM if getattr(text_config, "is_encoder_decoder", False) else AutoModelForCausalLM


class FlaLlmForSignTranslation(FlaLlmPreTrainedModel, GenerationMixin):
    """Sign language video in, spoken-language text out.

    `visual_encoder` (ResNet backbone + temporal module) -> `adapter` (MLP) -> `language_model`
    (Light-T, mBART, T5, Llama, Qwen2, ...) fed through `inputs_embeds`.
    """

    def __init__(self, config: FlaLlmConfig, language_model: PreTrainedModel | None = None):
        super().__init__(config)
        self.visual_encoder = FlaLlmVisualEncoder(config)
        text_config = config.text_config
        self.adapter = FlaLlmAdapter(
            self.visual_encoder.output_size, config.adapter_hidden_size, text_config.hidden_size
        )
        if language_model is None:
            language_model = _language_model_class(text_config).from_config(text_config)
        self.language_model = language_model
        # Beyond the paper (config.bag_of_words_weight): which target tokens occur, from each time step.
        self.bag_of_words_head = (
            nn.Linear(text_config.hidden_size, text_config.vocab_size) if config.bag_of_words_weight > 0 else None
        )
        self.post_init()
        if config.use_lora:
            # After post_init: weight tying is resolved on the plain language model's names.
            self._wrap_with_lora()
        if self.generation_config is not None and self.generation_config.num_beams in (None, 1):
            # Paper: beam search with 5 beams. Saved generation configs override this on load.
            self.generation_config.num_beams = 5
            self.generation_config.max_new_tokens = 100
        self._apply_freeze()

    # ----------------------------------------------------------------------------------------
    # Freezing: stage 2 keeps the visual encoder (weights and BatchNorm statistics) fixed.

    def _frozen_modules(self) -> list[nn.Module]:
        if self.config.freeze == "backbone":
            return [self.visual_encoder.backbone]
        if self.config.freeze == "visual_encoder":
            return [self.visual_encoder]
        return []

    def _apply_freeze(self):
        for module in self._frozen_modules():
            module.requires_grad_(False)
            module.eval()

    def train(self, mode: bool = True):
        super().train(mode)
        for module in self._frozen_modules():
            module.eval()
        return self

    # ----------------------------------------------------------------------------------------
    # Embeddings

    def get_input_embeddings(self):
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value):
        self.language_model.set_input_embeddings(value)

    def get_output_embeddings(self):
        return self.language_model.get_output_embeddings()

    @property
    def visual_embedding_scale(self) -> float:
        """The scale token embeddings get inside the language model (mBART: sqrt(d_model)).

        `inputs_embeds` skip that scale, so the adapter output is scaled here instead: the adapter
        then replaces the word-embedding layer exactly, as the paper describes.
        """
        if self.config.visual_embedding_scale is not None:
            return float(self.config.visual_embedding_scale)
        text_config = self.config.text_config
        if getattr(text_config, "scale_embedding", False):
            return math.sqrt(text_config.hidden_size)
        return 1.0

    # ----------------------------------------------------------------------------------------
    # Visual features

    def _check_video_inputs(self, pixel_values, pixel_mask):
        if not torch.is_tensor(pixel_values) or pixel_values.dim() != 5 or pixel_values.shape[2] != 3:
            shape = tuple(pixel_values.shape) if torch.is_tensor(pixel_values) else type(pixel_values).__name__
            raise ValueError(
                f"pixel_values must be a float tensor of shape (batch, frames, 3, height, width); got {shape}. "
                "Use FlaLlmVideoProcessor to turn videos into model inputs."
            )
        batch_size, num_frames = pixel_values.shape[:2]
        if pixel_mask is None:
            pixel_mask = torch.ones(batch_size, num_frames, dtype=torch.long, device=pixel_values.device)
        if tuple(pixel_mask.shape) != (batch_size, num_frames):
            raise ValueError(
                f"pixel_mask has shape {tuple(pixel_mask.shape)} but pixel_values has {batch_size} videos of "
                f"{num_frames} frames: expected pixel_mask of shape ({batch_size}, {num_frames})."
            )
        if num_frames == 0 or not bool(pixel_mask.bool().any(dim=1).all()):
            empty = list(range(batch_size)) if num_frames == 0 else pixel_mask.sum(1).eq(0).nonzero().flatten().tolist()
            raise ValueError(f"video(s) {empty} of the batch have no frames: every video needs at least one frame.")
        if num_frames > self.config.max_frames:
            raise ValueError(
                f"pixel_values has {num_frames} frames, more than config.max_frames={self.config.max_frames}. "
                "Sample fewer frames (FlaLlmVideoProcessor caps videos at max_frames) or raise max_frames."
            )
        return pixel_mask

    def get_visual_features(
        self, pixel_values: torch.FloatTensor, pixel_mask: torch.LongTensor | None = None
    ) -> tuple[torch.FloatTensor, torch.LongTensor]:
        """Features the adapter consumes: sign-wise features of the temporal module (or the
        backbone's frame-wise features with `adapter_input="frame"`), with their mask.

        Stage 2 can compute these once per video and cache them: the visual encoder is frozen there.
        """
        pixel_mask = self._check_video_inputs(pixel_values, pixel_mask)
        frozen = self.config.freeze == "visual_encoder" or (
            self.config.freeze == "backbone" and self.visual_encoder.temporal is None
        )
        with torch.set_grad_enabled(torch.is_grad_enabled() and not frozen):
            features = self.visual_encoder(pixel_values, pixel_mask)
        return features, pixel_mask

    def _visual_embeddings(self, pixel_values, pixel_mask, visual_features, visual_mask):
        if visual_features is None:
            if pixel_values is None:
                raise ValueError("Pass either pixel_values (+ pixel_mask) or visual_features (+ visual_mask).")
            visual_features, visual_mask = self.get_visual_features(pixel_values, pixel_mask)
        else:
            if visual_features.dim() != 3 or visual_features.shape[-1] != self.visual_encoder.output_size:
                raise ValueError(
                    f"visual_features must have shape (batch, steps, {self.visual_encoder.output_size}); "
                    f"got {tuple(visual_features.shape)}."
                )
            if visual_mask is None:
                visual_mask = torch.ones(visual_features.shape[:2], dtype=torch.long, device=visual_features.device)
            if tuple(visual_mask.shape) != tuple(visual_features.shape[:2]):
                raise ValueError(
                    f"visual_mask has shape {tuple(visual_mask.shape)}, expected {tuple(visual_features.shape[:2])}."
                )
        embeds = self.adapter(visual_features) * self.visual_embedding_scale
        embeds = embeds.masked_fill(~visual_mask.bool()[..., None], 0.0)
        return embeds, visual_mask.long(), visual_features

    # ----------------------------------------------------------------------------------------
    # Decoder-only language models: a left-padded visual prefix, then the text.

    def _separator_token_id(self) -> int:
        text_config = self.config.text_config
        token_id = text_config.bos_token_id if text_config.bos_token_id is not None else text_config.eos_token_id
        if isinstance(token_id, list):
            token_id = token_id[0]
        if token_id is None:
            raise ValueError("The decoder-only language model's config has neither bos_token_id nor eos_token_id.")
        return token_id

    def _causal_prefix(self, embeds, mask):
        """Left-align padding so the visual prefix ends right before the text (as `generate` expects)."""
        lengths = mask.sum(1)
        num_steps = mask.shape[1]
        positions = torch.arange(num_steps, device=mask.device)
        # Source index for each target slot: shift each row right by its padding length.
        shift = (num_steps - lengths)[:, None]
        source = (positions[None, :] - shift).clamp(min=0)
        prefix_mask = (positions[None, :] >= shift).long()
        prefix = torch.gather(embeds, 1, source[..., None].expand(-1, -1, embeds.shape[-1]))
        prefix = prefix * prefix_mask[..., None].to(prefix.dtype)
        separator = torch.full((mask.shape[0], 1), self._separator_token_id(), device=mask.device)
        prefix = torch.cat([prefix, self.get_input_embeddings()(separator).to(prefix.dtype)], dim=1)
        prefix_mask = torch.cat([prefix_mask, torch.ones_like(separator)], dim=1)
        return prefix, prefix_mask

    # ----------------------------------------------------------------------------------------

    def forward(
        self,
        pixel_values: torch.FloatTensor | None = None,
        pixel_mask: torch.LongTensor | None = None,
        labels: torch.LongTensor | None = None,
        visual_features: torch.FloatTensor | None = None,
        visual_mask: torch.LongTensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.LongTensor | None = None,
        **kwargs,
    ) -> FlaLlmOutput:
        r"""
        pixel_values (`torch.FloatTensor` of shape `(batch, frames, 3, height, width)`):
            Normalised, frame-sampled video frames (see `FlaLlmVideoProcessor`).
        pixel_mask (`torch.LongTensor` of shape `(batch, frames)`):
            1 for real frames, 0 for padding.
        labels (`torch.LongTensor` of shape `(batch, target_length)`):
            Target token ids, -100 where padded (ignored by the loss).
        visual_features, visual_mask:
            Precomputed output of `get_visual_features`, instead of `pixel_values`.
        """
        embeds, mask, visual_features = self._visual_embeddings(pixel_values, pixel_mask, visual_features, visual_mask)
        if self.config.is_encoder_decoder:
            if decoder_input_ids is None:
                if labels is None:
                    raise ValueError("An encoder-decoder language model needs labels or decoder_input_ids.")
                decoder_input_ids = self._shift_labels(labels)
            if self.training and self.config.decoder_word_dropout > 0:
                decoder_input_ids = self._drop_decoder_words(decoder_input_ids)
            outputs = self.language_model(
                inputs_embeds=embeds,
                attention_mask=mask,
                decoder_input_ids=decoder_input_ids,
                decoder_attention_mask=decoder_attention_mask,
                **kwargs,
            )
            logits = outputs.logits
            bag_of_words_input = outputs.encoder_last_hidden_state
        else:
            if labels is None:
                raise ValueError("A decoder-only language model needs labels in forward; use generate() to translate.")
            prefix, prefix_mask = self._causal_prefix(embeds, mask)
            text_mask = labels.ne(-100).long()
            text_ids = labels.masked_fill(labels.eq(-100), self._separator_token_id())
            # The separator at the end of the prefix predicts the first token; the last token is not fed.
            text_embeds = self.get_input_embeddings()(text_ids[:, :-1]).to(prefix.dtype)
            inputs_embeds = torch.cat([prefix, text_embeds], dim=1)
            attention_mask = torch.cat([prefix_mask, text_mask[:, :-1]], dim=1)
            position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
            outputs = self.language_model(
                inputs_embeds=inputs_embeds, attention_mask=attention_mask, position_ids=position_ids, **kwargs
            )
            logits = outputs.logits[:, prefix.shape[1] - 1 :]
            bag_of_words_input = embeds

        loss = None
        if labels is not None:
            loss = F.cross_entropy(
                logits.float().reshape(-1, logits.shape[-1]),
                labels.reshape(-1),
                ignore_index=-100,
                label_smoothing=self.config.label_smoothing,
            )
            if self.bag_of_words_head is not None and self.training:
                loss = loss + self.config.bag_of_words_weight * self.bag_of_words_loss(bag_of_words_input, mask, labels)
        return FlaLlmOutput(loss=loss, logits=logits, visual_features=visual_features, visual_mask=mask)

    def _drop_decoder_words(self, decoder_input_ids: torch.LongTensor) -> torch.LongTensor:
        """Word dropout (config.decoder_word_dropout): random decoder inputs after the first become padding."""
        drop = torch.rand(decoder_input_ids.shape, device=decoder_input_ids.device) < self.config.decoder_word_dropout
        drop[:, 0] = False
        return decoder_input_ids.masked_fill(drop, self.config.text_config.pad_token_id)

    def bag_of_words_loss(self, hidden_states, visual_mask, labels) -> torch.Tensor:
        """Binary cross-entropy of "token v occurs in the target" against the head's logits pooled over time,
        summed over the vocabulary and divided by the number of tokens that occur (special tokens left out).

        `hidden_states`: the language model encoder's output over the visual input (encoder-decoder language
        models; the visual embeddings for decoder-only ones): where the decoder reads, so that this loss keeps
        what the decoder reads informative about the sentence from the first step on."""
        logits = self.bag_of_words_head(hidden_states.float())
        valid = visual_mask.bool()[..., None]
        # Mean over time: every step gets a gradient from the first step on (max pooling reaches one step a token).
        logits = logits.masked_fill(~valid, 0.0).sum(1) / valid.sum(1).clamp(min=1)
        targets = torch.zeros_like(logits)
        rows = torch.arange(labels.shape[0], device=labels.device)[:, None].expand_as(labels)
        present = labels.ne(-100)
        targets[rows[present], labels[present]] = 1.0
        text_config = self.config.text_config
        special = {
            getattr(text_config, name, None)
            for name in ("pad_token_id", "bos_token_id", "eos_token_id", "decoder_start_token_id")
        }
        special = [i for i in special if isinstance(i, int) and 0 <= i < targets.shape[1]]
        targets[:, special] = 0.0
        weights = torch.ones_like(targets)
        weights[:, special] = 0.0
        loss = F.binary_cross_entropy_with_logits(logits, targets, weight=weights, reduction="sum")
        return loss / targets.sum().clamp(min=1.0)

    def _shift_labels(self, labels: torch.LongTensor) -> torch.LongTensor:
        """Decoder inputs from labels, the way the language model itself builds them
        (mBART wraps the language code to the front, T5 starts with the pad token)."""
        if hasattr(self.language_model, "prepare_decoder_input_ids_from_labels"):
            return self.language_model.prepare_decoder_input_ids_from_labels(labels=labels)
        text_config = self.config.text_config
        start = text_config.decoder_start_token_id
        shifted = labels.new_full(labels.shape, start)
        shifted[:, 1:] = labels[:, :-1]
        return shifted.masked_fill(shifted.eq(-100), text_config.pad_token_id)

    @torch.no_grad()
    def generate(
        self,
        pixel_values: torch.FloatTensor | None = None,
        pixel_mask: torch.LongTensor | None = None,
        visual_features: torch.FloatTensor | None = None,
        visual_mask: torch.LongTensor | None = None,
        **generate_kwargs,
    ) -> torch.LongTensor:
        """Translate videos: beam search (5 beams by default) in the language model.

        Returns the generated token ids; for decoder-only language models only the new tokens.
        """
        embeds, mask, _ = self._visual_embeddings(pixel_values, pixel_mask, visual_features, visual_mask)
        generation_config = copy.deepcopy(generate_kwargs.pop("generation_config", None) or self.generation_config)
        generate_kwargs = generation_config.update(**generate_kwargs)
        generate_kwargs["generation_config"] = generation_config
        if not self.config.is_encoder_decoder:
            embeds, mask = self._causal_prefix(embeds, mask)
        return self.language_model.generate(inputs_embeds=embeds, attention_mask=mask, **generate_kwargs)

    # ----------------------------------------------------------------------------------------
    # Building models for each stage

    @classmethod
    def from_vision_pretrained(
        cls, vision_model_name_or_path: str = "microsoft/resnet-18", config: FlaLlmConfig | None = None, **kwargs
    ) -> "FlaLlmForSignTranslation":
        """A fresh model whose backbone starts from pre-trained (ImageNet) ResNet weights.

        The backbone is loaded with transformers' own `from_pretrained`, so a Hub id such as
        `microsoft/resnet-18` (an image classifier checkpoint) or a local directory both work.
        """
        backbone = AutoModel.from_pretrained(vision_model_name_or_path, **kwargs)
        if backbone.config.model_type != "resnet":
            raise ValueError(
                f"{vision_model_name_or_path!r} is a {backbone.config.model_type!r} model; FLa-LLM needs a ResNet backbone."
            )
        config = config if config is not None else FlaLlmConfig()
        config.vision_config = backbone.config
        model = cls(config)
        model.visual_encoder.backbone.load_state_dict(backbone.state_dict())
        return model

    @classmethod
    def from_stage1(
        cls,
        stage1: "str | os.PathLike | FlaLlmForSignTranslation",
        language_model: "str | os.PathLike | PreTrainedModel" = "facebook/mbart-large-cc25",
        freeze: str = "visual_encoder",
        **config_overrides,
    ) -> "FlaLlmForSignTranslation":
        """Stage 2 from stage 1 (paper, "LLM fine-tuning"): keep the trained visual encoder, bridge it
        into a pre-trained language model through a fresh LLM-adapter, and freeze the encoder.

        `language_model` is a Hub id, a local directory or an already-loaded model (for example one
        whose vocabulary was trimmed with `modeling_flallm.trim_vocabulary`).
        """
        if not isinstance(stage1, FlaLlmForSignTranslation):
            stage1 = cls.from_pretrained(stage1)
        if not isinstance(language_model, PreTrainedModel):
            lm_config = AutoConfig.from_pretrained(language_model)
            language_model = _language_model_class(lm_config).from_pretrained(language_model)
        stage1_config = stage1.config
        settings = {
            "frame_sample_rate": stage1_config.frame_sample_rate,
            "temporal_kernel_size": stage1_config.temporal_kernel_size,
            "temporal_hidden_size": stage1_config.temporal_hidden_size,
            "adapter_hidden_size": stage1_config.adapter_hidden_size,
            "adapter_input": stage1_config.adapter_input,
            "max_frames": stage1_config.max_frames,
            "label_smoothing": stage1_config.label_smoothing,
            "freeze": freeze,
            "stage": "llm_fine_tuning",
        }
        settings.update(config_overrides)
        keep_light_t = settings["adapter_input"] == "light_t"
        if keep_light_t:
            if stage1_config.adapter_input != "sign" or not stage1_config.is_encoder_decoder:
                raise ValueError(
                    "adapter_input='light_t' needs a stage-1 model with sign-wise features and an encoder-decoder "
                    f"Light-T; this one has adapter_input={stage1_config.adapter_input!r}."
                )
            settings["light_t_config"] = stage1_config.text_config.to_dict()
            settings["light_t_adapter_hidden_size"] = stage1_config.adapter_hidden_size
        config = FlaLlmConfig(
            vision_config=stage1_config.vision_config.to_dict(), text_config=language_model.config.to_dict(), **settings
        )
        model = cls(config, language_model=language_model)
        # Take what the stage-2 encoder has (frame-wise input drops the temporal module); the
        # Light-T parts come from the stage-1 adapter and language model below.
        target = model.visual_encoder.state_dict()
        shared = {k: v for k, v in stage1.visual_encoder.state_dict().items() if k in target}
        missing = [k for k in target if k not in shared and not k.startswith(("vl_adapter.", "light_t_encoder."))]
        if missing:
            raise ValueError(f"The stage-1 visual encoder does not fit the stage-2 config: it lacks {missing}.")
        model.visual_encoder.load_state_dict(shared, strict=False)
        if keep_light_t:
            model.visual_encoder.vl_adapter.load_state_dict(stage1.adapter.state_dict())
            model.visual_encoder.light_t_encoder.load_state_dict(stage1.language_model.get_encoder().state_dict())
        if language_model.generation_config is not None:
            model.generation_config = GenerationConfig.from_dict(language_model.generation_config.to_dict())
        model.generation_config.num_beams = stage1.generation_config.num_beams
        model.generation_config.max_new_tokens = stage1.generation_config.max_new_tokens
        model._apply_freeze()
        return model

    # ----------------------------------------------------------------------------------------
    # LoRA (peft) for the language model

    def _wrap_with_lora(self):
        from peft import LoraConfig, get_peft_model

        lora_config = LoraConfig(
            r=self.config.lora_rank,
            lora_alpha=self.config.lora_alpha,
            lora_dropout=self.config.lora_dropout,
            target_modules=self.config.lora_target_modules or "all-linear",
        )
        self.language_model = get_peft_model(self.language_model, lora_config)
        # peft moves the language model under `base_model.model`; keep weight tying pointed at it.
        prefix, wrapped = "language_model.", "language_model.base_model.model."
        self.all_tied_weights_keys = {
            key.replace(prefix, wrapped, 1): value.replace(prefix, wrapped, 1)
            for key, value in self.all_tied_weights_keys.items()
        }

    def save_lora_adapter(self, save_directory: str | os.PathLike):
        """Save only the LoRA weights of the language model (peft's adapter format)."""
        self._require_lora()
        self.language_model.save_pretrained(save_directory)

    def load_lora_adapter(self, adapter_directory: str | os.PathLike):
        """Load LoRA weights saved with `save_lora_adapter` into this model."""
        from peft import set_peft_model_state_dict
        from peft.utils import load_peft_weights

        self._require_lora()
        set_peft_model_state_dict(self.language_model, load_peft_weights(str(adapter_directory)))

    def merge_lora(self):
        """Fold the LoRA weights into the language model; the model then saves as a plain checkpoint."""
        self._require_lora()
        self.language_model = self.language_model.merge_and_unload()
        self.config.use_lora = False
        return self

    def _require_lora(self):
        if not getattr(self.config, "use_lora", False):
            raise ValueError("This model has no LoRA adapter: build it with FlaLlmConfig(use_lora=True, ...).")


__all__ = ["FlaLlmForSignTranslation", "FlaLlmPreTrainedModel", "FlaLlmOutput"]
