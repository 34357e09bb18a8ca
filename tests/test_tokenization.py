"""train_tokenizer: mBART-like Unigram and byte-level BPE tokenizers trained offline."""

import gzip
import json
import random
from pathlib import Path

import pytest
from transformers import AutoTokenizer, PreTrainedTokenizerFast
from transformers.models.mbart.modeling_mbart import shift_tokens_right

from modeling_flallm.tokenization_flallm import train_tokenizer

REAL_TEXT = Path("/work/shared/data/real_text")
WORDS = [
    "am",
    "tag",
    "wechseln",
    "sonne",
    "und",
    "wolken",
    "einander",
    "ab",
    "im",
    "norden",
    "regnet",
    "es",
    "morgen",
    "gebietsweise",
    "kräftig",
    "in",
    "der",
    "nacht",
    "gibt",
    "es",
    "frost",
    "an",
    "den",
    "küsten",
    "weht",
    "ein",
    "frischer",
    "wind",
    "aus",
    "nordwest",
    "temperaturen",
    "zwölf",
    "grad",
    "the",
    "weather",
    "tomorrow",
    "will",
    "be",
    "sunny",
    "with",
    "a",
    "few",
    "clouds",
    "and",
    "rain",
    "later",
    "in",
    "the",
    "evening",
    "明天",
    "北方",
    "有",
    "雨",
    "南方",
    "晴",
    "气温",
    "十二",
    "度",
]


def make_corpus(num_sentences=300, seed=0):
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12))) for _ in range(num_sentences)]


CORPUS = make_corpus()


@pytest.fixture(scope="module")
def unigram():
    return train_tokenizer(CORPUS, vocab_size=300, language_codes=["de_DE", "en_XX", "zh_CN"], target_language="de_DE")


@pytest.fixture(scope="module")
def bpe():
    return train_tokenizer(CORPUS, vocab_size=500, model_type="bpe", language_codes=["de_DE", "en_XX"], add_bos=True)


def test_unigram_has_mbart_layout(unigram):
    assert isinstance(unigram, PreTrainedTokenizerFast)
    assert unigram.convert_ids_to_tokens([0, 1, 2, 3]) == ["<s>", "<pad>", "</s>", "<unk>"]
    assert (unigram.bos_token_id, unigram.pad_token_id, unigram.eos_token_id, unigram.unk_token_id) == (0, 1, 2, 3)
    assert len(unigram) <= 300
    # Language codes follow the learned pieces, as in mbart-large-cc25, and are in the Unigram piece list too.
    n = len(unigram)
    assert unigram.convert_ids_to_tokens([n - 3, n - 2, n - 1]) == ["de_DE", "en_XX", "zh_CN"]
    state = json.loads(unigram.backend_tokenizer.to_str())
    assert state["model"]["type"] == "Unigram" and state["model"]["unk_id"] == 3
    assert [piece for piece, _ in state["model"]["vocab"][-3:]] == ["de_DE", "en_XX", "zh_CN"]
    assert state["pre_tokenizer"]["pretokenizers"][1]["type"] == "Metaspace"
    assert set(unigram.all_special_tokens) == {"<s>", "<pad>", "</s>", "<unk>", "de_DE", "en_XX", "zh_CN"}


def test_unigram_encodes_mbart_labels(unigram):
    ids = unigram("im norden regnet es").input_ids
    de = unigram.convert_tokens_to_ids("de_DE")
    assert ids[-2:] == [unigram.eos_token_id, de]
    assert unigram.convert_ids_to_tokens(ids[0]).startswith("▁")
    assert unigram(text_target="im norden regnet es").input_ids == ids
    # mBART's decoder input is the label sequence rotated: the language code becomes the start token.
    batch = unigram(["im norden", "am tag wechseln sonne und wolken"], padding=True, return_tensors="pt")
    decoder_input_ids = shift_tokens_right(batch.input_ids, unigram.pad_token_id)
    assert decoder_input_ids[:, 0].tolist() == [de, de]
    # A language code in the text is one token, not split into pieces.
    assert unigram("en_XX", add_special_tokens=False).input_ids == [unigram.convert_tokens_to_ids("en_XX")]


@pytest.mark.parametrize("name", ["unigram", "bpe"])
def test_round_trip_is_lossless(name, request):
    tokenizer = request.getfixturevalue(name)
    texts = CORPUS[:50] + ["  im   norden  regnet es  ", "明天 北方 有 雨"]
    for text in texts:
        ids = tokenizer(text).input_ids
        # SentencePiece-style Unigram collapses whitespace; byte-level BPE keeps every byte.
        expected = " ".join(text.split()) if name == "unigram" else text
        assert tokenizer.decode(ids, skip_special_tokens=True) == expected
        assert tokenizer.unk_token_id not in ids


