"""The gloss-to-text ceiling: what stage 2 would reach if the visual encoder recognised every sign.

The same pre-trained LM that stage 2 fine-tunes is fine-tuned instead on the gold sign sequences (glosses,
lower-cased, as text) -> spoken text, with stage 2's budget (epochs, batch size, learning rate, schedule, label
smoothing), and decodes the test split with stage 2's beam search. A stage-2 score close to this ceiling means
the visual encoder carries the signs; a large gap means recognition, not the LM, is what is missing.
Only corpora with glosses have a ceiling (the synthetic corpus, PHOENIX-2014T, CSL-Daily).

    from train.gloss_to_text import gloss_to_text_ceiling
    scores = gloss_to_text_ceiling("flallm-demo/lm", corpus, epochs=2, batch_size=8, lr=3e-4)
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence

logger = logging.getLogger(__name__)


def gloss_source(gloss: str) -> str:
    """The sign sequence as text for the LM's tokenizer (trained on spoken text, hence lower case)."""
    return " ".join(str(gloss).lower().split())


def _encode(tokenizer, texts, max_length):
    return tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]


def gloss_to_text_ceiling(
    lm_dir: str | Path,
    corpus,
    *,
    epochs: int = 2,
    batch_size: int = 8,
    lr: float = 3e-4,
    warmup_ratio: float = 0.05,
    weight_decay: float = 0.01,
    label_smoothing: float = 0.1,
    num_beams: int = 5,
    max_new_tokens: int = 30,
    max_length: int = 64,
    language: str = "en",
    seed: int = 0,
    split: str = "test",
) -> dict:
    """Fine-tune the LM in `lm_dir` on `corpus["train"]` glosses -> texts; return `split`'s scores and predictions.

    `corpus`: a `datasets.DatasetDict` (or a dict of dicts of lists) whose splits have `gloss` and `text` columns.
    Nothing is saved: the ceiling is a number.
    """
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, get_cosine_schedule_with_warmup

    from .metrics import load_metric

    try:
        train_glosses, train_texts = list(corpus["train"]["gloss"]), list(corpus["train"]["text"])
        glosses, references = list(corpus[split]["gloss"]), list(corpus[split]["text"])
    except KeyError as error:
        raise ValueError(
            f"gloss_to_text_ceiling needs 'train' and {split!r} splits with 'gloss' and 'text' columns "
            f"(sign sequences and their translations); missing {error}"
        ) from None
    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(lm_dir)
    torch.manual_seed(seed)
    model = AutoModelForSeq2SeqLM.from_pretrained(lm_dir)
    sources = _encode(tokenizer, [gloss_source(g) for g in train_glosses], max_length)
    targets = _encode(tokenizer, train_texts, max_length)
    steps_per_epoch = math.ceil(len(sources) / batch_size)
    total_steps = steps_per_epoch * epochs
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = get_cosine_schedule_with_warmup(optimizer, int(warmup_ratio * total_steps), total_steps)
    pad = tokenizer.pad_token_id
    model.train()
    for epoch in range(epochs):
        order = np.random.default_rng([seed, epoch]).permutation(len(sources))
        for start in range(0, len(order), batch_size):
            indices = order[start : start + batch_size]
            input_ids = pad_sequence([torch.tensor(sources[i]) for i in indices], batch_first=True, padding_value=pad)
            labels = pad_sequence([torch.tensor(targets[i]) for i in indices], batch_first=True, padding_value=-100)
            logits = model(input_ids=input_ids, attention_mask=input_ids.ne(pad).long(), labels=labels).logits
            loss = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]),
                labels.reshape(-1),
                ignore_index=-100,
                label_smoothing=label_smoothing,
            )
            loss.backward()
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
    model.eval()
    predictions = []
    with torch.no_grad():
        for start in range(0, len(glosses), 50):
            chunk = [gloss_source(g) for g in glosses[start : start + 50]]
            inputs = tokenizer(chunk, return_tensors="pt", padding=True, truncation=True, max_length=max_length)
            output = model.generate(**inputs, num_beams=num_beams, max_new_tokens=max_new_tokens)
            predictions += tokenizer.batch_decode(output, skip_special_tokens=True)
    scores = load_metric().compute(
        predictions=[p.strip() for p in predictions], references=references, language=language
    )
    seconds = time.perf_counter() - started
    logger.info(
        "Gloss-to-text ceiling (%d steps): %s BLEU-4 %.2f (%.0f s)", total_steps, split, scores["bleu4"], seconds
    )
    return {**scores, "steps": total_steps, "seconds": round(seconds, 1), "predictions": predictions}
