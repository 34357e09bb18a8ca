"""Pre-train a small mBART-shaped seq2seq language model offline, with mBART's denoising objective.

`flallm demo` cannot download mbart-large-cc25, so it pre-trains a small LM of the same architecture on
text of the target language (the synthetic language's sentences) and uses it as stage 2's LLM. The
objective is the one mBART was pre-trained with (Liu et al. 2020, following BART's "text infilling"):

- spans of tokens are masked until about 35% of the tokens of a sentence are covered; span lengths are
  drawn from a Poisson distribution with lambda 3.5; each span is replaced by ONE mask token, so the
  model must also infer how many tokens are missing; a span of length 0 inserts a mask token;
- the model reconstructs the original sentence (decoder input = the original shifted right, mBART's
  `shift_tokens_right`, which moves the final `</s>` (or language code) to the front);
- mBART also permutes the order of sentences inside a document; the texts here are single sentences,
  so there is nothing to permute, and that part of the noise is left out.

The offline tokenizers of `modeling_flallm.tokenization_flallm` have no `<mask>` token: `<mask>` is added
as a special token (as mbart-large-cc25 has one) before the model is built, so the model's vocabulary
covers it; `tokenizer.mask_token` is saved with the tokenizer. Special tokens (`</s>`, language codes)
are never masked.

    from train.lm_pretraining import pretrain_denoising_lm
    lm_dir = pretrain_denoising_lm(texts, tokenizer, "runs/lm", epochs=3)
    # lm_dir holds config.json, model.safetensors, generation_config.json, the tokenizer files and
    # pretraining.json; AutoModelForSeq2SeqLM / AutoTokenizer.from_pretrained(lm_dir) load it.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence

from .checkpointing import fsync_tree, replace_dir

logger = logging.getLogger(__name__)

MASK_TOKEN = "<mask>"

# A small mBART: 2+2 layers, d_model 256 (mbart-large-cc25: 12+12 layers, d_model 1024, 16 heads).
SMALL_MBART = {
    "encoder_layers": 2,
    "decoder_layers": 2,
    "d_model": 256,
    "encoder_attention_heads": 4,
    "decoder_attention_heads": 4,
    "encoder_ffn_dim": 1024,
    "decoder_ffn_dim": 1024,
    "max_position_embeddings": 256,
    "scale_embedding": True,
    "dropout": 0.1,
    "attention_dropout": 0.0,
    "activation_dropout": 0.0,
}


def text_infilling(
    token_ids: Sequence[int],
    mask_token_id: int,
    rng: np.random.Generator,
    mask_ratio: float = 0.35,
    poisson_lambda: float = 3.5,
    special_ids: Sequence[int] = (),
) -> list[int]:
    """mBART/BART text infilling of one token sequence.

    Spans with Poisson(`poisson_lambda`) lengths are masked until `round(mask_ratio * n)` of the n maskable
    tokens are covered (the last span is cut to fit); each maximal run of masked tokens becomes a single
    `mask_token_id`; a zero-length span inserts a mask token. Tokens in `special_ids` (`</s>`, language codes,
    `<s>`) are never masked and keep their places: only the maskable stretch between them is noised.
    """
    if not 0.0 <= mask_ratio <= 1.0:
        raise ValueError(f"mask_ratio={mask_ratio}: expected a fraction in [0, 1]")
    if poisson_lambda <= 0:
        raise ValueError(f"poisson_lambda={poisson_lambda}: expected a positive span-length mean")
    ids = list(token_ids)
    special = set(special_ids)
    maskable = [i for i, token in enumerate(ids) if token not in special]
    n = len(maskable)
    target = int(round(mask_ratio * n))
    if n == 0 or target == 0:
        return ids
    masked = np.zeros(len(ids), dtype=bool)
    inserts: set[int] = set()  # positions (in `ids`) before which a zero-length span puts a mask token
    covered = 0
    attempts = 0
    while covered < target and attempts < 100 * n:
        attempts += 1
        length = int(rng.poisson(poisson_lambda))
        start = int(rng.integers(n))
        if length == 0:
            inserts.add(maskable[start])
            continue
        for k in maskable[start : start + min(length, target - covered)]:
            if not masked[k]:
                masked[k] = True
                covered += 1
    out: list[int] = []
    for i, token in enumerate(ids):
        if i in inserts and not masked[i] and not (out and out[-1] == mask_token_id):
            out.append(mask_token_id)
        if masked[i]:
            if not (out and out[-1] == mask_token_id):
                out.append(mask_token_id)
        else:
            out.append(token)
    return out


def add_mask_token(tokenizer) -> int:
    """Give `tokenizer` a `<mask>` special token when it has none (offline tokenizers); its id."""
    if tokenizer.mask_token is None:
        tokenizer.add_special_tokens({"mask_token": MASK_TOKEN})
        logger.info("Added %s to the tokenizer (id %d)", MASK_TOKEN, tokenizer.mask_token_id)
    return tokenizer.mask_token_id


def build_model(tokenizer, model_config: dict | None = None, seed: int = 0):
    """A freshly initialised `MBartForConditionalGeneration` over `tokenizer`'s vocabulary."""
    from transformers import MBartConfig, MBartForConditionalGeneration

    settings = {**SMALL_MBART, **(model_config or {})}
    eos = tokenizer.eos_token_id
    settings.update(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=eos,
        decoder_start_token_id=eos,
        forced_eos_token_id=eos,
    )
    torch.manual_seed(seed)
    return MBartForConditionalGeneration(MBartConfig(**settings))


