"""trim_vocabulary: trimmed tokenizers stay exact on the corpus, trimmed models keep their scores."""

import copy
import gzip
import json
import logging
import random
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    LlamaTokenizer,
    LogitsProcessor,
    LogitsProcessorList,
    MBartConfig,
    MBartForConditionalGeneration,
    MBartTokenizer,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen2Tokenizer,
    T5Config,
    T5ForConditionalGeneration,
)
from transformers.models.mbart.tokenization_mbart import FAIRSEQ_LANGUAGE_CODES

from modeling_flallm.tokenization_flallm import train_tokenizer
from modeling_flallm.vocab_trimming import find_kept_ids, trim_model, trim_vocabulary

REAL_TEXT = Path("/work/shared/data/real_text")
FULL_WORDS = [
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
    "snow",
    "storm",
    "明天",
    "北方",
    "有",
    "雨",
    "南方",
    "晴",
    "气温",
    "十二",
    "度",
    "雪",
]
# The trimming corpus uses only part of the words the tokenizers are trained on, as an SLT train set uses part of
# an LLM's vocabulary.
CORPUS_WORDS = FULL_WORDS[:20]


def sentences(words, num, seed):
    rng = random.Random(seed)
    return [" ".join(rng.choice(words) for _ in range(rng.randint(2, 10))) for _ in range(num)]


TRAIN_TEXT = sentences(FULL_WORDS, 400, seed=0)
CORPUS = sentences(CORPUS_WORDS, 150, seed=1)


@pytest.fixture(scope="module")
def unigram():
    codes = ["de_DE", "en_XX", "zh_CN"]
    return train_tokenizer(TRAIN_TEXT, vocab_size=400, language_codes=codes, target_language="de_DE")


@pytest.fixture(scope="module")
def bpe():
    return train_tokenizer(TRAIN_TEXT, vocab_size=700, model_type="bpe", language_codes=["de_DE", "en_XX"])


def check_corpus_exact(original, result, texts):
    """Trimmed ids are the mapped original ids and decode to the original decoded text."""
    for text in texts:
        old = original(text).input_ids
        new = result.tokenizer(text).input_ids
        assert new == result.map_ids(old), text
        assert result.tokenizer.decode(new) == original.decode(old)
        assert result.tokenizer.decode(new, skip_special_tokens=True) == original.decode(old, skip_special_tokens=True)


# --------------------------------------------------------------------------------------------------- tokenizers


@pytest.mark.parametrize("name", ["unigram", "bpe"])
def test_trimmed_tokenizer_is_exact_on_corpus(name, request):
    tokenizer = request.getfixturevalue(name)
    result = trim_vocabulary(tokenizer, CORPUS)
    assert len(result.tokenizer) == len(result.kept_ids) < len(tokenizer) * 0.8
    assert result.kept_ids == sorted(set(result.kept_ids))
    # Original order, same strings.
    old_tokens = tokenizer.convert_ids_to_tokens(result.kept_ids)
    assert result.tokenizer.convert_ids_to_tokens(list(range(len(result.kept_ids)))) == old_tokens
    # Special tokens and language codes survive, and the post-processor points at their new ids.
    assert set(result.tokenizer.all_special_tokens) == set(tokenizer.all_special_tokens)
    for token in tokenizer.all_special_tokens:
        assert result.map_ids(tokenizer.convert_tokens_to_ids(token)) == result.tokenizer.convert_tokens_to_ids(token)
    check_corpus_exact(tokenizer, result, CORPUS)
    # Unused words really went away.
    assert "▁snow" not in result.tokenizer.get_vocab() and "Ġsnow" not in result.tokenizer.get_vocab()


