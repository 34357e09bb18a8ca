"""Does the input pipeline keep the training step fed? Loader frames/s against what a stage-1 step consumes.

    python bench/bench_loader.py                          # CPU: workers 0 1 2, paper shapes (224 px), ~2 min
    python bench/bench_loader.py --workers 0 4 8 16 --device cuda --bf16
    python bench/bench_loader.py --json results/loader.json

The loader is the one `flallm train` builds (`train.trainer.training_batches`): a prepared dataset (`flallm prepare`
of the synthetic corpus at 256 px, JPEG frames, what training reads from a real corpus), the seeded training
collator (T/4 sampling, random crop and scale, normalisation) and Accelerate's device placement. Its rate is
kept frames per second delivered on the device, with N DataLoader worker processes (0: in the training process),
after one warm-up batch (worker start-up is paid once per run: persistent workers).

The consumption rate is one stage-1 training step of the paper's model (ResNet-18 + temporal module + VL-adapter
+ Light-T, random weights) on the same device at the same frame size, in frames per second of step time. The
target (issue 15) is a loader at >= 2x that rate. Where one step is split between decoding and the processor
(crop/resize/normalise), the `decode only` row says which of the two costs.
"""

from __future__ import annotations

import argparse
import os
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


def training_loader(rows, processor, batch_size: int, workers: int, device: str):
    """The loader `flallm train` builds for these rows (stage 1, no feature cache)."""
    from accelerate import Accelerator

    from train.config import TrainConfig
    from train.trainer import training_batches

    config = TrainConfig()
    config.training.batch_size = batch_size
    config.data.num_workers = workers
    accelerator = Accelerator(cpu=device == "cpu")
    loader, sampler, collate = training_batches(accelerator, None, processor, rows, config, use_cache=False)
    for seeded in (loader, sampler, collate):
        seeded.set_epoch(0)
    return loader


def loader_rate(loader, seconds: float, device: str) -> dict:
    """Kept frames per second the loader delivers on `device`, after a warm-up batch."""
    import torch

    batches = iter(loader)
    next(batches)  # worker start-up and first-batch costs: paid once per run
    frames, count, start = 0, 0, time.perf_counter()
    for batch in batches:
        frames += int(batch["pixel_mask"].sum())
        count += 1
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if time.perf_counter() - start >= seconds:
            break
    elapsed = time.perf_counter() - start
    return {"frames_per_second": frames / elapsed, "batches": count, "seconds": round(elapsed, 2)}


def decode_rate(rows, processor, seconds: float) -> float:
    """Kept frames per second of decoding alone (the frames the T/4 training sampling keeps), in this process."""
    from data_builders import decode_video

    video_processor = processor.video_processor
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
            loader = training_loader(rows, processor, args.batch_size, workers, args.device)
            measured = loader_rate(loader, args.seconds, args.device)
            results.append({"loader": f"flallm train loader, {workers} worker(s)", "workers": workers, **measured})
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
            ],
        )
    )
    info["load_average_end"] = bu.load_average()
    bu.write_json(args.json, {"machine": info, "args": vars(args) | {"workdir": str(args.workdir)}, "step": consumed, "loaders": results})


if __name__ == "__main__":
    main()