def test_bpe_is_byte_level_with_specials_at_the_end(bpe):
    state = json.loads(bpe.backend_tokenizer.to_str())
    assert state["model"]["type"] == "BPE" and state["model"]["merges"]
    assert state["pre_tokenizer"]["type"] == "ByteLevel"
    assert state["post_processor"]["type"] == "Sequence"
    n = len(bpe)
    assert bpe.convert_ids_to_tokens(list(range(n - 6, n))) == ["<s>", "<pad>", "</s>", "<unk>", "de_DE", "en_XX"]
    ids = bpe("sunny").input_ids
    assert ids[0] == bpe.bos_token_id and ids[-1] == bpe.eos_token_id
    # Text the trainer never saw still encodes exactly (bytes), with no <unk>.
    unseen = "Übermorgen: ⛈ Gewitter! Ωmega 雪"
    ids = bpe(unseen, add_special_tokens=False).input_ids
    assert bpe.unk_token_id not in ids
    assert bpe.decode(ids) == unseen


def test_post_processor_options():
    tokenizer = train_tokenizer(CORPUS, vocab_size=200, add_bos=True, add_eos=False)
    ids = tokenizer("am tag").input_ids
    assert ids[0] == tokenizer.bos_token_id and tokenizer.eos_token_id not in ids
    pair = tokenizer("am tag", "im norden").input_ids
    assert pair[0] == tokenizer.bos_token_id and pair.count(tokenizer.bos_token_id) == 1


@pytest.mark.parametrize("name", ["unigram", "bpe"])
def test_save_and_reload_with_auto_tokenizer(name, request, tmp_path):
    tokenizer = request.getfixturevalue(name)
    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert reloaded.get_vocab() == tokenizer.get_vocab()
    assert reloaded.all_special_tokens == tokenizer.all_special_tokens
    batch = CORPUS[:20]
    assert reloaded(batch).input_ids == tokenizer(batch).input_ids
    assert reloaded.batch_decode(reloaded(batch).input_ids, skip_special_tokens=True) == [
        " ".join(t.split()) for t in batch
    ]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"model_type": "wordpiece"}, "model_type must be one of"),
        ({"language_codes": ["de_DE"], "target_language": "en_XX"}, "target_language"),
        ({"language_codes": ["de_DE", "de_DE"]}, "distinct"),
        ({"language_codes": ["<pad>"]}, "distinct"),
        ({"vocab_size": 5}, "vocab_size must exceed"),
        ({"vocab_size": 200, "model_type": "bpe"}, "vocab_size must exceed 260"),
    ],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        train_tokenizer(CORPUS[:10], **{"vocab_size": 300, **kwargs})


def test_language_code_learned_from_corpus_is_rejected():
    with pytest.raises(ValueError, match="learned as ordinary pieces"):
        train_tokenizer(["sonne", "und", "wolken"] * 20, vocab_size=100, language_codes=["n"])


@pytest.mark.skipif(not REAL_TEXT.is_dir(), reason="needs /work/shared/data/real_text")
def test_real_corpus_tokenizer():
    def load(name):
        with gzip.open(REAL_TEXT / f"{name}.jsonl.gz", "rt", encoding="utf-8") as f:
            return [json.loads(line)["text"] for line in f]

    train = load("phoenix14t.train") + load("how2sign.train")
    tokenizer = train_tokenizer(train, vocab_size=8000, language_codes=["de_DE", "en_XX"], target_language="de_DE")
    assert len(tokenizer) == 8000
    dev = load("phoenix14t.dev")
    encoded = tokenizer(dev).input_ids
    assert tokenizer.batch_decode(encoded, skip_special_tokens=True) == [" ".join(t.split()) for t in dev]
    # A German sentence of PHOENIX is short in pieces: the vocabulary learned words, not letters.
    pieces_per_word = sum(len(ids) - 2 for ids in encoded) / sum(len(t.split()) for t in dev)
    assert pieces_per_word < 2.0


TRAIN_IN_A_FRESH_PROCESS = """
import hashlib, sys
from modeling_flallm.tokenization_flallm import train_tokenizer
texts = open(sys.argv[2], encoding="utf-8").read().splitlines()
tokenizer = train_tokenizer(texts, vocab_size=400, model_type=sys.argv[1])
print(hashlib.sha256(tokenizer.backend_tokenizer.to_str().encode()).hexdigest())
"""


@pytest.mark.parametrize("model_type", ["unigram", "bpe"])
def test_the_same_texts_give_the_same_tokenizer_in_every_fresh_process(model_type, tmp_path):
    """The `tokenizers` trainers sum in hash-map order, which is seeded per process (Unigram scores differed in the
    last digits in every run before they were rounded)."""
    import subprocess
    import sys
    from pathlib import Path

    from data_builders import synthetic_text

    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(synthetic_text(3000, seed=1, split="train")), encoding="utf-8")
    root = Path(__file__).resolve().parents[1]
    digests = {
        subprocess.run(
            [sys.executable, "-c", TRAIN_IN_A_FRESH_PROCESS, model_type, str(texts)],
            cwd=root,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        for _ in range(4)
    }
    assert len(digests) == 1
