"""`flallm pretrain-lm`: a tokenizer and a small mBART-shaped LM pre-trained by text infilling, offline.

    flallm pretrain-lm --texts phoenix14t --data-dir /data/PHOENIX-2014-T --output-dir runs/lm-de
    flallm pretrain-lm --texts data/phoenix14t --output-dir runs/lm-de          # a prepared folder
    flallm pretrain-lm --texts sentences.txt --language-code de_DE --output-dir runs/lm-de   # one sentence a line

Stage 2 needs a pre-trained LLM. Where the Hub is not reachable (or for a language no pre-trained LLM covers),
this makes one from the corpus's own sentences: a tokenizer (`modeling_flallm.tokenization_flallm.train_tokenizer`,
with the corpus's mBART language code, e.g. de_DE, and `<mask>`) and an mBART of `SMALL_MBART`'s shape pre-trained
with mBART's denoising objective (`train.lm_pretraining`). Texts: a corpus's train split (held-out loss on its
validation split), or a text file (the last 2%, at most 500 lines, held out). Then:

    flallm train --config train/configs/phoenix14t_stage1.yaml model.tokenizer=runs/lm-de ...
    flallm train --config train/configs/phoenix14t_stage2.yaml model.language_model=runs/lm-de ...

A rerun keeps a finished LM (its `pretraining.json`) and reuses the tokenizer of an interrupted run (kept beside
the output until the LM is saved); an interrupted pre-training itself starts over (minutes on a CPU at the default
size). It never leaves a half-written LM: the LM is saved under a temporary name and renamed.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from pathlib import Path

logger = logging.getLogger(__name__)

# The corpus language -> its mBART-cc25 language code (the code mBART's targets end with).
MBART_CODES = {"de": "de_DE", "zh": "zh_CN", "en": "en_XX"}


def read_texts(
    source: str, data_dir: str | None = None, cache_dir: str | None = None
) -> tuple[list[str], list[str], str | None]:
    """(train texts, held-out texts, language) of a corpus name, a prepared folder, or a text file."""
    path = Path(source)
    if path.is_file():
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if len(lines) < 2:
            raise ValueError(
                f"--texts {source}: expected a text file with one sentence a line, got {len(lines)} line(s)"
            )
        held_out = min(500, max(1, len(lines) // 50))
        return lines[:-held_out], lines[-held_out:], None
    from data_builders import load_sign_dataset
    from data_builders.loading import BUILDERS

    corpus = load_sign_dataset(source, data_dir, cache_dir=cache_dir)
    texts = list(corpus["train"]["text"])
    if not texts:
        raise ValueError(f"--texts {source}: its train split has no sentences")
    language = getattr(BUILDERS.get(source), "LANGUAGE", None) or None
    return texts, list(corpus["validation"]["text"]), language


def pretrain_lm_command(
    source: str,
    output_dir: str | Path,
    data_dir: str | None = None,
    language_code: str | None = None,
    vocab_size: int = 8000,
    model_type: str = "unigram",
    model_config: dict | None = None,
    cache_dir: str | None = None,
    progress: bool = True,
    **training,
) -> Path:
    """What `flallm pretrain-lm` does; returns the LM folder (model + tokenizer + pretraining.json)."""
    from transformers import AutoTokenizer

    from modeling_flallm.tokenization_flallm import train_tokenizer

    from .lm_pretraining import add_mask_token, pretrain_denoising_lm

    output_dir = Path(output_dir)
    if (output_dir / "pretraining.json").is_file():
        logger.info("%s already holds a pre-trained LM (pretraining.json): nothing to do", output_dir)
        return output_dir
    texts, held_out, language = read_texts(source, data_dir, cache_dir)
    if language_code is None and language in MBART_CODES:
        language_code = MBART_CODES[language]
    tokenizer_dir = output_dir.with_name(f".{output_dir.name}.tokenizer")  # until the LM (with its tokenizer) is saved
    if (tokenizer_dir / "tokenizer_config.json").is_file():
        logger.info("Reusing the tokenizer in %s", tokenizer_dir)
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    else:
        codes = [language_code] if language_code else []
        tokenizer = train_tokenizer(
            texts, vocab_size=vocab_size, model_type=model_type, language_codes=codes, target_language=language_code
        )
        add_mask_token(tokenizer)
        tokenizer.save_pretrained(tokenizer_dir)
    logger.info(
        "Pre-training an LM on %d sentences of %s (%d held out; language code %s)",
        len(texts),
        source,
        len(held_out),
        language_code,
    )
    lm_dir = pretrain_denoising_lm(
        texts,
        tokenizer,
        output_dir,
        model_config=model_config,
        validation_texts=held_out,
        progress=progress,
        **training,
    )
    shutil.rmtree(tokenizer_dir, ignore_errors=True)
    return lm_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from .cli import positive_int

    parser.add_argument(
        "--texts",
        required=True,
        metavar="CORPUS_OR_FILE",
        help="phoenix14t / csl_daily / how2sign / synthetic (its train split), a prepared folder, or a text "
        "file with one sentence a line.",
    )
    parser.add_argument("--data-dir", help="The raw release of a corpus given by name.")
    parser.add_argument(
        "--output-dir", required=True, help="Where the LM and its tokenizer go (a from_pretrained folder)."
    )
    parser.add_argument(
        "--language-code", help="mBART language code of the targets (default: the corpus's, e.g. de_DE)."
    )
    parser.add_argument("--vocab-size", type=positive_int, default=8000, help="Tokenizer vocabulary (default 8000).")
    parser.add_argument(
        "--model-type",
        choices=("unigram", "bpe"),
        default="unigram",
        help="unigram (SentencePiece, like mBART; default) or byte-level bpe.",
    )
    parser.add_argument(
        "--model",
        default="{}",
        metavar="YAML_MAP",
        help="MBartConfig fields over the default small size, e.g. '{d_model: 512, encoder_layers: 6}'.",
    )
    parser.add_argument("--epochs", type=positive_int, default=3)
    parser.add_argument("--batch-size", type=positive_int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", help="datasets cache for building a raw corpus.")


def run(args: argparse.Namespace) -> int:
    import yaml

    model_config = yaml.safe_load(args.model) or {}
    if not isinstance(model_config, dict):
        raise SystemExit(f"flallm pretrain-lm: --model {args.model!r}: expected a YAML map of MBartConfig fields")
    try:
        output = pretrain_lm_command(
            args.texts,
            args.output_dir,
            data_dir=args.data_dir,
            language_code=args.language_code,
            vocab_size=args.vocab_size,
            model_type=args.model_type,
            model_config=model_config,
            cache_dir=args.cache_dir,
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            seed=args.seed,
        )
    except (OSError, ValueError) as error:
        raise SystemExit(f"flallm pretrain-lm: {error}") from None
    summary = json.loads((Path(output) / "pretraining.json").read_text(encoding="utf-8"))
    print(
        json.dumps(
            {
                "output_dir": str(output),
                **{
                    k: summary[k]
                    for k in (
                        "num_texts",
                        "num_parameters",
                        "vocab_size",
                        "steps",
                        "validation_loss_before",
                        "validation_loss_after",
                        "seconds",
                    )
                },
            },
            indent=2,
        )
    )
    return 0
