"""bf16 against fp32 inference on a trained checkpoint: seconds and test BLEU-4, measured in one run.

    python bench/bench_bf16_inference.py --model flallm-demo/stage2            # the demo's test split (its options)
    python bench/bench_bf16_inference.py --model DIR --repeats 3 --threads 2

The model is loaded as fp32, as bf16 (`from_pretrained(dtype=...)`, as `flallm evaluate/translate --dtype bf16` do), and
as fp32 run under `torch.autocast(bfloat16)` (fp32 weights, bf16 matmuls). Each repeat
translates the whole split with each dtype, alternating (fp32, bf16, fp32, ...), so machine noise hits both alike;
the table gives the median seconds, their ratio, and the scores (identical across repeats: decoding is deterministic).
The synthetic clips are rendered as they are read (a few percent of the time; the same for both dtypes).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from _benchutil import machine_info, markdown_table, print_machine


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument(
        "--demo-config", default="demo_stage1.yaml", help="whose data.options give the synthetic corpus"
    )
    parser.add_argument("--cache-dir", default=None, help="datasets cache of the corpus")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=50)
    args = parser.parse_args(argv)

    import torch

    from data_builders import load_sign_dataset
    from modeling_flallm import FlaLlmForSignTranslation, FlaLlmProcessor
    from train.config import SHIPPED_CONFIGS, read_yaml
    from train.evaluation import evaluate_model

    torch.set_num_threads(args.threads)
    print_machine(machine_info(torch_threads=args.threads))
    options = read_yaml(SHIPPED_CONFIGS / args.demo_config)["data"]["options"]
    test = load_sign_dataset("synthetic", cache_dir=args.cache_dir, **options)["test"]
    processor = FlaLlmProcessor.from_pretrained(args.model)
    models = {
        name: FlaLlmForSignTranslation.from_pretrained(args.model, dtype=dtype).eval()
        for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16), ("bf16 autocast", torch.float32))
    }
    seconds, scores = {name: [] for name in models}, {}
    for _ in range(args.repeats):
        for name, model in models.items():
            started = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=name == "bf16 autocast"):
                metrics, _ = evaluate_model(
                    model, processor, test, language="en", batch_size=args.batch_size, progress=False
                )
            seconds[name].append(time.perf_counter() - started)
            scores[name] = metrics
    rows = []
    for name in models:
        rows.append(
            {
                "dtype": name,
                "median s": f"{statistics.median(seconds[name]):.2f}",
                "all s": " ".join(f"{s:.2f}" for s in seconds[name]),
                "speed vs fp32": f"{statistics.median(seconds['fp32']) / statistics.median(seconds[name]):.2f}x",
                "BLEU-4": f"{scores[name]['bleu4']:.2f}",
                "BLEU-1": f"{scores[name]['bleu1']:.2f}",
                "ROUGE-L": f"{scores[name]['rougeL']:.2f}",
            }
        )
    print(f"{len(test)} test clips, model {args.model}, {args.threads} thread(s), {args.repeats} repeats")
    print(markdown_table(rows, [(k, k) for k in rows[0]]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
