"""Tiny FLa-LLM building blocks shared by the model tests (CPU, a few frames, a few kB of weights)."""

import numpy as np
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import LlamaConfig, MBartConfig, PreTrainedTokenizerFast

from modeling_flallm import FlaLlmConfig, FlaLlmForSignTranslation, FlaLlmProcessor, FlaLlmVideoProcessor

TINY_VISION = {"embedding_size": 8, "hidden_sizes": [8, 16], "depths": [1, 1], "layer_type": "basic"}
WORDS = [
    "und",
    "nun",
    "die",
    "wettervorhersage",
    "für",
    "morgen",
    "donnerstag",
    "den",
    "zwölften",
    "august",
    "regen",
    "sonne",
]
SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """Word-level tokenizer over `WORDS`: ids 0-3 are <s>, <pad>, </s>, <unk> as in mBART."""
    vocab = {token: i for i, token in enumerate(SPECIALS + WORDS)}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 2)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )


def tiny_mbart_config(vocab_size: int = len(SPECIALS) + len(WORDS), d_model: int = 16) -> MBartConfig:
    return MBartConfig(
        encoder_layers=1,
        decoder_layers=1,
        d_model=d_model,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        vocab_size=vocab_size,
        max_position_embeddings=64,
        scale_embedding=True,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        decoder_start_token_id=2,
        forced_eos_token_id=None,
        dropout=0.0,
    )


def tiny_llama_config(vocab_size: int = len(SPECIALS) + len(WORDS)) -> LlamaConfig:
    return LlamaConfig(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        vocab_size=vocab_size,
        max_position_embeddings=128,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
    )


def tiny_config(text_config=None, **kwargs) -> FlaLlmConfig:
    settings = {"temporal_hidden_size": 16, "adapter_hidden_size": 16, "max_frames": 64}
    settings.update(kwargs)
    text_config = text_config if text_config is not None else tiny_mbart_config()
    return FlaLlmConfig(vision_config=dict(TINY_VISION), text_config=text_config.to_dict(), **settings)


def tiny_model(text_config=None, seed: int = 0, **kwargs) -> FlaLlmForSignTranslation:
    torch.manual_seed(seed)
    return FlaLlmForSignTranslation(tiny_config(text_config, **kwargs))


def tiny_processor(frame_sample_rate: int = 1) -> FlaLlmProcessor:
    video_processor = FlaLlmVideoProcessor(frame_sample_rate=frame_sample_rate, size=32, crop_size=32, max_frames=64)
    return FlaLlmProcessor(video_processor=video_processor, tokenizer=tiny_tokenizer())


def random_video(num_frames: int, height: int = 32, width: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (num_frames, height, width, 3), dtype=np.uint8)