def test_unigram_keeps_scores_unk_and_lowest_piece(unigram):
    result = trim_vocabulary(unigram, CORPUS)
    old = json.loads(unigram.backend_tokenizer.to_str())["model"]
    new = json.loads(result.tokenizer.backend_tokenizer.to_str())["model"]
    assert new["vocab"] == [old["vocab"][i] for i in result.kept_ids]
    assert new["unk_id"] == result.map_ids(old["unk_id"])
    assert min(score for _, score in new["vocab"]) == min(score for _, score in old["vocab"])
    # The target-language suffix of mBART labels follows the language code to its new id.
    ids = result.tokenizer("am tag").input_ids
    assert result.tokenizer.convert_ids_to_tokens(ids[-2:]) == ["</s>", "de_DE"]


def test_bpe_merges_are_closed_and_ordered(bpe):
    result = trim_vocabulary(bpe, CORPUS)
    old = json.loads(bpe.backend_tokenizer.to_str())["model"]
    new = json.loads(result.tokenizer.backend_tokenizer.to_str())["model"]
    assert 0 < len(new["merges"]) < len(old["merges"])
    rank = {tuple(m): i for i, m in enumerate(old["merges"])}
    assert [rank[tuple(m)] for m in new["merges"]] == sorted(rank[tuple(m)] for m in new["merges"])
    for a, b in new["merges"]:
        assert {a, b, a + b} <= set(new["vocab"])
    # Every merge of the original that builds a kept token is kept, so the corpus replays its merges.
    for a, b in old["merges"]:
        if a + b in new["vocab"]:
            assert [a, b] in new["merges"]


def test_byte_level_keeps_bytes_for_unseen_text(bpe):
    unseen = "Übermorgen ⛈ snow storm 雪!"
    with_bytes = trim_vocabulary(bpe, CORPUS)
    ids = with_bytes.tokenizer(unseen, add_special_tokens=False).input_ids
    assert with_bytes.tokenizer.decode(ids) == unseen
    assert len(ids) > len(bpe(unseen, add_special_tokens=False).input_ids)  # shorter pieces, same text
    without = trim_vocabulary(bpe, CORPUS, keep_bytes=False)
    assert len(without.tokenizer) < len(with_bytes.tokenizer)
    check_corpus_exact(bpe, without, CORPUS)


def test_keep_tokens_and_ids(unigram):
    extra_token = "▁sunny" if "▁sunny" in unigram.get_vocab() else unigram.convert_ids_to_tokens(50)
    extra_id = len(unigram) - 10
    result = trim_vocabulary(unigram, CORPUS[:5], keep_tokens=[extra_token], keep_ids=[extra_id])
    assert extra_token in result.tokenizer.get_vocab()
    assert extra_id in result.kept_ids
    with pytest.raises(ValueError, match="keep_tokens"):
        trim_vocabulary(unigram, CORPUS[:5], keep_tokens=["not-a-token"])
    with pytest.raises(ValueError, match="keep_ids"):
        trim_vocabulary(unigram, CORPUS[:5], keep_ids=[10**6])


def train_backend(model, trainer, pre_tokenizer, decoder=None, post_processor=None, normalizer=None):
    tokenizer = Tokenizer(model)
    tokenizer.normalizer = normalizer
    tokenizer.pre_tokenizer = pre_tokenizer
    tokenizer.decoder = decoder
    tokenizer.train_from_iterator(TRAIN_TEXT, trainer=trainer)
    if post_processor is not None:
        tokenizer.post_processor = post_processor(tokenizer)
    return tokenizer


def bert_processor(tokenizer):
    sep, cls = ("[SEP]", tokenizer.token_to_id("[SEP]")), ("[CLS]", tokenizer.token_to_id("[CLS]"))
    return processors.BertProcessing(sep, cls)


def roberta_processor(tokenizer):
    return processors.RobertaProcessing(("</s>", tokenizer.token_to_id("</s>")), ("<s>", tokenizer.token_to_id("<s>")))


