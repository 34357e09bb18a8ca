"""Peak memory of one long video through the pipeline: frames shrunk as they are decoded vs kept at full size.

    python bench/bench_long_video.py                        # a 10-minute 720p clip at 30 fps (written once, cached)
    python bench/bench_long_video.py --minutes 1 --height 360 --width 640

The clip is written with PyAV (mpeg4) under --cache-dir. Each row runs in its own process (peak RSS per row):
- `pipeline`: `pipeline("sign-language-translation")` on the file, as `flallm translate` runs it (every kept frame
  is shrunk to the processor's resize size as it is decoded, `modeling_flallm.video_io.shrink`);
- `full-size frames`: the same sampled frames decoded at full size (`load_video` without `max_short_side`, how the
  pipeline read files before), then the same processor.
The model is a tiny random FLa-LLM with the paper's video processor (resize 256, crop 224, T/4, max_frames 1024): the
memory measured is the video's, not the model's. Prints a table (peak RSS, seconds, frames kept).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from _benchutil import GIB, machine_info, markdown_table, peak_rss_bytes, print_machine, run_child

ROOT = Path(__file__).resolve().parents[1]


def write_clip(path: Path, minutes: float, height: int, width: int, fps: int = 30) -> Path:
    """A moving gradient (cheap to encode, not constant: the decoder does real work)."""
    import av
    import numpy as np

    if path.is_file():
        return path
    tmp = path.with_name(f".{path.name}.tmp.mp4")
    rows, cols = np.mgrid[0:height, 0:width]
    with av.open(str(tmp), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps, options={"qscale": "8"})
        stream.height, stream.width = height, width
        for index in range(int(minutes * 60 * fps)):
            value = ((rows + cols + 4 * index) % 256).astype(np.uint8)
            frame = np.repeat(value[:, :, None], 3, axis=2)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    tmp.replace(path)
    return path


def tiny_model_dir(directory: Path) -> Path:
    from transformers import MBartConfig

    from modeling_flallm import FlaLlmConfig, FlaLlmForSignTranslation, FlaLlmProcessor, FlaLlmVideoProcessor
    from modeling_flallm.tokenization_flallm import train_tokenizer

    tokenizer = train_tokenizer(["a long video", "of one signer"] * 10, vocab_size=300, model_type="bpe")
    text = MBartConfig(
        vocab_size=len(tokenizer),
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        max_position_embeddings=1100,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
        decoder_start_token_id=tokenizer.eos_token_id,
    )
    vision = {"embedding_size": 8, "hidden_sizes": [8, 16], "depths": [1, 1], "layer_type": "basic"}
    model = FlaLlmForSignTranslation(
        FlaLlmConfig(
            vision_config=vision,
            text_config=text.to_dict(),
            temporal_hidden_size=16,
            adapter_hidden_size=16,
            max_frames=1024,
            frame_sample_rate=4,
        )
    )
    model.generation_config.max_new_tokens = 4
    processor = FlaLlmProcessor(
        video_processor=FlaLlmVideoProcessor(frame_sample_rate=4, size=256, crop_size=224, max_frames=1024),
        tokenizer=tokenizer,
    )
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


def child(mode: str, model_dir: str, clip: str) -> None:
    import torch
    from transformers import pipeline

    import modeling_flallm  # noqa: F401  (registers the task)
    from modeling_flallm import FlaLlmProcessor
    from modeling_flallm.video_io import load_video

    torch.set_num_threads(1)
    started = time.perf_counter()
    if mode == "pipeline":
        translator = pipeline("sign-language-translation", model=model_dir)
        translator(clip)
        kept = None
    else:
        processor = FlaLlmProcessor.from_pretrained(model_dir).video_processor
        frames = load_video(clip, lambda n: processor.sample_frame_indices(n))
        kept = len(frames)
        processor(frames, do_sample_frames=False)
    print(
        json.dumps(
            {
                "seconds": round(time.perf_counter() - started, 1),
                "frames_kept": kept,
                "peak_rss_gib": round(peak_rss_bytes() / GIB, 3),
            }
        )
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--cache-dir", default="runs/bench-long-video", help="where the clip is written (reused)")
    parser.add_argument("--max-rss-gib", type=float, default=16.0, help="kill a row whose RSS passes this")
    parser.add_argument("--child", nargs=3, metavar=("MODE", "MODEL_DIR", "CLIP"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child)
        return 0
    print_machine(machine_info(torch_threads=1))
    cache = Path(args.cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    clip = write_clip(
        cache / f"clip-{args.minutes:g}min-{args.width}x{args.height}.mp4", args.minutes, args.height, args.width
    )
    print(f"clip: {clip} ({clip.stat().st_size / 1e6:.0f} MB; ready in {time.perf_counter() - started:.0f} s)")
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        model_dir = tiny_model_dir(Path(directory))
        for mode, name in (("pipeline", "pipeline (frames shrunk as decoded)"), ("full", "full-size frames")):
            result = run_child(
                [__file__, "--child", mode, str(model_dir), str(clip)], max_rss_bytes=int(args.max_rss_gib * GIB)
            )
            rows.append(
                {
                    "path": name,
                    "peak RSS (GiB)": result.get("peak_rss_gib") or result.get("observed_peak_rss_gib"),
                    "seconds": result.get("seconds"),
                    "error": result.get("error", ""),
                }
            )
    print(
        markdown_table(
            rows, [("path", "path"), ("peak RSS (GiB)", "peak RSS (GiB)"), ("seconds", "seconds"), ("error", "note")]
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
