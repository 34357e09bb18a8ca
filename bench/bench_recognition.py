"""Can the visual encoder learn the signs, and does stage 1 learn them as well as a plain recogniser?

    python bench/bench_recognition.py --seeds 0 1 [--steps N] [--output-dir DIR] [stage1.KEY=V data.OPTION=V ...]
    python bench/bench_recognition.py --quick                     # a seconds-long smoke run (learns nothing)

A diagnosis on the demo's synthetic corpus (train/configs/demo_stage1.yaml via `train.demo.build_configs`, the
demo's override syntax). For each seed, with stage 1's budget (its batch size, optimizer, learning-rate schedule
and number of optimizer steps: epochs x ceil(num_train / batch_size), or `--steps N` when smaller), it trains:

- `ctc`: a gloss recogniser: stage 1's visual encoder (ResNet backbone + temporal Conv1D module, built exactly as
  `train.model_building.stage1_model` builds it, so the same seed gives the same initial weights), a linear layer over
  the train split's glosses + a blank, and CTC over the temporal features' time axis (T/frame_sample_rate
  steps). It sees the same batches in the same order with the same augmentation as the trainer's stage 1
  (`EpochShuffleSampler`, `SeededCollator`). Greedy CTC decoding on the validation split;
- `stage1-gloss`: stage 1 itself (`train.trainer.train`, visual encoder + VL-adapter + Light-T) with the gloss
  sequence as its target sentence, over a byte-level BPE tokenizer trained on the train glosses (large enough
  that every gloss is one piece; hyphenated glosses such as LAST-WEEK are three: the pre-tokenizer splits at
  the hyphen). Its dev predictions (beam search as the config says) are scored against the glosses;
- `stage1-gloss (no BoW)` (with `--with-and-without-bow`, the default): the same with
  `model.config.bag_of_words_weight` 0, the paper's recipe (the demo config adds a bag-of-words loss).

It prints one table (method, seed, steps, dev WER, seconds) and, per seed, the ratio of each stage-1 WER to the
CTC WER: near 1, stage 1 recognises the signs as well as a model trained for nothing else; far above 1, the
visual encoder could learn them but stage 1's recipe does not teach it to. WER: word-level Levenshtein distance
summed over the dev sentences / number of reference words x 100 (`word_error_rate`).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from pathlib import Path

import torch
from _benchutil import machine_info, markdown_table, print_machine, write_json

from train.config import TrainConfig
from train.demo import build_configs, build_corpus
from train.model_building import stage1_model, stage1_processor
from train.optimizer import build_optimizer
from train.sampling import EpochShuffleSampler, SeededCollator
from train.trainer import train

# The gloss tokenizer of the stage-1 runs: byte-level BPE stops merging at ~470 pieces on the demo's glosses,
# where every gloss is a single piece (with a vocabulary of 400, 20 of the 61 glosses were still split).
GLOSS_TOKENIZER = {"vocab_size": 600, "model_type": "bpe"}
METHODS = ("ctc", "stage1-gloss", "stage1-gloss (no BoW)")


# ------------------------------------------------------------------------------------------------
# Metric


def align(hypothesis: list[str], reference: list[str]) -> tuple[int, list[tuple[str, str]]]:
    """Word-level Levenshtein distance, and the (reference, hypothesis) pairs a minimum-edit alignment substitutes."""
    rows, cols = len(hypothesis) + 1, len(reference) + 1
    cost = [[i + j if i == 0 or j == 0 else 0 for j in range(cols)] for i in range(rows)]
    for i in range(1, rows):
        for j in range(1, cols):
            cost[i][j] = min(
                cost[i - 1][j] + 1, cost[i][j - 1] + 1, cost[i - 1][j - 1] + (hypothesis[i - 1] != reference[j - 1])
            )
    pairs, i, j = [], rows - 1, cols - 1
    while i > 0 and j > 0:
        if cost[i][j] == cost[i - 1][j - 1] + (hypothesis[i - 1] != reference[j - 1]):
            if hypothesis[i - 1] != reference[j - 1]:
                pairs.append((reference[j - 1], hypothesis[i - 1]))
            i, j = i - 1, j - 1
        elif cost[i][j] == cost[i - 1][j] + 1:
            i -= 1
        else:
            j -= 1
    return cost[-1][-1], pairs[::-1]


def word_error_rate(hypotheses, references) -> float:
    """Word error rate in %: word-level Levenshtein distances (substitutions, insertions, deletions) summed over
    the sentences, divided by the number of reference words. Sentences are strings (split on whitespace) or
    lists of words."""
    hypotheses, references = list(hypotheses), list(references)
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    words = lambda sentence: sentence.split() if isinstance(sentence, str) else list(sentence)  # noqa: E731
    errors = sum(align(words(h), words(r))[0] for h, r in zip(hypotheses, references))
    total = sum(len(words(r)) for r in references)
    if total == 0:
        return 0.0 if errors == 0 else math.inf
    return 100.0 * errors / total


# ------------------------------------------------------------------------------------------------
# Configs


def gloss_stage1_config(
    stage1: TrainConfig, output_dir: Path, steps: int | None, bag_of_words_weight: float | None = None
) -> TrainConfig:
    """Stage 1 with the glosses as targets: a gloss tokenizer trained by the trainer, validation at the end only,
    no test pass, runs under `output_dir`. Rebuilt from a dict, so that the result is validated again."""
    data = stage1.to_dict()
    epochs = stage1.resolved().training.epochs
    model = data["model"]
    model.update(tokenizer=None, train_tokenizer=dict(GLOSS_TOKENIZER), trim_vocabulary=False)
    if bag_of_words_weight is not None:
        model["config"]["bag_of_words_weight"] = bag_of_words_weight
    data.update(output_dir=str(output_dir), export_dir=str(output_dir / "best"))
    data["evaluation"]["every_epochs"] = epochs
    data["evaluation"]["every_steps"] = None
    data["data"]["test_split"] = None  # dev WER only: the test pass would cost a beam search over the test split
    data["checkpointing"]["resume"] = False
    if steps:
        current = data["training"].get("max_steps")
        data["training"]["max_steps"] = min(steps, current) if current else steps
    return TrainConfig.from_dict(data, source="stage 1 (gloss targets)")


def train_rows(config: TrainConfig, corpus):
    rows = corpus[config.data.train_split]
    limit = config.data.max_train_samples
    return rows.select(range(min(limit, len(rows)))) if limit else rows


def step_budget(config: TrainConfig, num_train: int) -> int:
    """The trainer's number of optimizer steps (one process)."""
    config = config.resolved()
    batches = math.ceil(num_train / config.training.batch_size)
    total = math.ceil(batches / config.training.gradient_accumulation_steps) * config.training.epochs
    return min(total, config.training.max_steps) if config.training.max_steps else total