OTHER_BACKENDS = {
    # BERT: WordPiece with "##" continuations, [CLS]/[SEP] added by a BertProcessing post-processor.
    "wordpiece": lambda: train_backend(
        models.WordPiece(unk_token="[UNK]"),
        trainers.WordPieceTrainer(vocab_size=300, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]"]),
        pre_tokenizers.BertPreTokenizer(),
        decoders.WordPiece(),
        bert_processor,
        normalizers.BertNormalizer(lowercase=True),
    ),
    # Original GPT: BPE with an end-of-word suffix.
    "bpe-suffix": lambda: train_backend(
        models.BPE(unk_token="<unk>", end_of_word_suffix="</w>"),
        trainers.BpeTrainer(vocab_size=400, special_tokens=["<unk>", "<s>", "</s>"], end_of_word_suffix="</w>"),
        pre_tokenizers.Whitespace(),
        decoders.BPEDecoder(suffix="</w>"),
        roberta_processor,
    ),
    # BPE with "##" continuation prefixes: merges drop the prefix of their right part.
    "bpe-prefix": lambda: train_backend(
        models.BPE(unk_token="<unk>", continuing_subword_prefix="##"),
        trainers.BpeTrainer(vocab_size=400, special_tokens=["<unk>", "<s>", "</s>"], continuing_subword_prefix="##"),
        pre_tokenizers.Whitespace(),
        decoders.WordPiece(prefix="##"),
    ),
    "wordlevel": lambda: train_backend(
        models.WordLevel(unk_token="<unk>"),
        trainers.WordLevelTrainer(special_tokens=["<unk>", "<s>", "</s>"]),
        pre_tokenizers.Whitespace(),
        post_processor=roberta_processor,
    ),
}


@pytest.mark.parametrize("name", sorted(OTHER_BACKENDS))
def test_other_tokenizer_models(name, tmp_path):
    backend = OTHER_BACKENDS[name]()
    specials = {"wordpiece": {"unk_token": "[UNK]", "pad_token": "[PAD]", "cls_token": "[CLS]", "sep_token": "[SEP]"}}
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, **specials.get(name, {"unk_token": "<unk>"}))
    result = trim_vocabulary(tokenizer, CORPUS)
    assert len(result.tokenizer) < len(tokenizer)
    check_corpus_exact(tokenizer, result, CORPUS)
    result.tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert reloaded(CORPUS).input_ids == result.tokenizer(CORPUS).input_ids


@pytest.mark.parametrize("name", ["unigram", "bpe"])
def test_trimmed_tokenizer_saves_and_reloads(name, request, tmp_path):
    result = trim_vocabulary(request.getfixturevalue(name), CORPUS)
    result.tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert reloaded.get_vocab() == result.tokenizer.get_vocab()
    assert reloaded.all_special_ids == result.tokenizer.all_special_ids
    assert reloaded(CORPUS).input_ids == result.tokenizer(CORPUS).input_ids


@pytest.fixture(scope="module")
def mbart_tokenizer(unigram):
    """A real `MBartTokenizer` (mbart-large-cc25 layout: 4 specials, pieces, 25 language codes, <mask>)."""
    pieces = [tuple(p) for p in json.loads(unigram.backend_tokenizer.to_str())["model"]["vocab"][:-3]]
    vocab = pieces + [(code, 0.0) for code in FAIRSEQ_LANGUAGE_CODES] + [("<mask>", 0.0)]
    return MBartTokenizer(vocab=vocab, src_lang="de_DE", tgt_lang="de_DE")


def test_real_mbart_tokenizer_class(mbart_tokenizer, tmp_path):
    result = trim_vocabulary(mbart_tokenizer, CORPUS)
    trimmed = result.tokenizer
    assert type(trimmed) is MBartTokenizer
    assert len(trimmed) < len(mbart_tokenizer)
    assert all(code in trimmed.get_vocab() for code in FAIRSEQ_LANGUAGE_CODES + ["<mask>"])
    check_corpus_exact(mbart_tokenizer, result, CORPUS)
    old = mbart_tokenizer(text_target=CORPUS[:5]).input_ids
    assert trimmed(text_target=CORPUS[:5]).input_ids == result.map_ids(old)
    assert trimmed.lang_code_to_id["zh_CN"] == result.map_ids(mbart_tokenizer.lang_code_to_id["zh_CN"])
    trimmed.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert type(reloaded) is MBartTokenizer and reloaded.get_vocab() == trimmed.get_vocab()
    assert reloaded(text_target=CORPUS[:5]).input_ids == result.map_ids(old)


