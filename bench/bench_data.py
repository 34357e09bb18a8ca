"""Data-loading speed on one core: raw release layouts vs `flallm prepare`d parquet, and synthetic rendering.

    python bench/bench_data.py [--videos 24] [--clips 4] [--json results.json] [--workdir DIR]

Builds a PHOENIX-2014T-like tree (210x260 PNG frames, frame counts drawn from the real PHOENIX
dev set when ../shared/data/real_text is present) and a How2Sign-like tree (1280x720 H.264),
prepares both, then measures frames delivered per second for every frame and for the frames the
T/4 sampling keeps (evaluation sampling, as the collator asks for them). The process pins itself
to one CPU and counts its own CPU time, so numbers are per core and little disturbed by other
load. Files are read from the page cache in every case.

Frame content is the synthetic signer rendered at full size plus camera-like noise (the noise
level sets the PNG size, which drives PNG decoding time; the table reports the bytes per frame).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data_builders import decode_video, load_sign_dataset  # noqa: E402
from data_builders.prepare import prepare_dataset  # noqa: E402
from data_builders.synthetic import SyntheticSignLanguage, _signer_pool, make_spec, render_spec  # noqa: E402
from data_builders.testing import write_video  # noqa: E402

REAL_TEXT = Path(__file__).resolve().parents[2] / "shared" / "data" / "real_text"


def kept_indices(num_frames: int, rate: int = 4) -> np.ndarray:
    """The evaluation sampling of FlaLlmVideoProcessor: the centre of each of ceil(T/rate) segments."""
    count = -(-num_frames // rate)
    return np.floor((np.arange(count) + 0.5) * num_frames / count).astype(np.int64)


def realistic_frames(num_frames: int, size: tuple[int, int], rng: np.random.Generator, noise: float):
    """Yields the frames of a synthetic signer at full size with camera-like noise."""
    signer = _signer_pool(4, int(rng.integers(1000)))[0]
    spec = make_spec(SyntheticSignLanguage().sample(rng).signs, signer, rng, size, 25.0, noise=0.0)
    spec["num_frames"] = num_frames
    for index in range(num_frames):
        frame = render_spec(spec, [index])[0].astype(np.float32)
        frame += rng.standard_normal(frame.shape, dtype=np.float32) * noise
        yield np.clip(frame, 0, 255).astype(np.uint8)


def phoenix_frame_counts(count: int, rng: np.random.Generator) -> list[int]:
    path = REAL_TEXT / "phoenix14t.dev.jsonl.gz"
    if path.exists():
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            counts = [json.loads(line)["num_frames"] for line in handle]
        return [int(c) for c in rng.choice(counts, count)]
    return [int(c) for c in rng.integers(50, 200, count)]


def build_phoenix(root: Path, videos: int, noise: float, rng: np.random.Generator) -> Path:
    release = root / "PHOENIX-2014-T"
    (release / "annotations" / "manual").mkdir(parents=True, exist_ok=True)
    lines = ["name|video|start|end|speaker|orth|translation"]
    for i, count in enumerate(phoenix_frame_counts(videos, rng)):
        name = f"bench-{i:04d}"
        folder = release / "features" / "fullFrame-210x260px" / "train" / name
        folder.mkdir(parents=True)
        for j, frame in enumerate(realistic_frames(count, (260, 210), rng, noise)):
            Image.fromarray(frame).save(folder / f"images{j + 1:04d}.png")
        lines.append(f"{name}|{name}/1/*.png|-1|-1|Signer01|A B|ein satz")
    for split in ("dev", "test"):
        (release / "features" / "fullFrame-210x260px" / split).mkdir(parents=True)
    for split, text in (("train", "\n".join(lines)), ("dev", lines[0]), ("test", lines[0])):
        (release / "annotations" / "manual" / f"PHOENIX-2014-T.{split}.corpus.csv").write_text(
            text + "\n", encoding="utf-8"
        )
    return release


def build_how2sign(root: Path, clips: int, noise: float, rng: np.random.Generator) -> Path:
    release = root / "How2Sign"
    lines = ["VIDEO_ID\tVIDEO_NAME\tSENTENCE_ID\tSENTENCE_NAME\tSTART_REALIGNED\tEND_REALIGNED\tSENTENCE"]
    for split in ("train", "val", "test"):
        (release / f"{split}_rgb_front_clips" / "raw_videos").mkdir(parents=True)
    for i in range(clips):
        name = f"bench{i:03d}-rgb_front"
        frames = realistic_frames(int(rng.integers(120, 200)), (720, 1280), rng, noise)
        write_video(release / "train_rgb_front_clips" / "raw_videos" / f"{name}.mp4", frames, fps=25, crf=23)
        lines.append(f"v{i}\tv{i}-rgb_front\tv{i}_0\t{name}\t0.0\t5.0\tA sentence.")
    (release / "how2sign_realigned_train.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for split in ("val", "test"):
        (release / f"how2sign_realigned_{split}.csv").write_text(lines[0] + "\n", encoding="utf-8")
    return release


def peer_style_png_reader(folder: Path, indices=None) -> np.ndarray:
    """How earlier SLT code reads PHOENIX: glob + sort the PNGs, PIL open + convert every frame,
    then keep the sampled ones (the T/4 sampling happens after reading)."""
    frames = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in sorted(folder.glob("*.png"))])
    return frames if indices is None else frames[indices]


def measure(name: str, examples, read, repeats: int) -> dict:
    """Frames per CPU-second delivered by `read(example, indices)`, all frames and the kept T/4 frames.

    CPU time of this process (pinned to one core) rather than wall time, and the best of `repeats`
    passes: on a shared machine wall time mostly measures the neighbours.
    """
    row = {"path": name}
    for mode in ("all", "kept"):
        best = None
        for _ in range(repeats):
            frames, start = 0, time.process_time()
            for example in examples():
                indices = None if mode == "all" else kept_indices(example["num_frames"])
                frames += len(read(example, indices))
            seconds = time.process_time() - start
            best = seconds if best is None else min(best, seconds)
        row[f"{mode}_frames"], row[f"{mode}_seconds"], row[f"{mode}_fps"] = (
            frames,
            round(best, 3),
            round(frames / best, 1),
        )
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=24, help="PHOENIX-like videos (default 24)")
    parser.add_argument("--clips", type=int, default=4, help="How2Sign-like 720p clips (default 4; 0 skips)")
    parser.add_argument("--noise", type=float, default=1.0, help="camera noise std added to frames (default 1)")
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed passes per measurement; the best is kept (default 3)"
    )
    parser.add_argument("--workdir", help="keep the generated trees here (default: a temporary folder)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--all-cores", action="store_true", help="do not pin the process to one CPU")
    args = parser.parse_args(argv)
    if not args.all_cores and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    rng = np.random.default_rng(0)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_data_"))
    rows = []

    phoenix = work / "phoenix" / "PHOENIX-2014-T"
    if not phoenix.exists():  # a --workdir from an earlier run is reused
        print("building the PHOENIX-like tree ...", file=sys.stderr)
        phoenix = build_phoenix(work / "phoenix", args.videos, args.noise, rng)
    raw = load_sign_dataset("phoenix14t", phoenix, cache_dir=str(work / "cache"))["train"]
    t = time.process_time()
    prepared_dir = prepare_dataset("phoenix14t", work / "phoenix-prepared", data_dir=phoenix, overwrite=True)
    prepare_seconds = time.process_time() - t
    prepared = load_sign_dataset(str(prepared_dir), cache_dir=str(work / "cache"))["train"]
    png_bytes = np.mean([p.stat().st_size for p in (phoenix / "features").rglob("*.png")])
    jpeg_bytes = np.mean([len(f["bytes"]) for f in prepared[0]["video"]])
    frames_total = sum(raw["num_frames"])
    rows.append(
        measure(
            "PHOENIX raw PNG folder, peer-style PIL reader",
            lambda: iter(raw),
            lambda e, i: peer_style_png_reader(Path(e["video"]["path"]), i),
            args.repeats,
        )
    )
    rows.append(
        measure(
            "PHOENIX raw PNG folder, decode_video (kept frames only)",
            lambda: iter(raw),
            lambda e, i: decode_video(e["video"], i),
            args.repeats,
        )
    )
    rows.append(
        measure(
            "PHOENIX prepared parquet (JPEG), decode_video",
            lambda: (prepared[k] for k in range(len(prepared))),
            lambda e, i: decode_video(e["video"], i),
            args.repeats,
        )
    )
    notes = {
        "phoenix_videos": len(raw),
        "phoenix_frames": frames_total,
        "png_bytes_per_frame": round(png_bytes),
        "jpeg_bytes_per_frame": round(jpeg_bytes),
        "phoenix_prepare_frames_per_s": round(frames_total / prepare_seconds, 1),
    }

    if args.clips:
        how2sign = work / "how2sign" / "How2Sign"
        if not how2sign.exists():
            print("building the How2Sign-like tree ...", file=sys.stderr)
            how2sign = build_how2sign(work / "how2sign", args.clips, args.noise, rng)
        raw_h = load_sign_dataset("how2sign", how2sign, cache_dir=str(work / "cache"))["train"]
        prepared_h = load_sign_dataset(
            str(prepare_dataset("how2sign", work / "how2sign-prepared", data_dir=how2sign, overwrite=True)),
            cache_dir=str(work / "cache"),
        )["train"]
        rows.append(
            measure(
                "How2Sign raw mp4 1280x720 (PyAV)",
                lambda: iter(raw_h),
                lambda e, i: decode_video(e["video"], i),
                args.repeats,
            )
        )
        rows.append(
            measure(
                "How2Sign prepared parquet (JPEG 455x256)",
                lambda: (prepared_h[k] for k in range(len(prepared_h))),
                lambda e, i: decode_video(e["video"], i),
                args.repeats,
            )
        )
        notes["how2sign_clips"], notes["how2sign_frames"] = len(raw_h), sum(raw_h["num_frames"])

    synthetic = load_sign_dataset(
        "synthetic", cache_dir=str(work / "cache"), num_train=40, num_validation=1, num_test=1
    )["train"]
    rows.append(
        measure(
            "synthetic render 48x48 (default)",
            lambda: iter(synthetic),
            lambda e, i: decode_video(e["video"], i),
            args.repeats,
        )
    )
    synthetic_224 = load_sign_dataset(
        "synthetic", cache_dir=str(work / "cache"), num_train=10, num_validation=1, num_test=1, resolution=224
    )["train"]
    rows.append(
        measure(
            "synthetic render 224x224",
            lambda: iter(synthetic_224),
            lambda e, i: decode_video(e["video"], i),
            args.repeats,
        )
    )

    baseline = rows[0]
    for row in rows:
        if row["path"].startswith("PHOENIX"):
            row["speedup_all"] = round(row["all_fps"] / baseline["all_fps"], 2)
            row["speedup_kept"] = round(row["kept_fps"] / baseline["kept_fps"], 2)
    if args.clips:
        raw_mp4 = next(r for r in rows if r["path"].startswith("How2Sign raw"))
        for row in rows:
            if row["path"].startswith("How2Sign"):
                row["speedup_all"] = round(row["all_fps"] / raw_mp4["all_fps"], 2)
                row["speedup_kept"] = round(row["kept_fps"] / raw_mp4["kept_fps"], 2)

    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs visible, " + (
        "pinned to 1 core" if not args.all_cores else "all cores"
    )
    print(f"\nmachine: {machine}; python {platform.python_version()}")
    print(", ".join(f"{k}={v}" for k, v in notes.items()))
    print("\n| path | all frames: frames per CPU-s | x | kept T/4: frames per CPU-s | x |")
    print("|---|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['path']} | {row['all_fps']:.0f} | {row.get('speedup_all', '')} | {row['kept_fps']:.0f} | {row.get('speedup_kept', '')} |"
        )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"machine": machine, "notes": notes, "rows": rows}, indent=1), encoding="utf-8"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
