"""train.gloss_to_text: the gloss-to-text ceiling (the LM fine-tuned on the gold signs with stage 2's budget)."""

import pytest
import torch
from transformers import MBartConfig, MBartForConditionalGeneration

from data_builders import synthetic_text
from modeling_flallm.tokenization_flallm import train_tokenizer
from train.gloss_to_text import gloss_source, gloss_to_text_ceiling
from train.metrics import load_metric

TINY = {
    "d_model": 32,
    "encoder_layers": 1,
    "decoder_layers": 1,
    "encoder_attention_heads": 2,
    "decoder_attention_heads": 2,
    "encoder_ffn_dim": 64,
    "decoder_ffn_dim": 64,
    "max_position_embeddings": 64,
    "dropout": 0.0,
}


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("lm")
    tokenizer = train_tokenizer(synthetic_text(300, seed=1, split=None), vocab_size=300, model_type="bpe")
    config = MBartConfig(
        **TINY,
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.eos_token_id,
        forced_eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    MBartForConditionalGeneration(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


# A word-for-word "sign language": the gloss is the sentence in capitals, so a few epochs learn to copy it.
TEXTS = ["the dog runs", "the cat sleeps", "a bird sings", "the dog sleeps", "a cat runs", "the bird runs"] * 6
CORPUS = {
    "train": {"gloss": [t.upper() for t in TEXTS], "text": TEXTS},
    "test": {"gloss": ["THE CAT SLEEPS", "A DOG RUNS"], "text": ["the cat sleeps", "a dog runs"]},
}


def test_gloss_source_is_lower_case_text():
    assert gloss_source("LAST-WEEK  MAN BIG NOT") == "last-week man big not"


def test_the_ceiling_scores_the_test_split_and_learns_from_the_glosses(lm_dir):
    untrained = gloss_to_text_ceiling(lm_dir, CORPUS, epochs=1, lr=1e-9, num_beams=1, seed=0)
    trained = gloss_to_text_ceiling(lm_dir, CORPUS, epochs=30, batch_size=8, lr=3e-3, num_beams=2, seed=0)
    for result in (untrained, trained):
        assert len(result["predictions"]) == 2
        expected = load_metric().compute(
            predictions=[p.strip() for p in result["predictions"]], references=CORPUS["test"]["text"], language="en"
        )
        assert result["bleu4"] == pytest.approx(expected["bleu4"])
    assert trained["steps"] == 30 * 5
    assert trained["bleu1"] > untrained["bleu1"] + 30  # the copy task is learnt


def test_a_corpus_without_glosses_is_refused(lm_dir):
    with pytest.raises(ValueError, match="gloss"):
        gloss_to_text_ceiling(lm_dir, {"train": {"text": TEXTS}, "test": {"text": TEXTS}})