def test_mbart_language_set_after_loading_survives(mbart_tokenizer, tmp_path):
    """The training code loads mbart-large-cc25 (src_lang en_XX) and then switches it to the target language."""
    mbart_tokenizer.save_pretrained(tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path, src_lang="en_XX")
    tokenizer.src_lang = tokenizer.tgt_lang = "zh_CN"
    trimmed = trim_vocabulary(tokenizer, CORPUS).tokenizer
    assert trimmed.src_lang == trimmed.tgt_lang == "zh_CN"
    assert trimmed.convert_ids_to_tokens(trimmed(CORPUS[0]).input_ids[-2:]) == ["</s>", "zh_CN"]
    assert trimmed.convert_ids_to_tokens(trimmed(text_target=CORPUS[0]).input_ids[-2:]) == ["</s>", "zh_CN"]


def test_real_qwen2_tokenizer_class(bpe, tmp_path):
    """Qwen2's pipeline (NFC, regex split + byte-level) and its special tokens after the BPE vocabulary."""
    state = json.loads(bpe.backend_tokenizer.to_str())["model"]
    vocab = {token: i for token, i in state["vocab"].items()}
    qwen = Qwen2Tokenizer(vocab=vocab, merges=[tuple(m) for m in state["merges"]])
    qwen.add_tokens(["<|im_start|>", "<|im_end|>"], special_tokens=True)
    result = trim_vocabulary(qwen, CORPUS)
    assert type(result.tokenizer) is Qwen2Tokenizer
    assert result.tokenizer.convert_ids_to_tokens(list(range(len(result.kept_ids)))[-3:]) == [
        "<|endoftext|>",
        "<|im_start|>",
        "<|im_end|>",
    ]
    check_corpus_exact(qwen, result, CORPUS + ["<|im_start|>am tag<|im_end|>"])
    result.tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert reloaded(CORPUS).input_ids == result.tokenizer(CORPUS).input_ids


def test_llama2_style_byte_fallback(tmp_path):
    """SentencePiece-BPE with byte fallback (Llama-2, Mistral): <0x00>..<0xFF> stay, so unseen text encodes."""
    backend = train_backend(
        models.BPE(),
        trainers.BpeTrainer(vocab_size=300, special_tokens=[]),
        pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True),
    )
    state = json.loads(backend.to_str())["model"]
    byte_tokens = [f"<0x{b:02X}>" for b in range(256)]
    pieces = sorted(state["vocab"], key=state["vocab"].get)
    vocab = {token: i for i, token in enumerate(["<unk>", "<s>", "</s>"] + byte_tokens + pieces)}
    llama = LlamaTokenizer(vocab=vocab, merges=[tuple(m) for m in state["merges"]])
    unseen = "Gewitter ⛈ am tag"
    assert "<0xE2>" in llama.convert_ids_to_tokens(llama(unseen).input_ids)
    result = trim_vocabulary(llama, CORPUS)
    assert type(result.tokenizer) is LlamaTokenizer
    assert all(token in result.tokenizer.get_vocab() for token in byte_tokens)
    check_corpus_exact(llama, result, CORPUS)
    assert result.tokenizer.decode(result.tokenizer(unseen).input_ids, skip_special_tokens=True) == unseen
    without = trim_vocabulary(llama, CORPUS, keep_bytes=False)
    assert len(without.tokenizer) < len(result.tokenizer) - 200
    result.tokenizer.save_pretrained(tmp_path)
    assert AutoTokenizer.from_pretrained(tmp_path)(CORPUS).input_ids == result.tokenizer(CORPUS).input_ids


def test_not_a_fast_tokenizer():
    with pytest.raises(ValueError, match="needs a fast tokenizer.*got dict"):
        trim_vocabulary({"vocab": {}}, CORPUS)


