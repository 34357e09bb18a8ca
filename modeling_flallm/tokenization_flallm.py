"""Offline tokenizers shaped like the ones FLa-LLM's language models use.

The paper's LLM is mBART-large-cc25, whose tokenizer cannot be downloaded in tests or in the offline demo.
`train_tokenizer` trains a small tokenizer of the same shape on the translation corpus instead: a
SentencePiece-style Unigram model (mBART, T5) or a byte-level BPE model (GPT-2, Llama-3, Qwen2), with
mBART's special tokens and, optionally, mBART language codes. The result is a regular
`PreTrainedTokenizerFast`, so `save_pretrained` / `AutoTokenizer.from_pretrained` work as for any Hub tokenizer.
"""

import logging
from collections.abc import Iterable, Sequence

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

logger = logging.getLogger(__name__)

# fairseq/mBART order: these four get ids 0-3 in the Unigram variant, as in mbart-large-cc25.
BOS_TOKEN, PAD_TOKEN, EOS_TOKEN, UNK_TOKEN = "<s>", "<pad>", "</s>", "<unk>"
SPECIAL_TOKENS = (BOS_TOKEN, PAD_TOKEN, EOS_TOKEN, UNK_TOKEN)
MODEL_TYPES = ("unigram", "bpe")


def train_tokenizer(
    texts: Iterable[str],
    vocab_size: int = 8000,
    model_type: str = "unigram",
    language_codes: Sequence[str] = (),
    target_language: str | None = None,
    add_bos: bool = False,
    add_eos: bool = True,
    model_max_length: int = 1024,
    show_progress: bool = False,
) -> PreTrainedTokenizerFast:
    """Train an mBART-like (`"unigram"`) or GPT/Llama/Qwen-like (`"bpe"`) tokenizer on `texts`, offline.

    Args:
        texts: the training sentences (a list, a generator or a `datasets` column).
        vocab_size: upper bound on the final vocabulary, special tokens and language codes included. A small
            corpus can yield fewer tokens (the trainers stop when the corpus has nothing more to merge or split).
        model_type: `"unigram"`: SentencePiece-style Unigram with the Metaspace ("▁") pre-tokenizer, like
            mBART/T5; `<s> <pad> </s> <unk>` get ids 0-3 and language codes come after the learned pieces, as in
            mbart-large-cc25. `"bpe"`: byte-level BPE over the 256-byte alphabet (any text encodes, nothing is
            `<unk>`), like GPT-2/Llama-3/Qwen2; the special tokens and language codes come after the learned
            vocabulary, as in those models.
        language_codes: mBART-style language codes (`"de_DE"`, `"en_XX"`, `"zh_CN"`) added as special tokens.
        target_language: one of `language_codes`; when set, every encoded text ends with `</s> <code>`, the
            format of mBART target sequences (the model shifts the code to the front as decoder start token).
        add_bos / add_eos: whether encoding prepends `<s>` / appends `</s>` (default: `text </s>`, mBART labels).
        model_max_length: stored on the tokenizer, used by truncation.
        show_progress: show the `tokenizers` trainer's progress bar.

    Neither variant normalizes Unicode (SentencePiece's NFKC would rewrite CSL-Daily's full-width punctuation), so
    `decode(encode(text), skip_special_tokens=True)` gives back `text`: with runs of whitespace collapsed and
    stripped for Unigram, byte for byte for byte-level BPE. Characters the Unigram trainer never saw become `<unk>`.
    """
    if model_type not in MODEL_TYPES:
        raise ValueError(f"model_type must be one of {MODEL_TYPES}, got {model_type!r}")
    language_codes = list(language_codes)
    if len(set(language_codes)) != len(language_codes) or set(language_codes) & set(SPECIAL_TOKENS):
        raise ValueError(f"language_codes must be distinct and differ from {SPECIAL_TOKENS}, got {language_codes}")
    if target_language is not None and target_language not in language_codes:
        raise ValueError(f"target_language {target_language!r} must be one of language_codes {language_codes}")
    num_fixed = len(SPECIAL_TOKENS) + len(language_codes)
    minimum = num_fixed + (len(pre_tokenizers.ByteLevel.alphabet()) if model_type == "bpe" else 1)
    if vocab_size <= minimum:
        raise ValueError(f"vocab_size must exceed {minimum} for model_type={model_type!r} with these language codes")

    if model_type == "unigram":
        tokenizer = _train_unigram(texts, vocab_size - len(language_codes), language_codes, show_progress)
    else:
        tokenizer = _train_byte_level_bpe(texts, vocab_size - num_fixed, show_progress)
    # Already in the vocabulary for Unigram (same ids), appended after it for BPE.
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in language_codes])
    tokenizer.post_processor = _post_processor(tokenizer, model_type, add_bos, add_eos, target_language)

    logger.info("Trained a %s tokenizer with %d tokens", model_type, tokenizer.get_vocab_size())
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        unk_token=UNK_TOKEN,
        pad_token=PAD_TOKEN,
        extra_special_tokens=language_codes,
        model_max_length=model_max_length,
        padding_side="right",
        # Keep "word ." as written: How2Sign references have spaced punctuation.
        clean_up_tokenization_spaces=False,
    )