def _batch(encoded, indices, tokenizer, mask_id, special, rng, mask_ratio, poisson_lambda):
    sources = [text_infilling(encoded[i], mask_id, rng, mask_ratio, poisson_lambda, special) for i in indices]
    targets = [encoded[i] for i in indices]
    input_ids = pad_sequence([torch.tensor(s) for s in sources], batch_first=True, padding_value=tokenizer.pad_token_id)
    labels = pad_sequence([torch.tensor(t) for t in targets], batch_first=True, padding_value=-100)
    return {"input_ids": input_ids, "attention_mask": input_ids.ne(tokenizer.pad_token_id).long(), "labels": labels}


@torch.no_grad()
def _evaluate(model, encoded, tokenizer, mask_id, special, batch_size, mask_ratio, poisson_lambda, seed) -> float:
    """Mean denoising loss per target token on fixed noise (the same every call)."""
    model.eval()
    rng = np.random.default_rng([seed, 99])
    total, count = 0.0, 0
    for start in range(0, len(encoded), batch_size):
        indices = range(start, min(start + batch_size, len(encoded)))
        batch = _batch(encoded, indices, tokenizer, mask_id, special, rng, mask_ratio, poisson_lambda)
        tokens = int(batch["labels"].ne(-100).sum())
        total += model(**batch).loss.item() * tokens
        count += tokens
    model.train()
    return total / max(count, 1)