def test_map_ids(unigram):
    result = trim_vocabulary(unigram, CORPUS)
    labels = torch.tensor([[result.kept_ids[5], result.kept_ids[0], -100]])
    assert result.map_ids(labels).tolist() == [[5, 0, -100]]
    assert result.map_ids([[result.kept_ids[7]], [-100]]) == [[7], [-100]]
    dropped = next(i for i in range(len(unigram)) if i not in result.old_to_new)
    with pytest.raises(ValueError, match="trimmed away"):
        result.map_ids(torch.tensor([dropped]))
    with pytest.raises(ValueError, match="trimmed away"):
        result.map_ids([dropped])


# ------------------------------------------------------------------------------------------------------- models


class KeepOnly(LogitsProcessor):
    """Restrict the original model to the kept tokens, renormalized as the trimmed model's softmax is."""

    def __init__(self, kept_ids, vocab_size):
        self.mask = torch.full((vocab_size,), float("-inf"))
        self.mask[kept_ids] = 0.0

    def __call__(self, input_ids, scores):
        return torch.log_softmax(scores + self.mask, dim=-1)


def tiny_mbart(tokenizer):
    torch.manual_seed(0)
    config = MBartConfig(
        vocab_size=len(tokenizer),
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        max_position_embeddings=64,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        # mBART-cc25 fine-tuning starts decoding with the target language code, a token near the end that moves.
        decoder_start_token_id=tokenizer.convert_tokens_to_ids("de_DE"),
        forced_eos_token_id=tokenizer.eos_token_id,
        scale_embedding=True,
        init_std=1.0,  # a random model with the default 0.02 repeats one token whatever the input
    )
    return MBartForConditionalGeneration(config).eval()


def tiny_decoder_only(cls, config_cls, tokenizer, tie):
    torch.manual_seed(0)
    config = config_cls(
        vocab_size=len(tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=64,
        tie_word_embeddings=tie,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        initializer_range=1.0,  # varied generations from a random model
    )
    return cls(config).eval()


def test_mbart_logits_and_structure(unigram, tmp_path):
    model = tiny_mbart(unigram)
    original = copy.deepcopy(model)
    batch = unigram(CORPUS[:4], padding=True, return_tensors="pt")
    with torch.no_grad():
        old_logits = original(**batch, labels=batch.input_ids).logits

    result = trim_vocabulary(unigram, CORPUS, model=model)
    assert result.model is model
    n = len(result.kept_ids)
    shared = model.model.shared
    assert shared.weight.shape[0] == n and shared.num_embeddings == n
    assert model.lm_head.weight is shared.weight
    assert model.model.encoder.embed_tokens.weight is shared.weight is model.model.decoder.embed_tokens.weight
    assert model.final_logits_bias.shape == (1, n)
    assert shared.embed_scale == original.model.shared.embed_scale == 4.0
    assert model.config.vocab_size == n
    de = unigram.convert_tokens_to_ids("de_DE")
    assert model.config.decoder_start_token_id == result.map_ids(de) != de
    assert model.generation_config.forced_eos_token_id == result.map_ids(unigram.eos_token_id)
    assert shared.padding_idx == model.config.pad_token_id == result.map_ids(unigram.pad_token_id)

    new_batch = result.tokenizer(CORPUS[:4], padding=True, return_tensors="pt")
    assert torch.equal(new_batch.input_ids, result.map_ids(batch.input_ids))
    with torch.no_grad():
        output = model(**new_batch, labels=new_batch.input_ids)
    torch.testing.assert_close(output.logits, old_logits[..., result.kept_ids], rtol=1e-5, atol=1e-6)
    assert torch.isfinite(output.loss)

    model.save_pretrained(tmp_path)
    reloaded = MBartForConditionalGeneration.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**new_batch, labels=new_batch.input_ids).logits, output.logits)


