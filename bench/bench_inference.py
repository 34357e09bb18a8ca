"""Inference speed: seconds to translate a 5-second clip, real-time factor, batching, KV cache, grad mode.

    python bench/bench_inference.py                        # CPU, 2 threads, 224 px (~3 min on a quiet 2-core machine)
    python bench/bench_inference.py --full                 # + stage 2 in batching/cache, + the untrimmed 250k vocabulary
    python bench/bench_inference.py --bf16 --threads 1     # bfloat16 autocast (AMX), one thread
    python bench/bench_inference.py --sections latency --repeats 5 --json results/inference.json
    python bench/bench_inference.py --device cuda --bf16 --batch-sizes 1,8,32

The clip: 5 s at 25 fps = 125 uint8 frames of PHOENIX size (260x210), through FlaLlmVideoProcessor
(eval: T/4 sampling -> 32 frames, centre crop, resize to 224, normalise), then
`model.generate(pixel_values, pixel_mask, num_beams=5)`. Timed end to end: preprocessing + visual
encoder + beam search. Random weights never stop at a sensible length, so every translation is
forced to exactly `--new-tokens` tokens (min_new_tokens = max_new_tokens; default 24, about a
PHOENIX sentence in a trimmed vocabulary). Real-time factor = seconds / 5 s (< 1: faster than real time).

Models (random weights; speed does not depend on the values):
- stage 1: ResNet-18 + temporal 1024 + VL-adapter + Light-T (3+3, d 512) over a 3k trimmed vocabulary;
- stage 2: the same encoder + LLM-adapter + an mBART-large-shaped LLM (12+12 layers, d 1024, 16 heads,
  FFN 4096) over a 3k trimmed vocabulary (the paper trims mBART to the corpus); `--untrimmed` adds the
  250,027-token vocabulary of mbart-large-cc25 (~2.4 GB of fp32 weights).

Sections (`--sections`, comma-separated; default all):
- latency: one clip per model, batch 1 (median and best of `--repeats`), split into preprocessing,
  visual encoder and beam search;
- batching: clips/s of the stage-1 model (and the trimmed stage-2 one with `--full`) with
  `--batch-sizes` clips per call;
- cache: beam search from precomputed features with `use_cache=True` vs `False` (KV cache), stage 1
  (and stage 2 with `--full`);
- grad: the visual encoder under autograd (what a forward without no_grad costs), `torch.no_grad`
  and `torch.inference_mode`; and a whole translation under no_grad (what generate uses) vs inference_mode;
- encoder: the visual encoder (`get_visual_features`) with frames in NCHW vs channels_last layout,
  fp32 vs bf16 autocast (AMX on recent Xeons), and the model as it is.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _benchutil as bu  # noqa: E402

CLIP_SECONDS, FPS = 5.0, 25
ALL_SECTIONS = ("latency", "batching", "cache", "grad", "encoder")


def timed(fn, repeats: int, warmup: int = 1, sync=lambda: None) -> list[float]:
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return times


def summary(times: list[float]) -> dict:
    return {"median_s": round(statistics.median(times), 3), "best_s": round(min(times), 3), "runs": len(times)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", default=",".join(ALL_SECTIONS), help=f"comma-separated subset of {ALL_SECTIONS}")
    parser.add_argument("--size", type=int, default=224, help="crop size in pixels (default 224)")
    parser.add_argument("--beams", type=int, default=5, help="beam size (default 5, the paper's)")
    parser.add_argument("--new-tokens", type=int, default=24, help="tokens generated per clip (forced; default 24)")
    parser.add_argument("--vocab-size", type=int, default=3000, help="trimmed vocabulary (default 3000)")
    parser.add_argument(
        "--untrimmed", action="store_true", help="also time stage 2 with the full 250,027-token vocabulary"
    )
    parser.add_argument(
        "--full",
        action="store_true",
        help="also the stage-2 model in the batching and cache sections, and --untrimmed (~10 min on 2 cores)",
    )
    parser.add_argument("--batch-sizes", default="1,4,8", help="clips per call in the batching section (default 1,4,8)")
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="timed runs per latency measurement, after a warm-up (default 1; 3 for stable numbers)",
    )
    parser.add_argument("--batch-repeats", type=int, default=1, help="timed runs per batch size > 1 (default 1)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--bf16", action="store_true", help="run every model under bfloat16 autocast")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    args.untrimmed = args.untrimmed or args.full
    heavy_models = 2 if args.full else 1  # models in the batching and cache sections
    unknown = set(sections) - set(ALL_SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {sorted(unknown)}: expected a subset of {ALL_SECTIONS}")

    import numpy as np
    import torch

    from modeling_flallm import FlaLlmForSignTranslation, FlaLlmVideoProcessor

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    info = bu.machine_info(args.threads, args.device)
    bu.print_machine(info)

    processor = FlaLlmVideoProcessor(size=round(args.size * 256 / 224), crop_size=args.size)
    rng = np.random.default_rng(0)
    clip = rng.integers(0, 256, (int(CLIP_SECONDS * FPS), 260, 210, 3), dtype=np.uint8)
    sampled = len(processor.sample_frame_indices(len(clip)))
    generate_kwargs = {"num_beams": args.beams, "max_new_tokens": args.new_tokens, "min_new_tokens": args.new_tokens}
    precision = torch.autocast(device.type, dtype=torch.bfloat16) if args.bf16 else contextlib.nullcontext()

    def build(name, config):
        rss = bu.current_rss_bytes()
        start = time.perf_counter()
        model = FlaLlmForSignTranslation(config).to(device).eval()
        print(
            f"# built {name}: {bu.count_parameters(model) / 1e6:.1f} M parameters in {time.perf_counter() - start:.1f} s",
            file=sys.stderr,
            flush=True,
        )
        return model, {
            "model": name,
            "params_m": round(bu.count_parameters(model) / 1e6, 1),
            "rss_added_gib": round((bu.current_rss_bytes() - rss) / bu.GIB, 2),
        }

    def inputs(batch):
        features = processor([clip] * batch)
        return features["pixel_values"].to(device), features["pixel_mask"].to(device)

    def translate(model, batch=1, **extra):
        pixel_values, pixel_mask = inputs(batch)
        with precision:
            return model.generate(pixel_values=pixel_values, pixel_mask=pixel_mask, **generate_kwargs, **extra)

    models = {
        "stage 1 (Light-T, vocab 3k)": bu.stage1_config(vocab_size=args.vocab_size),
        "stage 2 (mBART-large shape, vocab 3k)": bu.stage2_config(vocab_size=args.vocab_size),
    }
    if args.untrimmed:
        models["stage 2 (mBART-large shape, vocab 250k)"] = bu.stage2_config(vocab_size=250027)
    built = {}
    results = {"latency": [], "batching": [], "cache": [], "grad": [], "encoder": []}

    def get(name):
        if name not in built:
            built[name] = build(name, models[name])
        return built[name]

    # -- latency -----------------------------------------------------------------------------
    if "latency" in sections:
        for name in models:
            model, row = get(name)
            total = timed(lambda: translate(model), args.repeats, sync=sync)
            pre = timed(lambda: inputs(1), args.repeats, warmup=0)
            pixel_values, pixel_mask = inputs(1)

            def encode():
                with torch.inference_mode(), precision:
                    return model.get_visual_features(pixel_values, pixel_mask)

            enc = timed(encode, args.repeats, warmup=0, sync=sync)
            features, mask = encode()

            def search_only():
                with precision:
                    return model.generate(visual_features=features.float(), visual_mask=mask, **generate_kwargs)

            search = timed(search_only, args.repeats, warmup=0, sync=sync)
            best = min(total)
            results["latency"].append(
                {
                    **row,
                    "frames": f"{len(clip)} -> {sampled}",
                    "seconds_median": round(statistics.median(total), 3),
                    "seconds_best": round(best, 3),
                    "rtf_best": round(best / CLIP_SECONDS, 3),
                    "rtf_median": round(statistics.median(total) / CLIP_SECONDS, 3),
                    "preprocess_s": round(min(pre), 3),
                    "encoder_s": round(min(enc), 3),
                    "beam_search_s": round(min(search), 3),
                    "load_average": bu.load_average(),
                }
            )
            print(f"# latency {name}: {best:.2f} s", file=sys.stderr, flush=True)
            if "250k" in name:
                del built[name]  # free ~2.4 GB before the other sections

    # -- batching ------------------------------------------------------------------------------
    if "batching" in sections:
        sizes = [int(b) for b in args.batch_sizes.split(",")]
        for name in list(models)[:heavy_models]:
            model, row = get(name)
            translate(model, 1)  # warm-up
            for batch in sizes:
                times = timed(
                    lambda: translate(model, batch),
                    args.repeats if batch == 1 else args.batch_repeats,
                    warmup=0,
                    sync=sync,
                )
                best = min(times)
                results["batching"].append(
                    {
                        "model": name,
                        "batch": batch,
                        "seconds_best": round(best, 3),
                        "clips_per_s": round(batch / best, 3),
                        "clip_seconds_per_wall_second": round(batch * CLIP_SECONDS / best, 2),
                        "load_average": bu.load_average(),
                    }
                )
            base = next(r for r in results["batching"] if r["model"] == name and r["batch"] == sizes[0])
            for r in results["batching"]:
                if r["model"] == name:
                    r["x_vs_first"] = round(r["clips_per_s"] / base["clips_per_s"], 2)
            print(f"# batching {name} done", file=sys.stderr, flush=True)

    # -- KV cache ------------------------------------------------------------------------------
    if "cache" in sections:
        for name in list(models)[:heavy_models]:
            model, row = get(name)
            pixel_values, pixel_mask = inputs(1)
            with torch.inference_mode(), precision:
                features, mask = model.get_visual_features(pixel_values, pixel_mask)
            features = features.float()
            entry = {"model": name}
            for use_cache in (True, False, True, False):  # interleaved: both see the same load
                times = timed(
                    lambda: model.generate(
                        visual_features=features, visual_mask=mask, use_cache=use_cache, **generate_kwargs
                    ),
                    1,
                    warmup=0,
                    sync=sync,
                )
                key = "cache_on_s" if use_cache else "cache_off_s"
                entry[key] = round(min(times + ([entry[key]] if key in entry else [])), 3)
            entry["speedup"] = round(entry["cache_off_s"] / entry["cache_on_s"], 2)
            entry["load_average"] = bu.load_average()
            results["cache"].append(entry)

    # -- grad mode -----------------------------------------------------------------------------
    if "grad" in sections:
        name = list(models)[0]
        model, _ = get(name)
        pixel_values, pixel_mask = inputs(1)
        modes = {
            "autograd enabled": contextlib.nullcontext,
            "torch.no_grad": torch.no_grad,
            "torch.inference_mode": torch.inference_mode,
        }
        measured = {mode: [] for mode in modes}
        peaks = {}
        with torch.inference_mode():
            model.get_visual_features(pixel_values, pixel_mask)  # warm-up
        for _ in range(args.repeats):
            for mode, context in modes.items():  # interleaved
                with bu.PeakRSS() as window:
                    start = time.perf_counter()
                    with context(), precision:
                        features, _mask = model.get_visual_features(pixel_values, pixel_mask)
                    sync()
                    measured[mode].append(time.perf_counter() - start)
                del features, _mask
                peaks[mode] = max(peaks.get(mode, 0), window.peak)
        base = min(measured["torch.inference_mode"])
        for mode in modes:
            results["grad"].append(
                {
                    "what": f"visual encoder, 1 clip ({sampled} frames)",
                    "mode": mode,
                    "seconds_best": round(min(measured[mode]), 3),
                    "x_vs_inference_mode": round(min(measured[mode]) / base, 2),
                    "peak_rss_gib": round(peaks[mode] / bu.GIB, 2),
                }
            )
        whole = {"torch.no_grad (generate's own)": [], "torch.inference_mode": []}
        for _ in range(args.repeats):
            whole["torch.no_grad (generate's own)"] += timed(lambda: translate(model), 1, warmup=0, sync=sync)
            with torch.inference_mode():
                whole["torch.inference_mode"] += timed(lambda: translate(model), 1, warmup=0, sync=sync)
        base = min(whole["torch.inference_mode"])
        for mode, times in whole.items():
            results["grad"].append(
                {
                    "what": f"{name}: whole translation",
                    "mode": mode,
                    "seconds_best": round(min(times), 3),
                    "x_vs_inference_mode": round(min(times) / base, 2),
                }
            )

    # -- encoder precision / layout ------------------------------------------------------------
    if "encoder" in sections:
        name = list(models)[0]
        model, _ = get(name)
        pixel_values, pixel_mask = inputs(1)
        layout = {"format": None}

        def set_layout(module, args, kwargs):
            if layout["format"] is not None:
                kwargs["pixel_values"] = kwargs["pixel_values"].contiguous(memory_format=layout["format"])
            return args, kwargs

        hook = model.visual_encoder.backbone.register_forward_pre_hook(set_layout, with_kwargs=True)
        # "NCHW frames" forces the layout frame_features used before it switched to channels_last.
        variants = {
            "fp32, NCHW frames": (False, torch.contiguous_format),
            "fp32, model as is": (False, None),
            "fp32, channels_last frames": (False, torch.channels_last),
            "bf16 autocast, NCHW frames": (True, torch.contiguous_format),
            "bf16 autocast, channels_last frames": (True, torch.channels_last),
        }
        measured = {variant: [] for variant in variants}
        outputs = {}
        for _ in range(args.repeats + 1):  # the first round is a warm-up for every variant
            for variant, (bf16, memory_format) in variants.items():
                layout["format"] = memory_format
                with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                    start = time.perf_counter()
                    features, _mask = model.get_visual_features(pixel_values, pixel_mask)
                    sync()
                    measured[variant].append(time.perf_counter() - start)
                outputs[variant] = features.float()
        hook.remove()
        reference = outputs["fp32, NCHW frames"]
        base = min(measured["fp32, NCHW frames"][1:])
        for variant in variants:
            best = min(measured[variant][1:])
            diff = float((outputs[variant] - reference).abs().max() / reference.abs().max())
            results["encoder"].append(
                {
                    "variant": variant,
                    "seconds_best": round(best, 3),
                    "frames_per_s": round(sampled / best, 1),
                    "x_vs_fp32_nchw": round(base / best, 2),
                    "max_rel_diff": f"{diff:.1e}",
                }
            )

    info["load_average_end"] = bu.load_average()
    print(
        f"\ninference at {args.size} px, {args.threads} threads, device {args.device}{', bf16 autocast' if args.bf16 else ''}; "
        f"clip {CLIP_SECONDS:g} s x {FPS} fps = {len(clip)} frames -> {sampled} after T/4; beam {args.beams}, "
        f"{args.new_tokens} tokens forced"
    )
    if results["latency"]:
        print("\n## one clip, batch 1 (seconds; RTF = seconds / 5 s)")
        print(
            bu.markdown_table(
                results["latency"],
                [
                    ("model", "model"),
                    ("params_m", "params M"),
                    ("seconds_best", "s best"),
                    ("seconds_median", "s median"),
                    ("rtf_best", "RTF best"),
                    ("rtf_median", "RTF median"),
                    ("preprocess_s", "preprocess s"),
                    ("encoder_s", "encoder s"),
                    ("beam_search_s", "beam search s"),
                    ("rss_added_gib", "RSS added GiB"),
                    ("load_average", "load avg"),
                ],
            )
        )
    if results["batching"]:
        print("\n## batching (preprocessing + encoder + beam search per call)")
        print(
            bu.markdown_table(
                results["batching"],
                [
                    ("model", "model"),
                    ("batch", "batch"),
                    ("seconds_best", "s per call"),
                    ("clips_per_s", "clips/s"),
                    ("x_vs_first", "x vs batch 1"),
                    ("clip_seconds_per_wall_second", "video s per s"),
                    ("load_average", "load avg"),
                ],
            )
        )
    if results["cache"]:
        print("\n## KV cache (beam search from precomputed features, best of 2 interleaved runs)")
        print(
            bu.markdown_table(
                results["cache"],
                [
                    ("model", "model"),
                    ("cache_on_s", "use_cache=True s"),
                    ("cache_off_s", "use_cache=False s"),
                    ("speedup", "x"),
                    ("load_average", "load avg"),
                ],
            )
        )
    if results["grad"]:
        print("\n## autograd at inference (interleaved runs, best)")
        print(
            bu.markdown_table(
                results["grad"],
                [
                    ("what", "what"),
                    ("mode", "mode"),
                    ("seconds_best", "s best"),
                    ("x_vs_inference_mode", "x vs inference_mode"),
                    ("peak_rss_gib", "peak RSS GiB"),
                ],
            )
        )
    if results["encoder"]:
        print(f"\n## visual encoder (get_visual_features), {sampled} frames (inference_mode, interleaved runs, best)")
        print(
            bu.markdown_table(
                results["encoder"],
                [
                    ("variant", "variant"),
                    ("seconds_best", "s best"),
                    ("frames_per_s", "frames/s"),
                    ("x_vs_fp32_nchw", "x vs fp32 NCHW"),
                    ("max_rel_diff", "max rel. diff vs fp32 NCHW"),
                ],
            )
        )
    bu.print_machine(info)
    bu.write_json(args.json, {"machine": info, "settings": vars(args), **results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
