"""Light-T fed perfect sign features: how fast the demo's translator learns when recognition is solved.

    python bench/bench_light_t_oracle.py [--steps 1500] [--seeds 0] [stage1.KEY=V data.OPTION=V ...]

Instead of the visual encoder's output, each sampled frame of a synthetic clip becomes a one-hot vector of the
sign it shows (zeros during transitions and rest), read from the clip's render spec, with the demo's T -> T/4
sampling. The demo's stage-1 model (VL-adapter + Light-T over the demo tokenizer, its optimizer and batch size)
trains on these through `forward(visual_features=...)`; dev BLEU-4 (greedy) is printed every `--every` steps.
It separates the two halves of stage 1: if Light-T learns from oracle features in a few hundred steps, a stage 1
that stays on the language prior for thousands of steps is failing at the visual side (BENCHMARKS.md,
"Stage 1 diagnosis"). Synthetic corpus only (it needs the render specs).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import sacrebleu
import torch
from _benchutil import machine_info, markdown_table, print_machine, write_json

from data_builders.synthetic import LEXICON
from train.demo import build_configs, build_corpus, lm_texts, train_lm_tokenizer
from train.model_building import stage1_model, stage1_processor
from train.optimizer import build_optimizer


def oracle_features(rows, video_processor, size: int, training: bool):
    """(features, mask): one-hot sign per sampled frame of each clip."""
    index = {gloss: i for i, gloss in enumerate(LEXICON)}
    clips = []
    for row in rows:
        spec = row["video"]["synthetic"]
        spec = json.loads(spec) if isinstance(spec, str) else spec
        frames = video_processor.sample_frame_indices(spec["num_frames"], training=training)
        features = torch.zeros(len(frames), size)
        for j, frame in enumerate(frames):
            t = frame / spec["fps"]
            for gloss, (start, end, *_) in zip(row["gloss"].split(), spec["signs"]):
                if start <= t <= end:
                    features[j, index[gloss]] = 1.0
        clips.append(features)
    length = max(len(c) for c in clips)
    features, mask = torch.zeros(len(clips), length, size), torch.zeros(len(clips), length, dtype=torch.long)
    for i, clip in enumerate(clips):
        features[i, : len(clip)], mask[i, : len(clip)] = clip, 1
    return features, mask


def run(seed: int, args, output_dir: Path) -> list[dict]:
    _, stage1, _, _ = build_configs(output_dir / f"seed-{seed}", overrides=[f"stage1.seed={seed}", *args.overrides])
    stage1 = stage1.resolved()
    corpus = build_corpus(stage1)
    tokenizer_dir = output_dir / "tokenizer"
    if not (tokenizer_dir / "tokenizer_config.json").is_file():
        lm, *_ = build_configs(output_dir, overrides=args.overrides)
        train_lm_tokenizer(lm, lm_texts(lm["texts"], corpus, stage1.data.options.get("vocabulary_size")), tokenizer_dir)
    stage1.model.tokenizer = str(tokenizer_dir)
    torch.manual_seed(seed)
    processor = stage1_processor(stage1, list(corpus["train"]["text"]))
    model = stage1_model(stage1, processor)
    if model.visual_encoder.output_size < len(LEXICON):
        raise ValueError(f"the visual feature size {model.visual_encoder.output_size} < {len(LEXICON)} signs")
    optimizer = build_optimizer(model, stage1)
    rng = np.random.default_rng(seed)
    train_rows, dev = corpus["train"], corpus["validation"]
    dev_features = oracle_features(list(dev), processor.video_processor, model.visual_encoder.output_size, False)
    rows, start = [], time.perf_counter()
    for step in range(1, args.steps + 1):
        batch = [train_rows[int(i)] for i in rng.integers(0, len(train_rows), stage1.training.batch_size)]
        features, mask = oracle_features(batch, processor.video_processor, model.visual_encoder.output_size, True)
        labels = processor.tokenize_targets([row["text"] for row in batch], max_length=stage1.data.max_target_length)
        loss = model(visual_features=features, visual_mask=mask, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % args.every == 0 or step == args.steps:
            model.eval()
            with torch.no_grad():
                output = model.generate(
                    visual_features=dev_features[0],
                    visual_mask=dev_features[1],
                    num_beams=1,
                    max_new_tokens=stage1.evaluation.max_new_tokens,
                )
            model.train()
            hypotheses = processor.batch_decode(output)
            rows.append(
                {
                    "seed": seed,
                    "step": step,
                    "loss": loss.item(),
                    "dev_bleu4": sacrebleu.corpus_bleu(hypotheses, [list(dev["text"])]).score,
                    "distinct_outputs": len(set(hypotheses)),
                    "seconds": time.perf_counter() - start,
                }
            )
            print(rows[-1], flush=True)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="stage1.KEY=V / data.OPTION=V, as for flallm demo"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--every", type=int, default=250, help="dev evaluation every N steps")
    parser.add_argument("--output-dir", default="runs/bench-light-t-oracle")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    info = machine_info(args.threads)
    rows = [row for seed in args.seeds for row in run(seed, args, Path(args.output_dir).resolve())]
    print_machine(info)
    print(
        markdown_table(
            rows,
            [
                ("seed", "seed"),
                ("step", "step"),
                ("loss", "train loss"),
                ("dev_bleu4", "dev BLEU-4 (greedy)"),
                ("distinct_outputs", "distinct dev outputs"),
                ("seconds", "seconds"),
            ],
        )
    )
    write_json(args.json, {"machine": info, "overrides": args.overrides, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