def test_mbart_generation_matches_restricted_original(unigram):
    model = tiny_mbart(unigram)
    original = copy.deepcopy(model)
    result = trim_vocabulary(unigram, CORPUS, model=model)
    inputs = unigram(CORPUS[:3], padding=True, return_tensors="pt")
    new_inputs = result.tokenizer(CORPUS[:3], padding=True, return_tensors="pt")
    restrict = LogitsProcessorList([KeepOnly(result.kept_ids, len(unigram))])
    # Unrestricted, the original model does produce trimmed-away tokens: the restriction matters.
    unrestricted = original.generate(**inputs, num_beams=3, max_new_tokens=8)
    assert any(i not in result.old_to_new for i in unrestricted.flatten().tolist())
    for num_beams in (1, 3):
        old = original.generate(**inputs, num_beams=num_beams, max_new_tokens=8, logits_processor=restrict)
        new = model.generate(**new_inputs, num_beams=num_beams, max_new_tokens=8)
        assert new.tolist() == result.map_ids(old.tolist()), f"num_beams={num_beams}"
        assert result.tokenizer.batch_decode(new) == unigram.batch_decode(old)


@pytest.mark.parametrize(
    "cls, config_cls, tie", [(LlamaForCausalLM, LlamaConfig, False), (Qwen2ForCausalLM, Qwen2Config, True)]
)
def test_decoder_only_logits_and_generation(cls, config_cls, tie, bpe):
    model = tiny_decoder_only(cls, config_cls, bpe, tie)
    original = copy.deepcopy(model)
    result = trim_vocabulary(bpe, CORPUS, model=model)
    n = len(result.kept_ids)
    assert (model.lm_head.weight is model.model.embed_tokens.weight) == tie
    assert model.lm_head.weight.shape[0] == model.model.embed_tokens.weight.shape[0] == model.config.vocab_size == n
    assert model.lm_head.out_features == model.model.vocab_size == n
    # The specials follow the byte-level vocabulary, so their ids change.
    assert model.config.eos_token_id == result.map_ids(bpe.eos_token_id) != bpe.eos_token_id
    assert model.generation_config.pad_token_id == result.map_ids(bpe.pad_token_id)

    batch = bpe(CORPUS[:4], padding=True, return_tensors="pt")
    new_batch = result.tokenizer(CORPUS[:4], padding=True, return_tensors="pt")
    with torch.no_grad():
        old_logits = original(**batch).logits
        new_logits = model(**new_batch, labels=new_batch.input_ids).logits
    torch.testing.assert_close(new_logits, old_logits[..., result.kept_ids], rtol=1e-5, atol=1e-6)

    restrict = LogitsProcessorList([KeepOnly(result.kept_ids, len(bpe))])
    unrestricted = original.generate(**bpe(CORPUS[:1], add_special_tokens=False, return_tensors="pt"), max_new_tokens=8)
    assert any(i not in result.old_to_new for i in unrestricted.flatten().tolist())
    prompt = bpe(CORPUS[:1], add_special_tokens=False, return_tensors="pt")
    new_prompt = result.tokenizer(CORPUS[:1], add_special_tokens=False, return_tensors="pt")
    for num_beams in (1, 3):
        old = original.generate(**prompt, num_beams=num_beams, max_new_tokens=8, logits_processor=restrict)
        new = model.generate(**new_prompt, num_beams=num_beams, max_new_tokens=8)
        assert new.tolist() == result.map_ids(old.tolist()), f"num_beams={num_beams}"


def test_t5_shared_embeddings_and_extra_rows(unigram):
    torch.manual_seed(0)
    config = T5Config(
        vocab_size=len(unigram) + 5,  # embedding rows beyond the tokenizer, as Qwen2/T5 checkpoints have
        d_model=16,
        d_kv=8,
        d_ff=32,
        num_layers=1,
        num_heads=2,
        pad_token_id=unigram.pad_token_id,
        eos_token_id=unigram.eos_token_id,
        decoder_start_token_id=unigram.pad_token_id,
    )
    model = T5ForConditionalGeneration(config).eval()
    original = copy.deepcopy(model)
    result = trim_vocabulary(unigram, CORPUS, model=model)
    n = len(result.kept_ids)
    assert model.shared.weight.shape[0] == n and model.encoder.embed_tokens.weight is model.shared.weight
    assert model.decoder.embed_tokens.weight is model.shared.weight
    assert (model.lm_head.weight is model.shared.weight) == (original.lm_head.weight is original.shared.weight)
    assert model.lm_head.weight.shape[0] == n
    assert model.config.vocab_size == n
    batch = unigram(CORPUS[:2], padding=True, return_tensors="pt")
    new_batch = result.tokenizer(CORPUS[:2], padding=True, return_tensors="pt")
    with torch.no_grad():
        old_logits = original(**batch, labels=batch.input_ids).logits
        new_logits = model(**new_batch, labels=new_batch.input_ids).logits
    torch.testing.assert_close(new_logits, old_logits[..., result.kept_ids], rtol=1e-5, atol=1e-6)


