"""Scaling of a stage-1 training step with video length and batch size; where memory runs out.

    python bench/bench_scaling.py                           # 112 px: lengths 50..400 at batch 1, batches 1..8 at 50 frames
    python bench/bench_scaling.py --size 224 --max-rss-gib 8
    python bench/bench_scaling.py --grid --lengths 50,100,200 --batches 1,2,4 --json results/scaling.json

One training step (forward + label-smoothed CE + backward + SGD momentum) of the paper-size stage-1
model (ResNet-18, temporal 1024, Light-T 3+3 d512, 3k vocabulary; random weights) on random frames,
each configuration in its own process: its peak RSS is its own, and a watchdog kills it when its RSS
passes `--max-rss-gib` (default 6 GiB: the machine is shared, so the benchmark never exhausts it).
Before running a configuration, RSS is predicted from the points measured so far (a least-squares
line in frames per step); configurations predicted above the cap are not run, and reported as
extrapolations. The table ends with the fitted lines (time and memory per frame in a step) and the
largest step (frames = batch x sampled frames) that fits under the cap and in the machine's RAM,
all labelled as extrapolations from the measured points.

"Saved activations" are the bytes autograd keeps for the backward pass (saved_tensors_hooks,
unique storages): the part of memory that grows with frames, without allocator noise.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _benchutil as bu  # noqa: E402


def run_config(spec: dict) -> dict:
    import torch

    from modeling_flallm import FlaLlmForSignTranslation

    torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    size, batch, frames = spec["size"], spec["batch"], spec["frames"]
    model = FlaLlmForSignTranslation(bu.stage1_config(vocab_size=spec["vocab_size"], max_frames=max(1024, frames)))
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-2, momentum=0.9)

    def step(b, t, measure=False):
        pixel_values = torch.randn(b, t, 3, size, size)
        pixel_mask = torch.ones(b, t, dtype=torch.long)
        labels = torch.randint(3, spec["vocab_size"], (b, spec["label_length"]))
        saved = bu.SavedTensorBytes()
        start, cpu_start = time.perf_counter(), time.process_time()
        if measure:
            with saved:
                loss = model(pixel_values=pixel_values, pixel_mask=pixel_mask, labels=labels).loss
        else:
            loss = model(pixel_values=pixel_values, pixel_mask=pixel_mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss.item()
        return time.perf_counter() - start, time.process_time() - cpu_start, saved.total

    step(1, 4)  # warm-up on a small input: libraries, optimizer state, allocator
    rss_before = bu.current_rss_bytes()
    times, cpu_times, saved = [], [], 0
    for index in range(spec["steps"]):
        seconds, cpu_seconds, saved_bytes = step(batch, frames, measure=index == 0)
        times.append(seconds)
        cpu_times.append(cpu_seconds)
        saved = max(saved, saved_bytes)
    best = min(times)
    return {
        "step_s": round(best, 3),
        "frames_per_s": round(batch * frames / best, 2),
        "cpu_s": round(min(cpu_times), 2),
        "rss_before_gib": round(rss_before / bu.GIB, 3),
        "peak_rss_gib": round(bu.peak_rss_bytes() / bu.GIB, 3),
        "saved_activations_gib": round(saved / bu.GIB, 3),
    }


def fit_line(points: list[tuple[float, float]]) -> tuple[float, float] | None:
    """Least-squares y = a + b x; None with fewer than two distinct x."""
    xs = {x for x, _ in points}
    if len(xs) < 2:
        return None
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    b = sum((x - mean_x) * (y - mean_y) for x, y in points) / sum((x - mean_x) ** 2 for x, _ in points)
    return mean_y - b * mean_x, b


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=112, help="frame size in pixels (default 112; 224 optional)")
    parser.add_argument("--lengths", default="50,100,200,400", help="sampled frames per video (default 50,100,200,400)")
    parser.add_argument("--batches", default="1,2,4,8", help="videos per step (default 1,2,4,8)")
    parser.add_argument("--length-batch", type=int, default=1, help="batch of the length sweep (default 1)")
    parser.add_argument("--batch-length", type=int, default=50, help="frames per video of the batch sweep (default 50)")
    parser.add_argument("--grid", action="store_true", help="every length x every batch instead of the two sweeps")
    parser.add_argument(
        "--max-rss-gib",
        type=float,
        default=6.0,
        help="memory ceiling per configuration: predicted-above configurations are skipped, "
        "running ones killed past it (default 6)",
    )
    parser.add_argument("--steps", type=int, default=1, help="timed steps per configuration, best reported (default 1)")
    parser.add_argument("--label-length", type=int, default=24, help="target tokens per video (default 24)")
    parser.add_argument("--vocab-size", type=int, default=3000, help="trimmed vocabulary (default 3000)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--_child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args._child:
        print(json.dumps(run_config(json.loads(args._child))))
        return 0

    lengths = [int(v) for v in args.lengths.split(",")]
    batches = [int(v) for v in args.batches.split(",")]
    if args.grid:
        configs = [(b, t) for t in lengths for b in batches]
    else:
        configs = [(args.length_batch, t) for t in lengths]
        configs += [(b, args.batch_length) for b in batches if (b, args.batch_length) not in configs]
    configs.sort(key=lambda c: c[0] * c[1])  # small steps first: their points predict the big ones

    info = bu.machine_info(args.threads)
    bu.print_machine(info)
    cap = args.max_rss_gib * bu.GIB
    rows = []
    for batch, frames in configs:
        total = batch * frames
        row = {"batch": batch, "frames": frames, "frames_per_step": total}
        fit = fit_line(
            [
                (r["frames_per_step"], r["peak_rss_gib"])
                for r in rows
                if "peak_rss_gib" in r and not r.get("extrapolated")
            ]
        )
        if fit is not None and fit[0] + fit[1] * total > args.max_rss_gib:
            row.update(
                {
                    "extrapolated": True,
                    "peak_rss_gib": round(fit[0] + fit[1] * total, 2),
                    "note": f"not run: predicted above --max-rss-gib {args.max_rss_gib:g}",
                }
            )
            time_fit = fit_line(
                [(r["frames_per_step"], r["step_s"]) for r in rows if "step_s" in r and not r.get("extrapolated")]
            )
            if time_fit is not None:
                row["step_s"] = round(time_fit[0] + time_fit[1] * total, 1)
            rows.append(row)
            continue
        spec = {
            "size": args.size,
            "batch": batch,
            "frames": frames,
            "threads": args.threads,
            "steps": args.steps,
            "label_length": args.label_length,
            "vocab_size": args.vocab_size,
        }
        print(f"# running batch {batch} x {frames} frames ...", file=sys.stderr, flush=True)
        result = bu.run_child([__file__, "--_child", json.dumps(spec)], max_rss_bytes=cap)
        if "error" in result:
            row.update({"note": result["error"], "peak_rss_gib": result.get("observed_peak_rss_gib")})
        else:
            row.update(result)
        row["load_average"] = bu.load_average()
        rows.append(row)
    info["load_average_end"] = bu.load_average()

    good = [r for r in rows if "step_s" in r and not r.get("extrapolated") and "note" not in r]
    fits = {}
    for key in ("step_s", "cpu_s", "peak_rss_gib", "saved_activations_gib"):
        fits[key] = fit_line([(r["frames_per_step"], r[key]) for r in good])
    summary = {}
    if fits["peak_rss_gib"]:
        a, b = fits["peak_rss_gib"]
        summary["rss_gib_fixed"] = round(a, 3)
        summary["rss_mib_per_frame"] = round(b * 1024, 2)
        if b > 0:
            summary["max_frames_under_cap_extrapolated"] = int((args.max_rss_gib - a) / b)
            if "mem_total_gib" in info:
                summary["max_frames_in_machine_ram_extrapolated"] = int((info["mem_total_gib"] - a) / b)
    if fits["saved_activations_gib"]:
        summary["saved_activation_mib_per_frame"] = round(fits["saved_activations_gib"][1] * 1024, 2)
    if fits["step_s"]:
        summary["step_s_fixed"] = round(fits["step_s"][0], 3)
        summary["step_ms_per_frame"] = round(fits["step_s"][1] * 1000, 1)
    if fits["cpu_s"]:
        summary["cpu_ms_per_frame"] = round(fits["cpu_s"][1] * 1000, 1)

    print(
        f"\nstage-1 training step at {args.size} px, {args.threads} threads, {args.label_length} target tokens; "
        f"memory cap {args.max_rss_gib:g} GiB"
    )
    for row in rows:
        if row.get("extrapolated"):
            row["batch"] = f"{row['batch']} (extrapolated)"
    print(
        bu.markdown_table(
            rows,
            [
                ("batch", "batch"),
                ("frames", "frames/video"),
                ("frames_per_step", "frames/step"),
                ("step_s", "step s"),
                ("frames_per_s", "frames/s"),
                ("cpu_s", "CPU s"),
                ("peak_rss_gib", "peak RSS GiB"),
                ("saved_activations_gib", "saved activations GiB"),
                ("load_average", "load avg"),
                ("note", "note"),
            ],
        )
    )
    print("\nlinear fits over the measured points (x = frames per step); extrapolations, not measurements:")
    for key, value in summary.items():
        print(f"- {key}: {value}")
    bu.print_machine(info)
    bu.write_json(
        args.json,
        {
            "machine": info,
            "settings": {k: v for k, v in vars(args).items() if k != "_child"},
            "rows": rows,
            "fits": summary,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
