"""Stage-1 training throughput: frames/s, peak memory and FLOPs of the paper-size model.

    python bench/bench_training.py                      # CPU, 224 and 112 px, batch 8, 16 frames/video (~3 min)
    python bench/bench_training.py --variants eager,channels_last,bf16,compile --sizes 112
    python bench/bench_training.py --device cuda --bf16 --frames 64 --steps 20 --variants eager,channels_last,compile
    python bench/bench_training.py --json results/train.json

Model: ResNet-18 backbone + Conv1D(k5)-BN-ReLU temporal module (1024) + VL-adapter MLP (1024) +
Light-T (mBART layout, 3+3 layers, d 512, 8 heads, FFN 2048) over a trimmed 3k vocabulary, random
weights (speed does not depend on the values). One step = forward + label-smoothed CE + backward +
SGD (momentum 0.9, the paper's stage-1 optimizer) on random normalised frames and random targets
(`--label-length` tokens); data loading is excluded (see bench_data.py).

Frames per video: PHOENIX videos average ~120 frames after T/4 sampling would make one CPU step
minutes long, so the default is 16 sampled frames per video (8 videos = 128 frames per step);
throughput is per frame, and the CNN (which dominates) costs the same per frame at any length
(bench_scaling.py measures how the step grows with length).

Each configuration runs in its own process, so the peak RSS reported is that configuration's
(model + optimizer + activations + allocator caches), and a failing variant (e.g. torch.compile)
is reported instead of ending the run. Variants are names joined with '+':
eager (the model as it is), nchw (frames forced to contiguous NCHW before the backbone: the layout
before frame_features switched to channels_last), channels_last (backbone weights and frames NHWC),
bf16 (torch.autocast bfloat16), compile (torch.compile of the whole model).
`--bf16` adds bf16 to every variant (the GPU command above).

FLOPs: torch.utils.flop_counter.FlopCounterMode over one forward+backward of one video (matmuls and
convolutions; 2 FLOPs per multiply-add), scaled by the batch size. "model TFLOP/s" = these FLOPs /
measured step time; MFU = that / the device's peak (bf16 dense tensor peak for known GPUs, or
--peak-tflops).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _benchutil as bu  # noqa: E402

VARIANT_TOKENS = {"eager", "nchw", "channels_last", "bf16", "compile"}


def parse_variant(name: str) -> set[str]:
    tokens = set(name.split("+"))
    unknown = tokens - VARIANT_TOKENS
    if unknown:
        raise ValueError(
            f"unknown variant token(s) {sorted(unknown)} in {name!r}: expected names from {sorted(VARIANT_TOKENS)} joined by '+'"
        )
    return tokens - {"eager"}


# ------------------------------------------------------------------------------------------------
# One configuration (runs in a child process)


def count_flops(model, pixel_values, pixel_mask, labels) -> dict:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        model(pixel_values=pixel_values[:1], pixel_mask=pixel_mask[:1], labels=labels[:1]).loss.backward()
    step_one_video = counter.get_total_flops()
    model.zero_grad(set_to_none=True)
    backbone = model.visual_encoder.backbone
    backbone.eval()  # one frame: BatchNorm in training mode would reject a 1x1 map of a tiny input
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        backbone(pixel_values=pixel_values[0, :1])
    backbone.train()
    backbone_forward_per_frame = counter.get_total_flops()
    return {"train_flops_per_video": step_one_video, "backbone_fwd_flops_per_frame": backbone_forward_per_frame}


def run_config(spec: dict) -> dict:
    import torch

    from modeling_flallm import FlaLlmForSignTranslation

    torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    device = torch.device(spec["device"])
    variant = parse_variant(spec["variant"])
    batch, frames, size = spec["batch"], spec["frames"], spec["size"]

    model = FlaLlmForSignTranslation(bu.stage1_config(vocab_size=spec["vocab_size"])).to(device)
    model.train()
    params = bu.count_parameters(model)
    pixel_values = torch.randn(batch, frames, 3, size, size, device=device)
    pixel_mask = torch.ones(batch, frames, dtype=torch.long, device=device)
    labels = torch.randint(3, spec["vocab_size"], (batch, spec["label_length"]), device=device)

    result = {"params_m": round(params / 1e6, 2)}
    result.update(count_flops(model, pixel_values, pixel_mask, labels))
    result["train_flops_per_step"] = result["train_flops_per_video"] * batch

    if "channels_last" in variant or "nchw" in variant:
        # channels_last: backbone weights and input frames NHWC; nchw: input frames forced to plain
        # contiguous NCHW, whatever the model code does (the layout before frame_features used NHWC).
        layout = torch.channels_last if "channels_last" in variant else torch.contiguous_format
        if "channels_last" in variant:
            model = model.to(memory_format=torch.channels_last)

        def set_layout(module, args, kwargs):
            kwargs["pixel_values"] = kwargs["pixel_values"].contiguous(memory_format=layout)
            return args, kwargs

        model.visual_encoder.backbone.register_forward_pre_hook(set_layout, with_kwargs=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-2, momentum=0.9)
    step_model = torch.compile(model) if "compile" in variant else model
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled="bf16" in variant)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def step(measure_saved: bool = False):
        saved = bu.SavedTensorBytes() if measure_saved else None
        with autocast:
            if saved is not None:
                with saved:
                    loss = step_model(pixel_values=pixel_values, pixel_mask=pixel_mask, labels=labels).loss
            else:
                loss = step_model(pixel_values=pixel_values, pixel_mask=pixel_mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        value = loss.item()
        if value != value:
            raise RuntimeError("loss is NaN")
        return saved.total if saved is not None else None

    rss_before = bu.current_rss_bytes()
    warmup_times = []
    for index in range(spec["warmup"]):
        sync()
        start = time.perf_counter()
        saved = step(measure_saved=index == 0 and "compile" not in variant)
        sync()
        warmup_times.append(time.perf_counter() - start)
        if saved is not None:
            result["saved_activations_gib"] = round(saved / bu.GIB, 3)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    cpu_start = time.process_time()
    with bu.PeakRSS() as window:
        for _ in range(spec["steps"]):
            sync()
            start = time.perf_counter()
            step()
            sync()
            times.append(time.perf_counter() - start)
    cpu_per_step = (time.process_time() - cpu_start) / max(1, len(times))
    median = statistics.median(times)
    result.update(
        {
            "first_step_s": round(warmup_times[0], 2) if warmup_times else None,
            "step_s": round(median, 3),
            "step_min_s": round(min(times), 3),
            "steps": len(times),
            "frames_per_s": round(batch * frames / median, 2),
            "frames_per_s_best": round(batch * frames / min(times), 2),
            # CPU seconds of this process per step (all threads): less sensitive to other load than wall time.
            "cpu_s_per_step": round(cpu_per_step, 2),
            "cpu_share": round(cpu_per_step / (median * spec["threads"]), 2) if device.type == "cpu" else None,
            "rss_after_build_gib": round(rss_before / bu.GIB, 3),
            "peak_rss_gib": round(max(bu.peak_rss_bytes(), window.peak) / bu.GIB, 3),
            "model_tflops_per_s": round(result["train_flops_per_step"] / median / 1e12, 4),
        }
    )
    if device.type == "cuda":
        result["gpu_peak_allocated_gib"] = round(torch.cuda.max_memory_allocated() / bu.GIB, 3)
        result["gpu"] = torch.cuda.get_device_name()
    return result


# ------------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="224,112", help="frame sizes in pixels, comma-separated (default 224,112)")
    parser.add_argument("--batch", type=int, default=8, help="videos per step (default 8, the paper's stage-1 batch)")
    parser.add_argument(
        "--frames", type=int, default=16, help="sampled frames per video (default 16; see the docstring)"
    )
    parser.add_argument("--label-length", type=int, default=24, help="target tokens per video (default 24)")
    parser.add_argument("--vocab-size", type=int, default=3000, help="trimmed vocabulary (default 3000)")
    parser.add_argument(
        "--variants",
        default="eager",
        help="comma-separated; each a '+'-join of eager, channels_last, bf16, compile (default eager)",
    )
    parser.add_argument("--bf16", action="store_true", help="add bf16 autocast to every variant")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first (default 1; compile happens here)")
    parser.add_argument(
        "--steps",
        type=int,
        default=1,
        help="timed steps; the median is reported (default 1; use 3+ on a quiet machine)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run every variant this many times, alternating the order; the fastest run is kept (default 1)",
    )
    parser.add_argument("--threads", type=int, default=2, help="torch threads on the CPU (default 2)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument(
        "--peak-tflops", type=float, help="device peak for MFU (default: bf16 dense peak of known GPUs)"
    )
    parser.add_argument("--child-timeout", type=float, default=1800, help="seconds per configuration (default 1800)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--_child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args._child:
        print(json.dumps(run_config(json.loads(args._child))))
        return 0

    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if args.bf16:
        variants = [v if "bf16" in v.split("+") else f"{v}+bf16" for v in variants]
    for variant in variants:
        parse_variant(variant)
    info = bu.machine_info(args.threads, args.device)
    bu.print_machine(info)
    rows = []
    for size in [int(s) for s in args.sizes.split(",")]:
        best = {}
        for round_index in range(args.rounds):
            # Odd rounds run the variants in reverse (A B B A ...): a load change on the shared
            # machine then biases no variant; each variant keeps its fastest round.
            for variant in variants if round_index % 2 == 0 else variants[::-1]:
                spec = {
                    "size": size,
                    "variant": variant,
                    "batch": args.batch,
                    "frames": args.frames,
                    "threads": args.threads,
                    "label_length": args.label_length,
                    "vocab_size": args.vocab_size,
                    "device": args.device,
                    "warmup": args.warmup,
                    "steps": args.steps,
                }
                print(f"# running {size} px, {variant} (round {round_index + 1}) ...", file=sys.stderr, flush=True)
                result = bu.run_child([__file__, "--_child", json.dumps(spec)], timeout=args.child_timeout)
                row = {**spec, **result, "load_average": bu.load_average(), "rounds": round_index + 1}
                peak = args.peak_tflops or bu.gpu_peak_tflops(result.get("gpu"))
                if peak and "model_tflops_per_s" in result:
                    row["mfu_percent"] = round(100 * result["model_tflops_per_s"] / peak, 2)
                previous = best.get(variant)
                if previous is None or (
                    "step_s" in row and ("step_s" not in previous or row["step_s"] < previous["step_s"])
                ):
                    best[variant] = {**row, "rounds": round_index + 1}
                else:
                    previous["rounds"] = round_index + 1
        rows.extend(best[variant] for variant in variants)
    for size in {row["size"] for row in rows}:
        base = next((r for r in rows if r["size"] == size and r["variant"] == variants[0] and "step_s" in r), None)
        for row in rows:
            if base and row["size"] == size and "step_s" in row:
                row["speedup_vs_first"] = round(base["step_s"] / row["step_s"], 2)
    info["load_average_end"] = bu.load_average()

    print(
        f"\nstage-1 training step: batch {args.batch} x {args.frames} sampled frames, {args.label_length} target tokens, "
        f"vocab {args.vocab_size}, device {args.device}, {args.threads} threads"
    )
    for row in rows:
        if "train_flops_per_video" in row:
            row["gflops_per_frame"] = round(row["train_flops_per_step"] / (args.batch * args.frames) / 1e9, 2)
            row["backbone_fwd_gflops_per_frame"] = round(row["backbone_fwd_flops_per_frame"] / 1e9, 3)
    columns = [
        ("size", "px"),
        ("variant", "variant"),
        ("step_s", "step s (median)"),
        ("step_min_s", "min s"),
        ("first_step_s", "first step s"),
        ("frames_per_s", "frames/s"),
        ("frames_per_s_best", "frames/s best"),
        ("cpu_s_per_step", "CPU s/step"),
        ("cpu_share", "CPU share"),
        ("speedup_vs_first", "x vs first"),
        ("peak_rss_gib", "peak RSS GiB"),
        ("saved_activations_gib", "saved activations GiB"),
        ("gflops_per_frame", "train GFLOP/frame"),
        ("backbone_fwd_gflops_per_frame", "ResNet fwd GFLOP/frame"),
        ("model_tflops_per_s", "model TFLOP/s"),
        ("load_average", "load avg after"),
        ("rounds", "runs"),
        ("error", "error"),
    ]
    if args.device.startswith("cuda"):
        columns.insert(8, ("gpu_peak_allocated_gib", "GPU peak alloc GiB"))
        columns.insert(-2, ("mfu_percent", "MFU %"))
    print(bu.markdown_table(rows, columns))
    bu.print_machine(info)
    bu.write_json(args.json, {"machine": info, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