def test_flallm_model_trims_its_language_model(unigram, tmp_path):
    """The whole FlaLlmForSignTranslation can be passed: its text_config follows the trimmed language model."""
    from modeling_flallm import FlaLlmConfig, FlaLlmForSignTranslation

    vision = {"embedding_size": 8, "hidden_sizes": [8, 16], "depths": [1, 1], "layer_type": "basic"}
    config = FlaLlmConfig(
        vision_config=vision,
        text_config=tiny_mbart(unigram).config.to_dict(),
        temporal_hidden_size=16,
        adapter_hidden_size=16,
        max_frames=64,
    )
    torch.manual_seed(0)
    model = FlaLlmForSignTranslation(config).eval()
    original = copy.deepcopy(model)
    features, mask = torch.randn(2, 5, 16), torch.ones(2, 5, dtype=torch.long)
    labels = unigram(CORPUS[:2], padding=True, return_tensors="pt").input_ids
    labels[labels == unigram.pad_token_id] = -100
    with torch.no_grad():
        old_logits = original(visual_features=features, visual_mask=mask, labels=labels).logits

    result = trim_vocabulary(unigram, CORPUS, model=model)
    assert model.config.text_config.vocab_size == len(result.kept_ids)
    assert model.config.text_config.decoder_start_token_id == result.map_ids(unigram.convert_tokens_to_ids("de_DE"))
    with torch.no_grad():
        new_logits = model(visual_features=features, visual_mask=mask, labels=result.map_ids(labels)).logits
    torch.testing.assert_close(new_logits, old_logits[..., result.kept_ids], rtol=1e-5, atol=1e-6)

    restrict = LogitsProcessorList([KeepOnly(result.kept_ids, len(unigram))])
    old = original.generate(visual_features=features, visual_mask=mask, max_new_tokens=6, logits_processor=restrict)
    new = model.generate(visual_features=features, visual_mask=mask, max_new_tokens=6)
    assert new.tolist() == result.map_ids(old.tolist())

    model.save_pretrained(tmp_path)
    reloaded = FlaLlmForSignTranslation.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        reloaded_logits = reloaded(visual_features=features, visual_mask=mask, labels=result.map_ids(labels)).logits
    torch.testing.assert_close(reloaded_logits, new_logits)


def test_stage2_trims_a_fresh_model_with_find_kept_ids(unigram):
    """Stage 1 keeps only the trimmed tokenizer; stage 2 trims the full LLM to the same vocabulary."""
    result = trim_vocabulary(unigram, CORPUS)
    kept = find_kept_ids(unigram, result.tokenizer)
    assert kept == result.kept_ids
    together = trim_vocabulary(unigram, CORPUS, model=tiny_mbart(unigram)).model
    later = trim_model(tiny_mbart(unigram), kept)
    for a, b in zip(together.state_dict().values(), later.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="not in the original"):
        find_kept_ids(result.tokenizer, unigram)


def test_trim_model_errors_and_dropped_config_ids(unigram, caplog):
    model = tiny_mbart(unigram)
    with pytest.raises(ValueError, match="outside the model's"):
        trim_model(model, [0, 1, 2, 3, len(unigram) + 10])
    with pytest.raises(ValueError, match="strictly increasing"):
        trim_model(model, [3, 2, 1])
    with pytest.raises(ValueError, match="non-empty"):
        trim_model(model, [])
    model.config.pad_token_id = 1
    with caplog.at_level(logging.WARNING):
        trim_model(model, [0, 2, 3] + list(range(4, 50)))  # <pad> (1) and de_DE dropped
    assert model.config.pad_token_id is None and model.config.decoder_start_token_id is None
    assert model.model.shared.padding_idx is None
    assert "pad_token_id=1 was trimmed away" in caplog.text


