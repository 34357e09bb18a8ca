"""SignTranslationCollator / build_dataloader with the real FlaLlmProcessor, and a model forward on a batch."""

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import MBartConfig, PreTrainedTokenizerFast

from data_builders import SignTranslationCollator, build_dataloader, load_sign_dataset, synthetic_text
from data_builders import collator as collator_module
from data_builders.prepare import prepare_dataset
from data_builders.testing import write_phoenix14t
from modeling_flallm import FlaLlmConfig, FlaLlmForSignTranslation, FlaLlmProcessor, FlaLlmVideoProcessor

SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]


def word_tokenizer(sentences) -> PreTrainedTokenizerFast:
    words = sorted({word for sentence in sentences for word in sentence.split()})
    tokenizer = Tokenizer(models.WordLevel({t: i for i, t in enumerate(SPECIALS + words)}, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 2)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return load_sign_dataset(
        "synthetic",
        cache_dir=str(tmp_path_factory.mktemp("cache")),
        num_train=12,
        num_validation=4,
        num_test=4,
        resolution=32,
    )


@pytest.fixture(scope="module")
def processor(synthetic):
    texts = synthetic_text(3000, seed=0, split=None)
    video_processor = FlaLlmVideoProcessor(frame_sample_rate=4, size=32, crop_size=32, max_frames=64)
    return FlaLlmProcessor(video_processor=video_processor, tokenizer=word_tokenizer(texts))


def test_batch_holds_padded_kept_frames_and_labels(synthetic, processor, monkeypatch):
    decoded = []
    real_decode = collator_module.decode_video
    monkeypatch.setattr(
        collator_module,
        "decode_video",
        lambda video, indices, **kwargs: decoded.append(list(indices)) or real_decode(video, indices, **kwargs),
    )
    examples = [synthetic["validation"][i] for i in range(3)]
    batch = SignTranslationCollator(processor)(examples)
    kept = [processor.video_processor.sample_frame_indices(e["num_frames"], training=False) for e in examples]
    assert decoded == [list(k) for k in kept]  # only the kept frames were decoded
    assert len(kept[0]) == -(-examples[0]["num_frames"] // 4)
    longest = max(len(k) for k in kept)
    assert batch["pixel_values"].shape == (3, longest, 3, 32, 32) and batch["pixel_values"].dtype == torch.float32
    assert batch["pixel_mask"].sum(1).tolist() == [len(k) for k in kept]
    assert processor.batch_decode(batch["labels"].clamp(min=0)) == [e["text"] for e in examples]
    assert (batch["labels"] != -100).sum(1).tolist() == [len(e["text"].split()) + 1 for e in examples]  # words + </s>
    assert set(batch) == {"pixel_values", "pixel_mask", "labels"}


def test_training_sampling_is_random_and_ids_and_inference_mode(synthetic, processor):
    examples = [synthetic["train"][i] for i in range(4)]
    torch.manual_seed(0)
    first = SignTranslationCollator(processor, training=True)(examples)["pixel_values"]
    second = SignTranslationCollator(processor, training=True)(examples)["pixel_values"]
    assert first.shape != second.shape or not torch.equal(first, second)
    batch = SignTranslationCollator(processor, with_labels=False, return_ids=True)(examples)
    assert "labels" not in batch and batch["ids"] == [e["id"] for e in examples]
    video_only = SignTranslationCollator(processor.video_processor)(examples)
    assert set(video_only) == {"pixel_values", "pixel_mask"}


def test_raw_and_prepared_give_the_same_batch(tmp_path, processor):
    release = write_phoenix14t(tmp_path / "raw")
    raw = load_sign_dataset("phoenix14t", release, cache_dir=str(tmp_path / "cache"))["train"]
    prepared = load_sign_dataset(str(prepare_dataset("phoenix14t", tmp_path / "out", data_dir=release)))["train"]
    video_only = SignTranslationCollator(processor.video_processor)
    a, b = video_only(list(raw)), video_only(list(prepared))
    assert torch.equal(a["pixel_mask"], b["pixel_mask"])
    assert (a["pixel_values"] - b["pixel_values"]).abs().max() < 0.1  # JPEG, in normalised units


def test_dataloader_with_workers_feeds_the_model(synthetic, processor):
    loader = build_dataloader(synthetic["train"], processor, batch_size=5, training=True, num_workers=2, seed=0)
    assert loader.pin_memory is torch.cuda.is_available()
    batches = list(loader)
    assert [b["pixel_values"].shape[0] for b in batches] == [5, 5, 2]
    ordered = build_dataloader(synthetic["validation"], processor, batch_size=4, return_ids=True)
    assert next(iter(ordered))["ids"] == synthetic["validation"]["id"]

    text_config = MBartConfig(
        encoder_layers=1,
        decoder_layers=1,
        d_model=16,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        vocab_size=len(processor.tokenizer),
        max_position_embeddings=64,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        decoder_start_token_id=2,
    )
    config = FlaLlmConfig(
        vision_config={"embedding_size": 8, "hidden_sizes": [8, 16], "depths": [1, 1], "layer_type": "basic"},
        text_config=text_config.to_dict(),
        temporal_hidden_size=16,
        adapter_hidden_size=16,
        max_frames=64,
    )
    torch.manual_seed(0)
    loss = FlaLlmForSignTranslation(config)(**batches[0]).loss
    assert torch.isfinite(loss) and loss.item() > 0


def test_streaming_split_through_the_dataloader(processor):
    streamed = load_sign_dataset("synthetic", streaming=True, num_train=6, num_validation=1, num_test=1, resolution=32)
    batches = list(build_dataloader(streamed["train"], processor, batch_size=4, training=True, seed=1))
    assert sum(b["pixel_values"].shape[0] for b in batches) == 6
    assert np.all([b["labels"].shape[0] == b["pixel_values"].shape[0] for b in batches])