def gloss_corpus(corpus):
    """The corpus with each clip's gloss sequence as its target sentence."""
    return corpus.map(lambda row: {"text": row["gloss"]}, desc="gloss targets")


# ------------------------------------------------------------------------------------------------
# CTC recogniser


class CtcRecogniser(torch.nn.Module):
    """Stage 1's visual encoder + a linear layer over the glosses and a blank (id 0)."""

    def __init__(self, visual_encoder: torch.nn.Module, num_glosses: int):
        super().__init__()
        self.visual_encoder = visual_encoder
        self.classifier = torch.nn.Linear(visual_encoder.output_size, num_glosses + 1)

    def forward(self, pixel_values, pixel_mask):
        """Log-probabilities (batch, steps, glosses + 1) over the temporal module's time axis."""
        features = self.visual_encoder(pixel_values, pixel_mask)
        return torch.log_softmax(self.classifier(features).float(), dim=-1)


class GlossCollator:
    """pixel_values / pixel_mask of `data_builders.SignTranslationCollator` + the glosses as CTC targets (1-based)."""

    def __init__(self, processor, vocabulary: dict[str, int], training: bool):
        from data_builders import SignTranslationCollator

        self.collator = SignTranslationCollator(processor, training=training, with_labels=False)
        self.vocabulary = vocabulary

    def __call__(self, examples):
        batch = dict(self.collator(examples))
        targets = [
            [self.vocabulary[word] for word in example["gloss"].split() if word in self.vocabulary]
            for example in examples
        ]
        batch["targets"] = torch.tensor([i for sequence in targets for i in sequence], dtype=torch.long)
        batch["target_lengths"] = torch.tensor([len(sequence) for sequence in targets], dtype=torch.long)
        batch["ids"] = [example["id"] for example in examples]
        return batch