def _train_unigram(texts, vocab_size, language_codes, show_progress) -> Tokenizer:
    """SentencePiece Unigram (the library mBART's tokenizer was trained with), then the language codes appended to the
    piece list as mBART does.

    Trained with `sentencepiece` on one thread rather than with the `tokenizers` UnigramTrainer: the latter sums in
    hash-map order, which is seeded per process, and in about one process in four it ended with other piece scores
    (and so other segmentations) for the same texts. SentencePiece gives the same model every time.
    """
    import io

    import sentencepiece as spm

    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=(text for text in texts if text and text.strip()),
        model_writer=buffer,
        model_type="unigram",
        vocab_size=vocab_size,
        hard_vocab_limit=False,  # a small corpus yields fewer pieces instead of an error
        bos_id=0,
        pad_id=1,
        eos_id=2,
        unk_id=3,
        bos_piece=BOS_TOKEN,
        pad_piece=PAD_TOKEN,
        eos_piece=EOS_TOKEN,
        unk_piece=UNK_TOKEN,
        character_coverage=1.0,  # every character of the corpus is a piece (CSL-Daily's rare hanzi too)
        normalization_rule_name="identity",  # no NFKC: CSL-Daily's full-width punctuation stays as it is
        max_sentencepiece_length=16,
        num_threads=1,
        minloglevel=0 if show_progress else 2,
    )
    processor = spm.SentencePieceProcessor(model_proto=buffer.getvalue())
    pieces = [
        (
            processor.id_to_piece(i),
            0.0 if processor.is_control(i) or processor.is_unknown(i) else processor.get_score(i),
        )
        for i in range(processor.get_piece_size())
    ]
    if [piece for piece, _ in pieces[:4]] != list(SPECIAL_TOKENS):
        raise RuntimeError(f"sentencepiece did not put {SPECIAL_TOKENS} first: {pieces[:6]}")
    known = {piece for piece, _ in pieces}
    clashes = [code for code in language_codes if code in known]
    if clashes:
        raise ValueError(f"language codes {clashes} were learned as ordinary pieces from the corpus; rename them")
    # The codes go after the pieces (score 0, like transformers' MBartConverter), so the tokenizer.json has the
    # structure of mbart-large-cc25's; the pre-tokenizer is the one transformers builds around its pieces.
    pieces += [(code, 0.0) for code in language_codes]
    tokenizer = Tokenizer(models.Unigram(pieces, unk_id=3, byte_fallback=False))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.WhitespaceSplit(),
            pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True),
        ]
    )
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    return tokenizer


def _train_byte_level_bpe(texts, vocab_size, show_progress) -> Tokenizer:
    """GPT-2 style byte-level BPE: the 256 byte symbols are always in the vocabulary."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
        show_progress=show_progress,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return tokenizer


def _post_processor(tokenizer, model_type, add_bos, add_eos, target_language):
    """`[<s>] $A [</s>] [code]`; byte-level BPE also keeps the ByteLevel offsets step, as Llama-3 does."""
    prefix = [BOS_TOKEN] if add_bos else []
    suffix = ([EOS_TOKEN] if add_eos else []) + ([target_language] if target_language else [])
    used = prefix + suffix
    template = processors.TemplateProcessing(
        single=prefix + ["$A"] + suffix,
        pair=prefix + ["$A", "$B"] + suffix,
        special_tokens=[(token, tokenizer.token_to_id(token)) for token in dict.fromkeys(used)],
    )
    if model_type == "bpe":
        return processors.Sequence([processors.ByteLevel(trim_offsets=False), template])
    return template
