"""`flallm demo`: the whole method on the built-in synthetic sign language, offline, on a CPU.

Synthetic corpus -> stage 1 (visual encoder + VL-adapter + Light-T) -> a small seq2seq LM
pre-trained by denoising on the language's text (standing in for mBART, which cannot be
downloaded here) -> stage 2 (frozen encoder + LLM-adapter + that LM) -> test metrics for both
stages next to a constant-output baseline, and a few translations.
"""

import collections
import json
import logging
import time
from pathlib import Path

from transformers import AutoTokenizer

logger = logging.getLogger(__name__)

# Sized for a 2-core CPU; `--quick` shrinks everything to a smoke test.
CORPUS = {"seed": 0, "num_train": 1000, "num_validation": 100, "num_test": 100, "resolution": 32}
QUICK_CORPUS = {"seed": 0, "num_train": 16, "num_validation": 4, "num_test": 4, "resolution": 16}


def add_arguments(parser):
    parser.add_argument("--output-dir", default="flallm-demo", help="where stage1/, stage2/ and metrics.json go")
    parser.add_argument("--llm", default=None, help="stage-2 LLM (Hub id or path); default: pre-train a small one here")
    parser.add_argument("--quick", action="store_true", help="a tiny smoke run (seconds; it does not learn)")
    parser.add_argument("--stage1-epochs", type=int, default=None)
    parser.add_argument("--stage2-epochs", type=int, default=None)
    parser.add_argument("--num-examples", type=int, default=3, help="translations to print per stage")


def run(args) -> int:
    from data_builders import load_sign_dataset, synthetic_text
    from train.config import load_config
    from train.lm_pretraining import pretrain_denoising_lm
    from train.metrics import load_metric
    from train.trainer import train

    started = time.time()
    output_dir = Path(args.output_dir).resolve()
    corpus_options = QUICK_CORPUS if args.quick else CORPUS
    corpus = load_sign_dataset("synthetic", **corpus_options)
    size = corpus_options["resolution"]
    common = [f"data.options={json.dumps(corpus_options)}", f"model.video_processor={{size: {size}, crop_size: {size}}}"]
    if args.quick:
        common += ["training.max_steps=2", "training.batch_size=4", "evaluation.max_new_tokens=5"]

    stage1_overrides = common + [f"output_dir={output_dir / 'runs' / 'stage1'}", f"export_dir={output_dir / 'stage1'}"]
    if args.stage1_epochs:
        stage1_overrides.append(f"training.epochs={args.stage1_epochs}")
    logger.info("stage 1: visual encoder + VL-adapter + Light-T")
    stage1 = train(load_config("demo_stage1.yaml", stage1_overrides), datasets=corpus)

    language_model = args.llm
    if language_model is None:
        logger.info("pre-training a small seq2seq LM on the synthetic language's text (text infilling)")
        tokenizer = AutoTokenizer.from_pretrained(stage1.export_dir)
        texts = synthetic_text(200 if args.quick else 20000, seed=1, split="train")
        language_model = pretrain_denoising_lm(
            texts, tokenizer, output_dir / "lm", epochs=1 if args.quick else 3, max_steps=2 if args.quick else None,
            progress=True,
        )

    stage2_overrides = common + [
        f"output_dir={output_dir / 'runs' / 'stage2'}", f"export_dir={output_dir / 'stage2'}",
        f"model.stage1={stage1.export_dir}", f"model.language_model={language_model}",
    ]
    if args.stage2_epochs:
        stage2_overrides.append(f"training.epochs={args.stage2_epochs}")
    logger.info("stage 2: frozen visual encoder + LLM-adapter + pre-trained LM")
    stage2 = train(load_config("demo_stage2.yaml", stage2_overrides), datasets=corpus)

    references = corpus["test"]["text"]
    most_frequent = collections.Counter(corpus["train"]["text"]).most_common(1)[0][0]
    baseline = load_metric().compute(predictions=[most_frequent] * len(references), references=references, language="en")
    keys = ("bleu1", "bleu2", "bleu3", "bleu4", "rougeL")
    metrics = {
        "stage1": {k: stage1.metrics["test"][k] for k in keys},
        "stage2": {k: stage2.metrics["test"][k] for k in keys},
        "baseline": {k: baseline[k] for k in keys} | {"prediction": most_frequent},
        "wall_time_s": round(time.time() - started, 1),
        "corpus": corpus_options,
    }
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    print(format_table(metrics, keys))
    for name, result in (("stage 1", stage1), ("stage 2", stage2)):
        print(f"\n{name} translations (test):")
        for row in test_predictions(result.output_dir)[: args.num_examples]:
            print(f"  reference:  {row['reference']}\n  prediction: {row['hypothesis']}")
    print(f"\nstage directories (from_pretrained / pipeline): {output_dir / 'stage1'}  {output_dir / 'stage2'}")
    print(f"metrics: {output_dir / 'metrics.json'}   wall time: {metrics['wall_time_s']:.0f} s")
    return 0


def format_table(metrics: dict, keys) -> str:
    rows = [("", *keys)] + [
        (name, *(f"{metrics[name][k]:.2f}" for k in keys)) for name in ("baseline", "stage1", "stage2")
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.rjust(width) for cell, width in zip(row, widths)) for row in rows)


def test_predictions(run_dir: Path) -> list[dict]:
    """The test-split predictions the trainer wrote for the exported model."""
    files = sorted((Path(run_dir) / "predictions").glob("test-*.jsonl"))
    if not files:
        return []
    return [json.loads(line) for line in files[-1].read_text(encoding="utf-8").splitlines() if line.strip()]
