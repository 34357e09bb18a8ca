"""train.lm_pretraining: mBART text infilling and the small denoising LM the demo uses as stage 2's LLM."""

import json

import numpy as np
import pytest
import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from data_builders import synthetic_text
from modeling_flallm.tokenization_flallm import train_tokenizer
from train.lm_pretraining import MASK_TOKEN, add_mask_token, pretrain_denoising_lm, text_infilling

MASK, EOS = 99, 2
TINY = {
    "d_model": 32,
    "encoder_layers": 1,
    "decoder_layers": 1,
    "encoder_attention_heads": 2,
    "decoder_attention_heads": 2,
    "encoder_ffn_dim": 64,
    "decoder_ffn_dim": 64,
    "max_position_embeddings": 64,
}


def _is_subsequence(short, long):
    it = iter(long)
    return all(any(x == y for y in it) for x in short)


def test_text_infilling_masks_about_35_percent_in_spans_each_replaced_by_one_mask():
    rng = np.random.default_rng(0)
    masked_fraction, masks_per_sequence = [], []
    for _ in range(2000):
        tokens = list(range(10, 30)) + [EOS]  # 20 maskable tokens, all distinct
        noised = text_infilling(tokens, MASK, rng, special_ids=[EOS])
        assert noised[-1] == EOS  # special tokens are never masked
        kept = [t for t in noised if t != MASK]
        assert _is_subsequence(kept, tokens)  # what is not masked stays, in order
        assert all(not (a == b == MASK) for a, b in zip(noised, noised[1:]))  # a span is ONE mask token
        masked_fraction.append(1 - (len(kept) - 1) / 20)
        masks_per_sequence.append(noised.count(MASK))
    assert 0.33 <= np.mean(masked_fraction) <= 0.37  # round(0.35 * 20) = 7 tokens, minus rare overlaps
    # 7 masked tokens in Poisson(3.5) spans (plus zero-length insertions): about 2-3 mask tokens, never 7 single ones.
    assert 1.5 <= np.mean(masks_per_sequence) <= 3.5


def test_text_infilling_span_lengths_follow_the_poisson_mean():
    rng = np.random.default_rng(1)
    lengths = []
    for _ in range(300):
        tokens = list(range(10, 2010))  # long sequences, 5% masked: spans rarely touch, only the last one is cut
        noised = text_infilling(tokens, MASK * 100, rng, mask_ratio=0.05)
        # Recover the span lengths from the gaps in the kept tokens (all distinct and increasing).
        kept = [t for t in noised if t != MASK * 100]
        lengths += [b - a - 1 for a, b in zip([9] + kept, kept + [2010]) if b - a > 1]
    # Poisson(3.5) spans; zero-length ones insert a mask and drop nothing: E[L | L > 0] = 3.5 / (1 - e^-3.5) = 3.6.
    assert 3.3 <= np.mean(lengths) <= 3.9


def test_text_infilling_edge_cases():
    rng = np.random.default_rng(0)
    assert text_infilling([5, 6, 7, EOS], MASK, rng, mask_ratio=0.0, special_ids=[EOS]) == [5, 6, 7, EOS]
    assert text_infilling([EOS], MASK, rng, special_ids=[EOS]) == [EOS]
    assert text_infilling([5, 6, 7, EOS], MASK, rng, mask_ratio=1.0, special_ids=[EOS]) == [MASK, EOS]
    with pytest.raises(ValueError, match="mask_ratio"):
        text_infilling([5], MASK, rng, mask_ratio=1.5)
    with pytest.raises(ValueError, match="poisson_lambda"):
        text_infilling([5], MASK, rng, poisson_lambda=0)


def test_add_mask_token_to_an_offline_tokenizer():
    tokenizer = train_tokenizer(synthetic_text(50, seed=0), vocab_size=300, model_type="bpe")
    assert tokenizer.mask_token is None
    size = len(tokenizer)
    mask_id = add_mask_token(tokenizer)
    assert tokenizer.mask_token == MASK_TOKEN and mask_id == size and len(tokenizer) == size + 1
    assert add_mask_token(tokenizer) == mask_id  # idempotent
    ids = tokenizer("the man <mask> the book")["input_ids"]
    assert mask_id in ids and ids[-1] == tokenizer.eos_token_id
    assert "<mask>" not in tokenizer.decode(ids, skip_special_tokens=True)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    texts = synthetic_text(300, seed=0)
    tokenizer = train_tokenizer(texts, vocab_size=300, model_type="bpe")
    output = tmp_path_factory.mktemp("lm") / "lm"
    torch.manual_seed(123)  # the function must not depend on the global seed
    path = pretrain_denoising_lm(
        texts,
        tokenizer,
        output,
        model_config=TINY,
        validation_texts=synthetic_text(40, seed=5, split="validation"),
        epochs=6,
        batch_size=32,
        lr=3e-3,
        seed=0,
        progress=False,
    )
    return path, texts


def test_pretrained_lm_is_a_loadable_mbart_with_its_tokenizer_and_it_learned(pretrained):
    path, _ = pretrained
    for name in ("config.json", "model.safetensors", "generation_config.json", "tokenizer.json", "pretraining.json"):
        assert (path / name).is_file(), name
    assert not list(path.parent.glob(".tmp-*"))
    model = AutoModelForSeq2SeqLM.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    assert model.config.model_type == "mbart" and model.config.d_model == 32
    assert tokenizer.mask_token == MASK_TOKEN and model.config.vocab_size == len(tokenizer)
    assert model.config.decoder_start_token_id == tokenizer.eos_token_id
    summary = json.loads((path / "pretraining.json").read_text())
    assert summary["mask_ratio"] == 0.35 and summary["poisson_lambda"] == 3.5 and summary["steps"] == 6 * 10
    # Held-out sentences (validation split: never seen) are reconstructed much better than at initialisation.
    assert summary["validation_loss_after"] < 0.75 * summary["validation_loss_before"]
    losses = [record["train_loss"] for record in summary["history"]]
    assert losses[-1] < losses[0]
    inputs = tokenizer(["the man <mask> the book"], return_tensors="pt")
    output = model.generate(**inputs, num_beams=2, max_new_tokens=12)
    assert isinstance(tokenizer.decode(output[0], skip_special_tokens=True), str)


def test_pretraining_is_deterministic_given_the_seed(pretrained, tmp_path):
    path, texts = pretrained
    tokenizer = train_tokenizer(texts, vocab_size=300, model_type="bpe")
    again = pretrain_denoising_lm(
        texts,
        tokenizer,
        tmp_path / "again",
        model_config=TINY,
        epochs=1,
        batch_size=32,
        lr=3e-3,
        seed=0,
        progress=False,
    )
    other = pretrain_denoising_lm(
        texts,
        tokenizer,
        tmp_path / "again2",
        model_config=TINY,
        epochs=1,
        batch_size=32,
        lr=3e-3,
        seed=0,
        progress=False,
    )
    a = AutoModelForSeq2SeqLM.from_pretrained(again).state_dict()
    b = AutoModelForSeq2SeqLM.from_pretrained(other).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_bad_input(tmp_path):
    tokenizer = train_tokenizer(synthetic_text(20, seed=0), vocab_size=300, model_type="bpe")
    with pytest.raises(ValueError, match="texts is empty"):
        pretrain_denoising_lm([], tokenizer, tmp_path / "x")
    with pytest.raises(ValueError, match="epochs"):
        pretrain_denoising_lm(["a b"], tokenizer, tmp_path / "x", epochs=0)
