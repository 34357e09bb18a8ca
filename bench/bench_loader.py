"""Does the input pipeline keep the training step fed? Loader frames/s against what a stage-1 step consumes.

    python bench/bench_loader.py                          # CPU: workers 0 1 2, paper shapes (224 px), ~2 min
    python bench/bench_loader.py --workers 0 4 8 16 --device cuda --bf16
    python bench/bench_loader.py --json results/loader.json

The loader is the one `flallm train` builds (`train.trainer.training_batches`): a prepared dataset (`flallm prepare`
of the synthetic corpus at 256 px, JPEG frames, what training reads from a real corpus), the seeded training
collator (T/4 sampling, random crop and scale, normalisation) and Accelerate's device placement. Its rate is
kept frames per second delivered on the device, with N DataLoader worker processes (0: in the training process),
in steady state (the first batch of an epoch, which waits for the workers to start, is reported on its own). On a
GPU the workers send uint8 frames (a quarter of the bytes) and the step normalises them on the device; on the CPU
the workers normalise (the training process has no time to spare); `--compare` times the other choice too.

The consumption rate is one stage-1 training step of the paper's model (ResNet-18 + temporal module + VL-adapter
+ Light-T, random weights) on the same device at the same frame size, in frames per second of step time. The
target (issue 15) is a loader at >= 2x that rate. Where one step is split between decoding and the processor
(crop/resize/normalise), the `decode only` row says which of the two costs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _benchutil as bu  # noqa: E402


def prepared_corpus(workdir: Path, num_clips: int, resolution: int) -> Path:
    """The synthetic corpus prepared as `flallm prepare synthetic` writes it (JPEG frames), made once per folder."""
    from data_builders.prepare import prepare_dataset

    output = workdir / f"synthetic-{num_clips}-{resolution}px"
    if not (output / ".prepare" / "complete.json").is_file():
        prepare_dataset(
            "synthetic",
            output,
            resolution=resolution,
            num_train=num_clips,
            num_validation=1,
            num_test=1,
            overwrite=True,
        )
    return output


def training_loader(rows, processor, batch_size: int, workers: int, device: str, normalize_in_workers: bool):
    """The loader `flallm train` builds for these rows (stage 1, no feature cache). `normalize_in_workers`: float
    frames normalised by the collator (what `flallm train` does on the CPU); else uint8 frames, normalised on the
    device by the step (what it does on a GPU)."""
    from accelerate import Accelerator

    from train.config import TrainConfig
    from train.trainer import training_batches

    config = TrainConfig()
    config.training.batch_size = batch_size
    config.data.num_workers = workers
    accelerator = Accelerator(cpu=device == "cpu")
    loader, sampler, collate = training_batches(accelerator, None, processor, rows, config, use_cache=False)
    collate.collator.normalize = not normalize_in_workers
    for seeded in (loader, sampler, collate):
        seeded.set_epoch(0)
    return loader


def loader_rate(loader, video_processor, seconds: float, device: str) -> dict:
    """Kept frames per second the loader delivers on `device` in steady state: over whole epochs (as many as
    `seconds` holds), each timed from its first batch, since workers start again at every epoch (a real epoch holds
    hundreds of batches, which hide that start). The start-up is reported on its own."""
    import torch

    frames, count, epoch, elapsed, startups = 0, 0, 0, 0.0, []
    while elapsed < seconds:
        loader.set_epoch(epoch)
        epoch += 1
        start = time.perf_counter()
        batches = iter(loader)
        next(batches)
        startups.append(time.perf_counter() - start)
        start = time.perf_counter()
        for batch in batches:
            if batch["pixel_values"].dtype == torch.uint8:  # what the training step does first
                video_processor.normalize(batch["pixel_values"], batch["pixel_mask"])
            frames += int(batch["pixel_mask"].sum())
            count += 1
        if not count:
            raise SystemExit("bench_loader: an epoch needs 2 batches or more; raise --clips or lower --batch-size")
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        elapsed += time.perf_counter() - start
    return {
        "frames_per_second": frames / elapsed,
        "batches": count,
        "epochs": epoch,
        "seconds": round(elapsed, 2),
        "first_batch_seconds": round(statistics.median(startups), 3),
    }


def decode_rate(rows, video_processor, seconds: float) -> float:
    """Kept frames per second of decoding alone (the frames the T/4 training sampling keeps), in this process."""
    from data_builders import decode_video

    frames, start, index = 0, time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        row = rows[index % len(rows)]
        indices = video_processor.sample_frame_indices(int(row["num_frames"]), training=True)
        frames += len(decode_video(row["video"], indices, max_short_side=video_processor.size))
        index += 1
    return frames / (time.perf_counter() - start)


def step_rate(size: int, frames_per_video: int, batch_size: int, steps: int, device: str, bf16: bool) -> dict:
    """Frames per second one stage-1 training step consumes (paper model, random weights, `size` px frames)."""
    import torch

    from modeling_flallm import FlaLlmForSignTranslation

    torch.manual_seed(0)
    model = FlaLlmForSignTranslation(bu.stage1_config()).to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    pixel_values = torch.randn(batch_size, frames_per_video, 3, size, size, device=device)
    pixel_mask = torch.ones(batch_size, frames_per_video, dtype=torch.long, device=device)
    labels = torch.randint(4, 3000, (batch_size, 24), device=device)
    dtype = torch.bfloat16 if bf16 else torch.float32

    def step():
        with torch.autocast(device_type=torch.device(device).type, dtype=dtype, enabled=bf16):
            loss = model(pixel_values=pixel_values, pixel_mask=pixel_mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    step()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = (time.perf_counter() - start) / steps
    return {"step_seconds": seconds, "frames_per_second": batch_size * frames_per_video / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2], help="DataLoader workers (default 0 1 2)")
    parser.add_argument("--clips", type=int, default=48, help="prepared synthetic clips (default 48)")
    parser.add_argument("--resolution", type=int, default=256, help="prepared frame size (default 256, as prepare)")
    parser.add_argument("--size", type=int, default=256, help="video processor resize (default 256)")
    parser.add_argument("--crop-size", type=int, default=224, help="video processor crop (default 224, the paper)")
    parser.add_argument("--batch-size", type=int, default=8, help="videos per batch (default 8, the paper's stage 1)")
    parser.add_argument("--seconds", type=float, default=20, help="seconds each loader is timed (default 20)")
    parser.add_argument("--steps", type=int, default=2, help="timed training steps (default 2)")
    parser.add_argument("--step-frames", type=int, default=16, help="frames per video in the timed step (default 16)")
    parser.add_argument("--step-batch", type=int, default=2, help="videos in the timed step (default 2)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--bf16", action="store_true", help="the timed step under bf16 autocast")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads of the training step")
    parser.add_argument("--workdir", type=Path, help="keep the prepared corpus here (default: a temporary folder)")
    parser.add_argument(
        "--compare", action="store_true", help="also time the other place to normalise (workers or the device)"
    )
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()

    import torch

    from modeling_flallm import FlaLlmVideoProcessor

    torch.set_num_threads(args.threads)
    info = bu.machine_info(args.threads, args.device)
    bu.print_machine(info)
    with tempfile.TemporaryDirectory() as scratch:
        corpus = prepared_corpus(args.workdir or Path(scratch), args.clips, args.resolution)
        from data_builders import load_sign_dataset

        rows = load_sign_dataset(str(corpus))["train"]
        processor = FlaLlmVideoProcessor(frame_sample_rate=4, size=args.size, crop_size=args.crop_size)
        consumed = step_rate(args.crop_size, args.step_frames, args.step_batch, args.steps, args.device, args.bf16)
        results = [{"loader": "decode only (main process)", "frames_per_second": decode_rate(rows, processor, 5)}]
        for workers in args.workers:
            default = args.device == "cpu"  # where `flallm train` normalises on this device
            for in_workers in (default, not default) if args.compare else (default,):
                loader = training_loader(rows, processor, args.batch_size, workers, args.device, in_workers)
                name = "normalised in the workers" if in_workers else "uint8, normalised on the device"
                name += " (flallm train)" if in_workers == default else ""
                measured = loader_rate(loader, processor, args.seconds, args.device)
                results.append({"loader": f"{name}, {workers} worker(s)", "workers": workers, **measured})
                del loader
    for row in results:
        cores = max(1, row.get("workers", 1))
        row["per_core"] = f"{row['frames_per_second'] / cores:.0f}"
        row["ratio"] = f"{row['frames_per_second'] / consumed['frames_per_second']:.1f}x"
        row["fps"] = f"{row['frames_per_second']:.0f}"
    print(
        f"\nstage-1 step ({args.device}{', bf16' if args.bf16 else ''}, {args.crop_size} px, "
        f"{args.step_batch}x{args.step_frames} frames): {consumed['step_seconds']:.2f} s, "
        f"consumes {consumed['frames_per_second']:.1f} frames/s\n"
    )
    print(
        bu.markdown_table(
            results,
            [
                ("loader", "loader"),
                ("fps", "frames/s on the device"),
                ("per_core", "per worker core"),
                ("ratio", "loader / step"),
                ("first_batch_seconds", "first batch of an epoch (s)"),
            ],
        )
    )
    info["load_average_end"] = bu.load_average()
    bu.write_json(
        args.json,
        {"machine": info, "args": vars(args) | {"workdir": str(args.workdir)}, "step": consumed, "loaders": results},
    )


if __name__ == "__main__":
    main()
