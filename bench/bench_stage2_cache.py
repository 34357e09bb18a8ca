"""Stage-2 training speed with and without the feature cache, in one run.

    python bench/bench_stage2_cache.py [--num-train 24] [--epochs 2] [--lm small] [--crop-size 224] [--json out.json]

Stage 2 freezes the visual encoder, so `train.feature_cache` computes its features once and trains
from them. This script trains the same stage-2 model (ResNet-18-shaped encoder, frozen; LLM-adapter;
an mBART-shaped language model) on the synthetic corpus both ways with the trainer's own pieces
(collators, seeded augmentation, parameter groups, Accelerate) and prints one table: the one-off
cost of building the cache, the time of a training epoch and of a step, and the speed-up. The two
modes alternate epoch by epoch (after an untimed warm-up), so a change in machine load hits both.

Without the cache every step decodes (renders) the sampled frames, augments them and runs the
frozen ResNet forward; with it a step only reads features and trains LLM-adapter + LLM. The
speed-up therefore depends on how large the language model is next to the CNN: `--lm tiny|small|large`
(large = mBART-large-cc25's shape with a trimmed vocabulary). Weights are random: speed does not
depend on them. The encoder is never trained here, as in stage 2. `--lora RANK` trains LoRA adapters on the LM
instead of all its weights (`FlaLlmConfig(use_lora=True)`; the paper fine-tunes the whole LM).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from accelerate import Accelerator  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402
from transformers import MBartConfig, MBartForConditionalGeneration  # noqa: E402

from data_builders import SignTranslationCollator, load_sign_dataset  # noqa: E402
from modeling_flallm import FlaLlmConfig, FlaLlmForSignTranslation, FlaLlmProcessor, FlaLlmVideoProcessor  # noqa: E402
from modeling_flallm.tokenization_flallm import train_tokenizer  # noqa: E402
from train.config import TrainConfig  # noqa: E402
from train.feature_cache import FeatureCollator, load_or_compute  # noqa: E402
from train.optimizer import build_optimizer  # noqa: E402
from train.sampling import EpochShuffleSampler, SeededCollator  # noqa: E402

LANGUAGE_MODELS = {
    "tiny": {
        "encoder_layers": 1,
        "decoder_layers": 1,
        "d_model": 64,
        "encoder_attention_heads": 2,
        "decoder_attention_heads": 2,
        "encoder_ffn_dim": 256,
        "decoder_ffn_dim": 256,
    },
    "small": {
        "encoder_layers": 3,
        "decoder_layers": 3,
        "d_model": 512,
        "encoder_attention_heads": 8,
        "decoder_attention_heads": 8,
        "encoder_ffn_dim": 2048,
        "decoder_ffn_dim": 2048,
    },
    "large": {
        "encoder_layers": 12,
        "decoder_layers": 12,
        "d_model": 1024,
        "encoder_attention_heads": 16,
        "decoder_attention_heads": 16,
        "encoder_ffn_dim": 4096,
        "decoder_ffn_dim": 4096,
    },
}


def build(args, texts):
    """A stage-2 model as `from_stage1` builds it, and its processor."""
    tokenizer = train_tokenizer(texts, vocab_size=args.vocab_size)
    torch.manual_seed(0)
    stage1 = FlaLlmForSignTranslation(FlaLlmConfig(frame_sample_rate=args.frame_sample_rate))  # ResNet-18 shape
    language_model = MBartForConditionalGeneration(
        MBartConfig(
            **LANGUAGE_MODELS[args.lm],
            vocab_size=len(tokenizer),
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            decoder_start_token_id=tokenizer.eos_token_id,
            max_position_embeddings=1024,
        )
    )
    lora = {"use_lora": True, "lora_rank": args.lora} if args.lora else {}  # LoRA on the LM instead of full tuning
    model = FlaLlmForSignTranslation.from_stage1(stage1, language_model=language_model, **lora)
    video_processor = FlaLlmVideoProcessor(
        frame_sample_rate=args.frame_sample_rate, size=args.size, crop_size=args.crop_size
    )
    return model, FlaLlmProcessor(video_processor=video_processor, tokenizer=tokenizer)


def make_loader(accelerator, rows, collator, args):
    sampler = EpochShuffleSampler(len(rows), seed=0)
    collate = SeededCollator(collator, seed=0)
    loader = accelerator.prepare(
        DataLoader(rows, batch_size=args.batch_size, sampler=sampler, collate_fn=collate, num_workers=args.num_workers)
    )
    return loader, collate


PHASES = ("data", "forward", "backward", "optimizer")


def time_epoch(
    accelerator, model, optimizer, loader, collate, epoch: int, phases: dict | None = None, bf16: bool = False
) -> tuple[float, int]:
    """Seconds and sampled frames of one training epoch; `phases` (if given) accumulates seconds per phase."""
    loader.set_epoch(epoch)
    collate.set_epoch(epoch)
    model.train()
    frames = 0
    phases = phases if phases is not None else dict.fromkeys(PHASES, 0.0)
    start = tick = time.perf_counter()
    for batch in loader:
        frames += int((batch["visual_mask"] if "visual_mask" in batch else batch["pixel_mask"]).sum())
        now = time.perf_counter()
        phases["data"] += now - tick
        with torch.autocast(accelerator.device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = model(**batch).loss
        tick, now = now, time.perf_counter()
        phases["forward"] += now - tick
        accelerator.backward(loss)
        tick, now = now, time.perf_counter()
        phases["backward"] += now - tick
        optimizer.step()
        optimizer.zero_grad()
        tick = time.perf_counter()
        phases["optimizer"] += tick - now
    return time.perf_counter() - start, frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-train", type=int, default=24, help="synthetic training clips")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per mode (alternating)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lm", choices=sorted(LANGUAGE_MODELS), default="small", help="language model size")
    parser.add_argument("--vocab-size", type=int, default=2000, help="(trimmed) vocabulary of the language model")
    parser.add_argument("--resolution", type=int, default=256, help="synthetic frame size (pixels)")
    parser.add_argument("--size", type=int, default=256, help="video processor resize")
    parser.add_argument("--crop-size", type=int, default=224, help="video processor crop (paper: 224)")
    parser.add_argument("--frame-sample-rate", type=int, default=4)
    parser.add_argument("--num-workers", type=int, default=0, help="DataLoader workers (0: decode in the main process)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads")
    parser.add_argument(
        "--lora", type=int, default=0, help="LoRA rank on the LM (default 0: full fine-tuning, the paper)"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--bf16", action="store_true", help="train both modes under bf16 autocast (a mixed-precision run)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    workdir = Path(tempfile.mkdtemp(prefix="bench_stage2_cache_"))
    corpus = load_sign_dataset(
        "synthetic",
        cache_dir=str(workdir / "data"),
        num_train=args.num_train,
        num_validation=0,
        num_test=0,
        resolution=args.resolution,
    )
    train = corpus["train"]
    model, processor = build(args, list(train["text"]))
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    optimizer = build_optimizer(model, TrainConfig.from_dict({"stage": 2}).resolved())
    model, optimizer = accelerator.prepare(model, optimizer)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)

    start = time.perf_counter()
    rows = load_or_compute(
        accelerator.unwrap_model(model),
        processor.video_processor,
        train,
        "train",
        SignTranslationCollator(processor, training=False),
        workdir / "cache",
        args.batch_size,
        accelerator.device,
        accelerator,
        args.num_workers,
    )
    build_time = time.perf_counter() - start
    modes = {
        "video": make_loader(accelerator, train, SignTranslationCollator(processor, training=True), args),
        "cache": make_loader(accelerator, rows, FeatureCollator(processor), args),
    }
    steps = len(modes["video"][0])
    # A short untimed warm-up (optimizer states, allocator), then the modes alternate epoch by epoch,
    # so that a change in machine load hits both alike.
    time_epoch(accelerator, model, optimizer, *modes["cache"], epoch=-1, bf16=args.bf16)
    times = {"video": [], "cache": []}
    frame_counts = {"video": 0, "cache": 0}
    phases = {mode: dict.fromkeys(PHASES, 0.0) for mode in modes}
    for epoch in range(args.epochs):
        for mode, (loader, collate) in modes.items():
            seconds, frame_counts[mode] = time_epoch(
                accelerator, model, optimizer, loader, collate, epoch, phases[mode], bf16=args.bf16
            )
            times[mode].append(seconds)
    video_times, cache_times = times["video"], times["cache"]
    frames, cache_frames = frame_counts["video"], frame_counts["cache"]

    video_epoch, cache_epoch = statistics.mean(video_times), statistics.mean(cache_times)
    saved = video_epoch - cache_epoch
    results = {
        "device": str(accelerator.device),
        "threads": args.threads,
        "load_average_1min": os.getloadavg()[0],
        "cpu": platform.processor() or platform.machine(),
        "lm": args.lm,
        "trainable_parameters": trainable,
        "num_train": args.num_train,
        "batch_size": args.batch_size,
        "crop_size": args.crop_size,
        "frames_per_epoch": frames,
        "cached_frames_per_epoch": cache_frames,
        "steps_per_epoch": steps,
        "video_epoch_s": video_times,
        "cache_epoch_s": cache_times,
        "cache_build_s": build_time,
        "speedup": video_epoch / cache_epoch,
        "break_even_epochs": build_time / saved if saved > 0 else None,
    }
    print(
        f"\nStage-2 epoch{' (bf16 autocast)' if args.bf16 else ''}, {args.num_train} clips (~{frames} sampled frames at {args.crop_size}px), batch {args.batch_size}, "
        f"LM '{args.lm}' ({trainable / 1e6:.1f}M trainable), {accelerator.device}, {args.threads} thread(s), "
        f"load average {os.getloadavg()[0]:.1f}\n"
    )
    print(
        f"| {'mode':<28} | {'one-off (s)':>11} | {'epoch (s)':>9} | {'step (ms)':>9} | {'frames/s':>8} | {'speed-up':>8} |"
    )
    print(f"|{'-' * 30}|{'-' * 13}|{'-' * 11}|{'-' * 11}|{'-' * 10}|{'-' * 10}|")
    for name, one_off, epoch, count in (
        ("videos (no cache)", 0.0, video_epoch, frames),
        ("cached features", build_time, cache_epoch, cache_frames),
    ):
        print(
            f"| {name:<28} | {one_off:>11.1f} | {epoch:>9.2f} | {1000 * epoch / steps:>9.0f} | {count / epoch:>8.0f} | "
            f"{video_epoch / epoch:>7.2f}x |"
        )
    print(
        "\nWhere a step goes (ms per step, mean over the timed epochs): "
        + "; ".join(
            f"{mode}: "
            + ", ".join(f"{phase} {1000 * value / (steps * args.epochs):.0f}" for phase, value in phases[mode].items())
            for mode in modes
        )
    )
    results["phases_ms"] = {
        mode: {phase: 1000 * value / (steps * args.epochs) for phase, value in phases[mode].items()} for mode in modes
    }
    if results["break_even_epochs"] is not None:
        print(
            f"\nThe cache pays for itself after {results['break_even_epochs']:.2f} epoch(s) "
            "(it is built once per encoder and reused by later runs)."
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
