"""The whole default `flallm demo`, once per seed: what it learns, how reliably, and how long it takes.

    python bench/bench_demo.py --seeds 0 1 2 [--output-dir DIR] [stage1.KEY=V stage2.KEY=V lm.KEY=V data.KEY=V ...]
    python bench/bench_demo.py --seeds 0 1 --quick          # a smoke run of the script (learns nothing)

Each seed is one `train.demo.run_demo` (the same code as `flallm demo`) with `stage1.seed`, `stage2.seed` (and so the
LM's seed) set to it; the corpus is the demo's own (its seed is a corpus option, `data.seed=N`). Prints, per seed and
as mean +- std over the seeds, test BLEU-1 / BLEU-4 / ROUGE-L of the constant baseline, stage 1, stage 2 and the
gloss-to-text ceiling (the same LM fine-tuned on the gold signs with stage 2's budget), stage 2 as a fraction of
the ceiling, and the wall time of each step. Run it on a quiet machine: the timings are part of the result.
"""

from __future__ import annotations

import argparse
import logging
import statistics
from pathlib import Path

from _benchutil import machine_info, markdown_table, print_machine, write_json

from train.demo import run_demo
from train.metrics import SCORE_NAMES

SYSTEMS = (("baseline", "baseline"), ("stage1", "stage 1"), ("stage2", "stage 2"), ("gloss_to_text", "gloss-to-text"))
METRICS = tuple((key, SCORE_NAMES[key]) for key in ("bleu1", "bleu4", "rougeL"))
TIMES = ("stage1", "lm_pretraining", "ceiling", "waiting_for_lm", "stage2", "total")


def run_row(seed: int, metrics: dict) -> dict:
    row = {"seed": seed}
    for system, _ in SYSTEMS:
        for key, _ in METRICS:
            row[f"{system}_{key}"] = (metrics.get(system) or {}).get(key)
    if row["gloss_to_text_bleu4"]:
        row["stage2_of_ceiling"] = row["stage2_bleu4"] / row["gloss_to_text_bleu4"]
    row.update({f"seconds_{k}": metrics["seconds"].get(k) for k in TIMES})
    return row


def summary_rows(rows: list[dict]) -> list[dict]:
    """One row per system: mean +- std (population std over the seeds) and the range of each metric."""
    out = []
    for system, name in SYSTEMS:
        row = {"system": name}
        for key, header in METRICS:
            values = [r[f"{system}_{key}"] for r in rows if r.get(f"{system}_{key}") is not None]
            if values:
                row[header] = (
                    f"{statistics.mean(values):.1f} +- {statistics.pstdev(values):.1f} "
                    f"({min(values):.1f}-{max(values):.1f})"
                )
        out.append(row)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="as for flallm demo (stage1./stage2./lm./data.)"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds (default 0 1 2)")
    parser.add_argument("--output-dir", default="runs/bench-demo", help="one demo directory per seed goes here")
    parser.add_argument("--quick", action="store_true", help="flallm demo --quick sizes (a smoke run; learns nothing)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process (default 1, as flallm demo)")
    parser.add_argument("--json", help="also write every run, the summary and the machine info here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    info = machine_info(args.threads)
    rows = []
    for seed in args.seeds:
        overrides = [f"stage1.seed={seed}", f"stage2.seed={seed}", *args.overrides]
        metrics = run_demo(
            Path(args.output_dir) / f"seed-{seed}",
            quick=args.quick,
            overrides=overrides,
            threads=args.threads,
            num_examples=0,
        )
        rows.append(run_row(seed, metrics))
    info["load_average_end"] = machine_info()["load_average_start"]
    print_machine(info)
    print(f"# overrides: {' '.join(args.overrides) or '(none)'}")
    columns = [("seed", "seed")]
    for system, name in SYSTEMS:
        columns += [
            (f"{system}_{key}", f"{name} {header}") for key, header in METRICS if key != "bleu1" or system != "baseline"
        ]
    columns += [("stage2_of_ceiling", "stage 2 / ceiling")]
    print(markdown_table(rows, columns))
    print()
    print(markdown_table(rows, [("seed", "seed")] + [(f"seconds_{k}", f"{k} s") for k in TIMES]))
    print()
    summary = summary_rows(rows)
    print(f"mean +- std (range) over seeds {' '.join(map(str, args.seeds))}:")
    print(markdown_table(summary, [("system", "system")] + [(header, header) for _, header in METRICS]))
    write_json(args.json, {"machine": info, "overrides": args.overrides, "rows": rows, "summary": summary})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