def pretrain_denoising_lm(
    texts: Sequence[str],
    tokenizer,
    output_dir: str | Path,
    *,
    model_config: dict | None = None,
    validation_texts: Sequence[str] | None = None,
    epochs: int = 3,
    max_steps: int | None = None,
    batch_size: int = 64,
    lr: float = 1e-3,
    warmup_ratio: float = 0.05,
    weight_decay: float = 0.01,
    max_grad_norm: float = 1.0,
    mask_ratio: float = 0.35,
    poisson_lambda: float = 3.5,
    max_length: int = 64,
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """Pre-train a small mBART (`SMALL_MBART` + `model_config`) on `texts` by text infilling; save it to `output_dir`.

    `tokenizer` gets a `<mask>` token if it has none. Training: AdamW, linear warm-up over `warmup_ratio` of the
    steps then cosine decay, gradient clipping, fresh noise every epoch (seeded by `seed` and the epoch).
    `validation_texts` (optional) are scored before and after training (denoising loss per token, fixed noise).
    The directory gets the model, generation config, tokenizer and `pretraining.json` (settings and losses);
    it is written to a temporary name first, so an interrupted run never leaves a half-written LM.
    Returns the output directory.
    """
    from tqdm.auto import tqdm
    from transformers import get_cosine_schedule_with_warmup

    texts = [str(t) for t in texts]
    if not texts:
        raise ValueError("texts is empty: expected sentences of the language to pre-train on")
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs={epochs}, batch_size={batch_size}: expected integers >= 1")
    output_dir = Path(output_dir)
    started = time.perf_counter()
    mask_id = add_mask_token(tokenizer)
    special = sorted(set(tokenizer.all_special_ids) - {mask_id})
    encode = lambda batch: tokenizer(list(batch), truncation=True, max_length=max_length)["input_ids"]  # noqa: E731
    encoded = encode(texts)
    validation = encode(validation_texts) if validation_texts else None

    model = build_model(tokenizer, model_config, seed)
    model.train()
    steps_per_epoch = math.ceil(len(encoded) / batch_size)
    total_steps = steps_per_epoch * epochs if max_steps is None else min(max_steps, steps_per_epoch * epochs)
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        (no_decay if parameter.dim() < 2 or "norm" in name else decay).append(parameter)
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=lr,
        betas=(0.9, 0.98),
        eps=1e-6,
        fused=True,
    )
    scheduler = get_cosine_schedule_with_warmup(optimizer, int(warmup_ratio * total_steps), total_steps)
    num_parameters = sum(p.numel() for p in model.parameters())
    logger.info(
        "Pre-training a %.1fM-parameter mBART (%s) on %d sentences: %d steps of %d, text infilling %.0f%% / Poisson(%.1f)",
        num_parameters / 1e6,
        {k: model.config.to_dict()[k] for k in ("d_model", "encoder_layers", "decoder_layers")},
        len(encoded),
        total_steps,
        batch_size,
        100 * mask_ratio,
        poisson_lambda,
    )
    initial_validation = None
    if validation is not None:
        initial_validation = _evaluate(
            model, validation, tokenizer, mask_id, special, batch_size, mask_ratio, poisson_lambda, seed
        )

    history = []
    step = 0
    bar = tqdm(total=total_steps, desc="LM pre-training", unit="step", disable=not progress)
    for epoch in range(epochs):
        rng = np.random.default_rng([seed, epoch])
        order = rng.permutation(len(encoded))
        epoch_loss, epoch_batches = 0.0, 0
        for start in range(0, len(order), batch_size):
            if step >= total_steps:
                break
            batch = _batch(
                encoded, order[start : start + batch_size], tokenizer, mask_id, special, rng, mask_ratio, poisson_lambda
            )
            loss = model(**batch).loss
            if not torch.isfinite(loss):
                raise RuntimeError(
                    f"LM pre-training: the loss became {loss.item()} at step {step}; lower lr (now {lr})"
                )
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            epoch_loss += loss.item()
            epoch_batches += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
        if epoch_batches:
            record = {"epoch": epoch + 1, "step": step, "train_loss": epoch_loss / epoch_batches}
            history.append(record)
            logger.info("LM pre-training epoch %d: loss %.3f", epoch + 1, record["train_loss"])
        if step >= total_steps:
            break
    bar.close()
    final_validation = None
    if validation is not None:
        final_validation = _evaluate(
            model, validation, tokenizer, mask_id, special, batch_size, mask_ratio, poisson_lambda, seed
        )
        logger.info(
            "LM denoising loss on %d held-out sentences: %.3f before, %.3f after pre-training",
            len(validation),
            initial_validation,
            final_validation,
        )

    model.generation_config.max_new_tokens = max_length
    tmp = output_dir.with_name(f".tmp-{output_dir.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    summary = {
        "objective": "mBART text infilling (single-sentence texts: no sentence permutation)",
        "mask_token": tokenizer.mask_token,
        "mask_ratio": mask_ratio,
        "poisson_lambda": poisson_lambda,
        "num_texts": len(encoded),
        "num_parameters": num_parameters,
        "model": {k: model.config.to_dict()[k] for k in SMALL_MBART},
        "vocab_size": len(tokenizer),
        "epochs": epochs,
        "steps": step,
        "batch_size": batch_size,
        "lr": lr,
        "warmup_ratio": warmup_ratio,
        "weight_decay": weight_decay,
        "seed": seed,
        "validation_loss_before": initial_validation,
        "validation_loss_after": final_validation,
        "history": history,
        "seconds": round(time.perf_counter() - started, 1),
    }
    (tmp / "pretraining.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    fsync_tree(tmp)
    replace_dir(tmp, output_dir)  # an interrupted save keeps the previous LM
    logger.info("Saved the pre-trained LM to %s (%.0f s)", output_dir, summary["seconds"])
    return output_dir
