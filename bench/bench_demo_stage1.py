"""Stage 1 of `flallm demo` alone, once per seed: how reliably Light-T leaves the language prior.

    python bench/bench_demo_stage1.py --seeds 42,7 [--output-dir DIR] [stage1.KEY=V data.OPTION=V ...]
    python bench/bench_demo_stage1.py --seeds 1,2 --quick            # a seconds-long smoke run

Trained from scratch without help, Light-T first emits a few fluent sentences for every clip and starts using
the video late, if at all (BENCHMARKS.md, "Stage 1 diagnosis"; compare the default with
`stage1.model.config.bag_of_words_weight=0`). This script runs the demo's stage 1
(train/configs/demo_stage1.yaml, the demo's override syntax, `train.demo.build_configs`) for each seed, one
after the other, over the demo LM's tokenizer (trained once, no LM pre-training), and prints dev and test
BLEU-4 / BLEU-1 of the best-on-dev checkpoint and the time of each run.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import torch
from _benchutil import machine_info, markdown_table, print_machine, write_json

from train.demo import build_configs, build_corpus, lm_texts, train_lm_tokenizer
from train.trainer import train


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="stage1.KEY=V / data.OPTION=V, as for flallm demo"
    )
    parser.add_argument("--seeds", default="42", help="comma-separated stage-1 seeds (default 42, the trainer's)")
    parser.add_argument("--output-dir", default="runs/bench-demo-stage1", help="runs and the tokenizer go here")
    parser.add_argument("--quick", action="store_true", help="the demo's --quick sizes (a smoke run; learns nothing)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as the demo)")
    parser.add_argument("--json", help="also write the rows and machine info here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    info = machine_info(args.threads)
    output_dir = Path(args.output_dir).resolve()
    tokenizer_dir = output_dir / "tokenizer"
    rows = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        overrides = [f"stage1.seed={seed}", *args.overrides]
        lm, stage1, _, _ = build_configs(output_dir / f"seed-{seed}", quick=args.quick, overrides=overrides)
        corpus = build_corpus(stage1)
        if not (tokenizer_dir / "tokenizer_config.json").is_file():
            train_lm_tokenizer(
                lm, lm_texts(lm["texts"], corpus, stage1.data.options.get("vocabulary_size")), tokenizer_dir
            )
        stage1.model.tokenizer = str(tokenizer_dir)
        start = time.perf_counter()
        result = train(stage1, datasets=corpus)
        test, dev = result.metrics["test"], result.metrics.get("validation", {})
        rows.append(
            {
                "seed": seed,
                "steps": result.global_step,
                "dev_bleu4": dev.get("bleu4"),
                "test_bleu4": test["bleu4"],
                "test_bleu1": test["bleu1"],
                "seconds": time.perf_counter() - start,
            }
        )
    info["load_average_end"] = machine_info()["load_average_start"]
    print_machine(info)
    print(f"# overrides: {' '.join(args.overrides) or '(none)'}")
    print(
        markdown_table(
            rows,
            [
                ("seed", "seed"),
                ("steps", "steps"),
                ("dev_bleu4", "dev BLEU-4"),
                ("test_bleu4", "test BLEU-4"),
                ("test_bleu1", "test BLEU-1"),
                ("seconds", "seconds"),
            ],
        )
    )
    write_json(args.json, {"machine": info, "overrides": args.overrides, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