def greedy_ctc_decode(log_probs: torch.Tensor, lengths: torch.Tensor, glosses: list[str]) -> list[str]:
    """Best path: the most likely class per step, repeats merged, blanks (0) dropped."""
    best = log_probs.argmax(-1).tolist()
    sentences = []
    for path, length in zip(best, lengths.tolist()):
        words, previous = [], 0
        for index in path[:length]:
            if index != previous and index != 0:
                words.append(glosses[index - 1])
            previous = index
        sentences.append(" ".join(words))
    return sentences


def train_ctc(config: TrainConfig, corpus, steps: int, output_dir: Path) -> dict:
    """Train the CTC recogniser with stage 1's budget; dev WER of greedy decoding."""
    from accelerate.utils import set_seed
    from torch.utils.data import DataLoader
    from transformers import get_scheduler

    config = config.resolved()
    rows, dev_rows = train_rows(config, corpus), corpus[config.data.validation_split]
    glosses = sorted({word for sentence in rows["gloss"] for word in sentence.split()})
    vocabulary = {word: i + 1 for i, word in enumerate(glosses)}
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    # The trainer's order: seed, processor (its tokenizer is trained, unused here), model: the same initial weights.
    set_seed(config.seed)
    processor = stage1_processor(config, list(rows["text"]))
    model = CtcRecogniser(stage1_model(config, processor).visual_encoder, len(glosses)).to(device)
    optimizer = build_optimizer(model, config, device)
    warmup = config.scheduler.warmup_steps or int(config.scheduler.warmup_ratio * steps)
    scheduler = get_scheduler(config.scheduler.name, optimizer, num_warmup_steps=warmup, num_training_steps=steps)
    sampler = EpochShuffleSampler(len(rows), config.seed)
    collate = SeededCollator(GlossCollator(processor, vocabulary, training=True), config.seed)
    loader = DataLoader(
        rows,
        batch_size=config.training.batch_size,
        sampler=sampler,
        collate_fn=collate,
        num_workers=config.data.num_workers,
    )
    trainable = [p for p in model.parameters() if p.requires_grad]
    step, epoch, losses, log, loss_sum = 0, 0, [], [], 0.0
    model.train()
    while step < steps:
        sampler.set_epoch(epoch)
        collate.set_epoch(epoch)
        for batch in loader:
            pixel_values, pixel_mask = batch["pixel_values"].to(device), batch["pixel_mask"].to(device)
            log_probs = model(pixel_values, pixel_mask)
            loss = torch.nn.functional.ctc_loss(
                log_probs.transpose(0, 1),
                batch["targets"].to(device),
                pixel_mask.sum(1),
                batch["target_lengths"].to(device),
                blank=0,
                zero_infinity=True,
            )
            if not torch.isfinite(loss):
                raise FloatingPointError(f"CTC loss is not finite at step {step}")
            loss.backward()
            if config.training.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(trainable, config.training.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            step += 1
            losses.append(loss.item())
            loss_sum += losses[-1]
            if step % config.training.log_every_steps == 0 or step == steps:
                log.append({"step": step, "loss": sum(losses) / len(losses)})
                losses = []
            if step >= steps:
                break
        epoch += 1

    model.eval()
    dev_loader = DataLoader(
        dev_rows,
        batch_size=config.evaluation.batch_size,
        shuffle=False,
        collate_fn=GlossCollator(processor, vocabulary, training=False),
        num_workers=config.data.num_workers,
    )
    predictions = []
    with torch.no_grad():
        for batch in dev_loader:
            pixel_mask = batch["pixel_mask"].to(device)
            log_probs = model(batch["pixel_values"].to(device), pixel_mask)
            hypotheses = greedy_ctc_decode(log_probs, pixel_mask.sum(1), glosses)
            predictions += [{"id": i, "hypothesis": h} for i, h in zip(batch["ids"], hypotheses)]
    references = {row["id"]: row["gloss"] for row in dev_rows}
    for prediction in predictions:
        prediction["reference"] = references[prediction["id"]]
    output_dir.mkdir(parents=True, exist_ok=True)
    with open(output_dir / "validation.jsonl", "w", encoding="utf-8") as handle:
        for prediction in predictions:
            handle.write(json.dumps(prediction, ensure_ascii=False) + "\n")
    (output_dir / "train_loss.json").write_text(json.dumps(log), encoding="utf-8")
    return {
        "steps": step,
        "dev_wer": word_error_rate([p["hypothesis"] for p in predictions], [p["reference"] for p in predictions]),
        **motion_confusions(predictions),
        "train_loss_mean": loss_sum / max(1, step),
        "train_loss_last": log[-1]["loss"] if log else None,
        "num_glosses": len(glosses),
    }


def motion_confusions(predictions: list[dict]) -> dict:
    """Of the substituted signs, how many differ from the right one only in motion (same handshape and location)?

    The synthetic signs are handshape x location x motion; at 12 fps and T/4 a 0.6 s sign leaves about two sampled
    frames, so if the motion were lost, those pairs would dominate the substitutions. `chance` is the share of such
    pairs among all pairs of signs that occur in the references.
    """
    from data_builders.synthetic import SIGN_CODES

    same_place = lambda a, b: a in SIGN_CODES and b in SIGN_CODES and SIGN_CODES[a][:2] == SIGN_CODES[b][:2]  # noqa: E731
    pairs = [pair for p in predictions for pair in align(p["hypothesis"].split(), p["reference"].split())[1]]
    signs = sorted({sign for p in predictions for sign in p["reference"].split() if sign in SIGN_CODES})
    all_pairs = [(a, b) for a in signs for b in signs if a != b]
    return {
        "substitutions": len(pairs),
        "motion_only": sum(same_place(a, b) for a, b in pairs),
        "chance": sum(same_place(a, b) for a, b in all_pairs) / max(1, len(all_pairs)),
    }


# ------------------------------------------------------------------------------------------------
# Stage 1 on gloss targets


def last_validation_predictions(run_dir: Path) -> list[dict]:
    files = sorted((Path(run_dir) / "predictions").glob("validation-step*.jsonl"))
    if not files:
        raise FileNotFoundError(f"no validation predictions in {run_dir / 'predictions'}")
    with open(files[-1], encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def train_stage1_gloss(config: TrainConfig, corpus) -> dict:
    result = train(config, datasets=corpus)
    predictions = last_validation_predictions(result.output_dir)
    validation = result.metrics.get("validation", {})
    return {
        "steps": result.global_step,
        "dev_wer": word_error_rate([p["hypothesis"] for p in predictions], [p["reference"] for p in predictions]),
        **motion_confusions(predictions),
        "dev_bleu4": validation.get("bleu4"),
        "train_loss_mean": validation.get("train_loss"),
    }  # since the last validation


# ------------------------------------------------------------------------------------------------
# Command line


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="stage1.KEY=V / data.OPTION=V, as for flallm demo"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="stage-1 seeds, space separated (default 0)")
    parser.add_argument(
        "--steps", type=int, help="at most this many optimizer steps per run (default: stage 1's budget)"
    )
    parser.add_argument("--output-dir", default="runs/bench-recognition", help="runs and the corpus cache go here")
    parser.add_argument("--quick", action="store_true", help="the demo's --quick sizes (a smoke run; learns nothing)")
    parser.add_argument(
        "--with-and-without-bow",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run stage 1 with model.config.bag_of_words_weight=0, the paper's recipe (default on)",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as the demo)")
    parser.add_argument("--json", help="also write the rows and machine info here")
    args = parser.parse_args(argv)
    if args.steps is not None and args.steps < 1:
        parser.error("--steps must be >= 1")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        return _run(args)
    finally:
        torch.set_num_threads(previous_threads)


def _run(args) -> int:
    info = machine_info(args.threads)
    output_dir = Path(args.output_dir).resolve()
    rows, corpus, glosses = [], None, None
    for seed in args.seeds:
        _, stage1, _, _ = build_configs(
            output_dir, quick=args.quick, overrides=[f"stage1.seed={seed}", *args.overrides]
        )
        if corpus is None:
            corpus = build_corpus(stage1)
            glosses = gloss_corpus(corpus)
        seed_dir = output_dir / f"seed-{seed}"
        weight = float(stage1.model.config.get("bag_of_words_weight", 0.0))
        runs = [("stage1-gloss", None)]
        if args.with_and_without_bow and weight > 0:
            runs.append(("stage1-gloss (no BoW)", 0.0))
        base = gloss_stage1_config(stage1, seed_dir / "ctc", args.steps)
        steps = step_budget(base, len(train_rows(base, glosses)))

        start = time.perf_counter()
        scores = train_ctc(base, glosses, steps, seed_dir / "ctc")
        rows.append({"method": "ctc", "seed": seed, **scores, "seconds": time.perf_counter() - start})
        for method, override in runs:
            name = "stage1-gloss" if override is None else "stage1-gloss-no-bow"
            config = gloss_stage1_config(stage1, seed_dir / name, args.steps, override)
            start = time.perf_counter()
            scores = train_stage1_gloss(config, glosses)
            rows.append(
                {
                    "method": method,
                    "seed": seed,
                    "bag_of_words_weight": weight if override is None else override,
                    **scores,
                    "seconds": time.perf_counter() - start,
                }
            )

    ratios = []
    for seed in args.seeds:
        by_method = {row["method"]: row for row in rows if row["seed"] == seed}
        ctc = by_method["ctc"]["dev_wer"]
        for method in METHODS[1:]:
            if method in by_method:
                wer = by_method[method]["dev_wer"]
                ratios.append(
                    {"seed": seed, "method": method, "ratio": wer / ctc if ctc > 0 else (1.0 if wer == 0 else math.inf)}
                )
    info["load_average_end"] = machine_info()["load_average_start"]
    print_machine(info)
    print(f"# overrides: {' '.join(args.overrides) or '(none)'}" + (f"; --steps {args.steps}" if args.steps else ""))
    weights = sorted({(row["method"], row["bag_of_words_weight"]) for row in rows if "bag_of_words_weight" in row})
    print("# stage-1 bag_of_words_weight: " + ", ".join(f"{method} {weight:g}" for method, weight in weights))
    print(
        markdown_table(
            rows,
            [
                ("method", "method"),
                ("seed", "seed"),
                ("steps", "steps"),
                ("dev_wer", "dev WER (%)"),
                ("substitutions", "substituted signs"),
                ("motion_only", "of which motion only"),
                ("seconds", "seconds"),
            ],
        )
    )
    chance = next((row["chance"] for row in rows if "chance" in row), None)
    if chance is not None:
        print(
            f"# 'motion only': the right and the written sign share handshape and location; {100 * chance:.1f}% of the "
            "pairs of signs in the dev references do"
        )
    for seed in args.seeds:
        parts = [f"{r['method']} {r['ratio']:.2f}" for r in ratios if r["seed"] == seed]
        print(f"# seed {seed}: stage-1 dev WER / CTC dev WER: " + ", ".join(parts))
    write_json(
        args.json,
        {
            "machine": info,
            "overrides": args.overrides,
            "steps": args.steps,
            "quick": args.quick,
            "gloss_tokenizer": GLOSS_TOKENIZER,
            "rows": rows,
            "ratios": ratios,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
