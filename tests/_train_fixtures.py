"""Tiny training configs and data for the training tests (CPU, seconds per run)."""

import copy

import pytest
import torch

from data_builders import load_sign_dataset

TINY_VISION = {"embedding_size": 8, "hidden_sizes": [8, 16], "depths": [1, 1], "layer_type": "basic"}
TINY_LIGHT_T = {
    "encoder_layers": 1,
    "decoder_layers": 1,
    "d_model": 16,
    "encoder_attention_heads": 2,
    "decoder_attention_heads": 2,
    "encoder_ffn_dim": 32,
    "decoder_ffn_dim": 32,
    "max_position_embeddings": 128,
}

STAGE1 = {
    "stage": 1,
    "seed": 0,
    "data": {"dataset": "synthetic", "num_workers": 0, "test_split": None, "max_target_length": 24},
    "model": {
        "vision_model": None,
        "train_tokenizer": {"vocab_size": 120},
        "light_t": TINY_LIGHT_T,
        "config": {
            "vision_config": TINY_VISION,
            "temporal_hidden_size": 16,
            "adapter_hidden_size": 16,
            "max_frames": 32,
            "frame_sample_rate": 4,
        },
        "video_processor": {"size": 16, "crop_size": 16},
    },
    "training": {"epochs": 2, "batch_size": 4, "log_every_steps": 1},
    "evaluation": {"num_beams": 1, "max_new_tokens": 8},
    "logging": {"report_to": "none"},
}


def stage1_config(output_dir, **sections) -> dict:
    """The tiny stage-1 config with `sections` merged in (e.g. training={"epochs": 1})."""
    config = copy.deepcopy(STAGE1)
    config["output_dir"] = str(output_dir)
    for key, value in sections.items():
        if isinstance(value, dict):
            config.setdefault(key, {}).update(value)
        else:
            config[key] = value
    return config


def tiny_corpus(cache_dir, num_train: int = 16, num_validation: int = 4, num_test: int = 4):
    """The synthetic corpus at 16x16 pixels, a few short clips per split."""
    return load_sign_dataset(
        "synthetic",
        cache_dir=str(cache_dir),
        num_train=num_train,
        num_validation=num_validation,
        num_test=num_test,
        resolution=16,
        fps=8.0,
    )


@pytest.fixture(scope="module", autouse=True)
def single_thread():
    """Tiny models train faster on one thread (and far faster than two on a busy 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
