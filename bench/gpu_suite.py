"""The GPU suite (issue 15): what a GPU session should measure, in about 8 minutes, with no downloads.

    bash bench/gpu_suite.sh                                # on the GPU machine; writes bench/results/gpu_suite.json
    bash bench/gpu_suite.sh --cpu-smoke --output /tmp/s    # every part on tiny shapes on the CPU (about a minute)

Random weights of the paper's shapes, each part a committed bench script in its own process (a part that fails or
runs past its time is reported, and the others still run):

1. **stage-1 MFU in bf16** (`bench_training.py`): ResNet-18 + temporal module + VL-adapter + Light-T at 224 px,
   batch 8 x 32 sampled frames, channels_last, eager and `torch.compile`. Target: >= 50% MFU on an H200.
2. **peak memory** of that step at batch 8 / 16 / 32 (`bench_training.py`, channels_last + bf16).
3. **a stage-2 step** with mBART-large-cc25's shape over a trimmed vocabulary (`bench_stage2_cache.py --lm large`),
   trained from the feature cache and from video, bf16.
4. **the loader against the GPU** (`bench_loader.py`): the `flallm train` loader on a prepared corpus with 0-16
   workers, next to the frames/s the stage-1 step consumes. Target: the loader >= 2x the step.

Each part writes its JSON into `--output`; this script gathers them into `gpu_suite.json` and prints one table.
`--cpu-smoke` runs the same commands with tiny sizes on the CPU, so that the suite is known to work before a GPU
session spends its minutes on it (tests/test_bench_gpu_suite.py runs it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _benchutil as bu  # noqa: E402

BENCH = Path(__file__).resolve().parent


def parts(smoke: bool, workers: list[int]) -> list[dict]:
    """Each part: a name, the bench command (without --json) and a time limit in seconds."""
    device = ["--device", "cpu"] if smoke else ["--device", "cuda"]
    if smoke:
        stage1 = ["--sizes", "32", "--batch", "1", "--frames", "2", "--steps", "1", "--warmup", "1"]
        memory_batches = [1, 2]
        stage2 = ["--lm", "tiny", "--num-train", "4", "--epochs", "1", "--batch-size", "2"]
        stage2 += ["--resolution", "32", "--size", "32", "--crop-size", "32", "--vocab-size", "200"]
        loader = ["--clips", "4", "--batch-size", "1", "--seconds", "1", "--resolution", "32", "--size", "32"]
        loader += ["--crop-size", "32"]
        loader += ["--steps", "1", "--step-frames", "2", "--step-batch", "1", "--workers", "0", "1"]
    else:
        stage1 = ["--sizes", "224", "--batch", "8", "--frames", "32", "--steps", "10", "--warmup", "3"]
        memory_batches = [8, 16, 32]
        stage2 = ["--lm", "large", "--num-train", "96", "--epochs", "2", "--batch-size", "16", "--bf16"]
        # 4 worker counts x 2 placements x 8 s, plus preparing 96 clips at 256 px and 10 timed steps
        loader = ["--clips", "96", "--seconds", "8", "--steps", "10", "--step-frames", "32", "--step-batch", "8"]
        loader += ["--bf16", "--compare", "--workers", *map(str, workers)]
    runs = [
        {
            "name": "stage1_mfu",
            # torch.compile on the CPU spends minutes in its C++ compiler: the smoke run leaves it out.
            "command": ["bench_training.py", *device, *stage1, "--variants"]
            + (["channels_last"] if smoke else ["channels_last,channels_last+compile", "--bf16"]),
            "timeout": 120 if smoke else 150,
        }
    ]
    for batch in memory_batches:
        memory = ["--sizes", stage1[1], "--frames", stage1[5], "--steps", "2", "--warmup", "1"]
        runs.append(
            {
                "name": f"stage1_memory_batch{batch}",
                "command": ["bench_training.py", *device, *memory, "--batch", str(batch), "--variants", "channels_last"]
                + ([] if smoke else ["--bf16"]),
                "timeout": 60 if smoke else 45,
            }
        )
    runs.append({"name": "stage2_step", "command": ["bench_stage2_cache.py", *stage2], "timeout": 120})
    runs.append({"name": "loader", "command": ["bench_loader.py", *device, *loader], "timeout": 120 if smoke else 180})
    return runs


def run_part(part: dict, output: Path) -> dict:
    json_path = output / f"{part['name']}.json"
    command = [sys.executable, str(BENCH / part["command"][0]), *part["command"][1:], "--json", str(json_path)]
    print(f"# {part['name']}: {' '.join(command[1:])}", flush=True)
    start = time.perf_counter()
    with open(output / f"{part['name']}.log", "w", encoding="utf-8") as log:
        try:
            process = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, timeout=part["timeout"])
            status = "ok" if process.returncode == 0 else f"failed (exit {process.returncode})"
        except subprocess.TimeoutExpired:
            status = f"ran past {part['timeout']} s"
    seconds = round(time.perf_counter() - start, 1)
    result = json.loads(json_path.read_text()) if status == "ok" and json_path.is_file() else None
    if status == "ok" and result is None:
        status = "failed (no JSON)"
    print(f"#   {status} in {seconds} s (log {output / (part['name'] + '.log')})", flush=True)
    return {"status": status, "seconds": seconds, "command": " ".join(command[1:]), "result": result}


def summary(results: dict) -> list[dict]:
    """One row per measurement, for the table."""
    rows = []
    stage1 = (results.get("stage1_mfu") or {}).get("result") or {}
    for row in stage1.get("rows", []):
        rows.append(
            {
                "measure": f"stage 1, {row.get('variant')}, batch {row.get('batch')} x {row.get('frames')} frames",
                "value": f"{row.get('frames_per_s', '?')} frames/s, {row.get('model_tflops_per_s', '?')} TFLOP/s"
                + (f", MFU {row['mfu_percent']}%" if "mfu_percent" in row else ""),
            }
        )
    for name, part in results.items():
        if name.startswith("stage1_memory") and part.get("result"):
            for row in part["result"].get("rows", []):
                memory = row.get("gpu_peak_allocated_gib", row.get("peak_rss_gib"))
                kind = "GPU peak allocated" if "gpu_peak_allocated_gib" in row else "peak RSS"
                rows.append({"measure": f"stage 1 memory, batch {row.get('batch')}", "value": f"{kind} {memory} GiB"})
    stage2 = (results.get("stage2_step") or {}).get("result") or {}
    if stage2:
        phases = stage2.get("phases_ms", {})
        for mode in ("cache", "video"):
            if mode in phases:
                step = sum(phases[mode].values())
                rows.append({"measure": f"stage 2 step, LM {stage2.get('lm')}, from {mode}", "value": f"{step:.0f} ms"})
        rows.append({"measure": "stage 2: cache speed-up per epoch", "value": f"{stage2.get('speedup', 0):.1f}x"})
    loader = (results.get("loader") or {}).get("result") or {}
    if loader:
        consumed = loader["step"]["frames_per_second"]
        rows.append({"measure": "stage-1 step consumes", "value": f"{consumed:.0f} frames/s"})
        for row in loader.get("loaders", []):
            rows.append({"measure": row["loader"], "value": f"{row['fps']} frames/s ({row['ratio']} the step)"})
    for name, part in results.items():
        if part["status"] != "ok":
            rows.append({"measure": name, "value": part["status"]})
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny shapes on the CPU: check that every part runs")
    parser.add_argument("--output", type=Path, default=BENCH / "results", help="folder for the JSON files and logs")
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[0, 4, 8, 16], help="loader workers on the GPU machine"
    )
    parser.add_argument("--only", nargs="+", help="run only these parts (names as in the table)")
    args = parser.parse_args(argv)
    args.output.mkdir(parents=True, exist_ok=True)
    info = bu.machine_info(device="cpu" if args.cpu_smoke else "cuda")
    bu.print_machine(info)
    results = {}
    for part in parts(args.cpu_smoke, args.workers):
        if args.only and part["name"] not in args.only:
            continue
        results[part["name"]] = run_part(part, args.output)
    rows = summary(results)
    print()
    print(bu.markdown_table(rows, [("measure", "measure"), ("value", "result")]))
    payload = {"machine": info, "smoke": args.cpu_smoke, "parts": results, "summary": rows}
    bu.write_json(str(args.output / "gpu_suite.json"), payload)
    return 0 if all(part["status"] == "ok" for part in results.values()) else 1


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