# ---------------------------------------------------------------------------------------------------- real data


@pytest.mark.skipif(not REAL_TEXT.is_dir(), reason="needs /work/shared/data/real_text")
def test_real_corpus_trimming():
    """An 8k mBART-style tokenizer trained on PHOENIX-2014T + How2Sign, trimmed to the PHOENIX-2014T train set."""

    def load(name):
        with gzip.open(REAL_TEXT / f"{name}.jsonl.gz", "rt", encoding="utf-8") as f:
            return [json.loads(line)["text"] for line in f]

    phoenix = load("phoenix14t.train")
    unigram = train_tokenizer(phoenix + load("how2sign.train"), vocab_size=8000, language_codes=["de_DE", "en_XX"])
    pieces = [tuple(p) for p in json.loads(unigram.backend_tokenizer.to_str())["model"]["vocab"][:-2]]
    vocab = pieces + [(code, 0.0) for code in FAIRSEQ_LANGUAGE_CODES] + [("<mask>", 0.0)]
    mbart = MBartTokenizer(vocab=vocab, src_lang="de_DE", tgt_lang="de_DE")

    result = trim_vocabulary(mbart, phoenix)
    # German weather forecasts use a small part of a German + English vocabulary.
    assert len(result.tokenizer) < 0.5 * len(mbart)
    old = mbart(text_target=phoenix).input_ids
    new = result.tokenizer(text_target=phoenix).input_ids
    assert new == result.map_ids(old)
    assert result.tokenizer.batch_decode(new, skip_special_tokens=True) == [" ".join(t.split()) for t in phoenix]


def _replayed_tokens(tokenizer, texts) -> set[str]:
    """Every token byte-level BPE passes through on `texts`: each word's merges replayed by rank (the final tokens and
    every intermediate merge result)."""
    state = json.loads(tokenizer.backend_tokenizer.to_str())["model"]
    ranks = {tuple(merge): rank for rank, merge in enumerate(state["merges"])}
    seen = set()
    for text in texts:
        for word, _ in tokenizer.backend_tokenizer.pre_tokenizer.pre_tokenize_str(text):
            symbols = list(word)
            seen.update(symbols)
            while len(symbols) > 1:
                pairs = [(ranks[pair], i) for i, pair in enumerate(zip(symbols, symbols[1:])) if pair in ranks]
                if not pairs:
                    break
                _, i = min(pairs)
                symbols[i : i + 2] = [symbols[i] + symbols[i + 1]]
                seen.add(symbols[i])
    return seen


def test_bpe_keeps_only_what_the_corpus_and_the_byte_fallback_need():
    """Issue 16: 1,772 of 2,001 tokens kept where the corpus uses 1,146. The rest are the intermediate merge results
    the corpus's own tokens are built from and the 256 byte symbols: nothing else is kept."""
    path = Path(__file__).resolve().parents[2] / "shared" / "data" / "real_text" / "phoenix14t.train.jsonl.gz"
    if not path.is_file():
        pytest.skip(f"{path} is not here")
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        texts = [json.loads(line)["text"] for line in lines]
    tokenizer = train_tokenizer(texts, vocab_size=2001, model_type="bpe")
    subset = texts[:700]
    result = trim_vocabulary(tokenizer, subset)
    kept = set(result.tokenizer.get_vocab())
    used = {token for text in subset for token in tokenizer.tokenize(text)}
    needed = (
        _replayed_tokens(tokenizer, subset)
        | set(pre_tokenizers.ByteLevel.alphabet())
        | set(tokenizer.all_special_tokens)
    )
    assert used < needed and kept == needed
    assert len(used) < len(kept) < len(tokenizer)
