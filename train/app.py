"""`flallm app`: a local Gradio page to try a model: upload (or record) a video, press Translate.

    flallm app --model flallm-demo/stage2                 # the demo's examples are found beside it (flallm-demo/examples)
    flallm app --model you/flallm-phoenix14t --port 7861  # a Hub id (where the Hub is reachable)

The page shows the translation, the frames the model actually kept (the T -> T/4 sampling, as a strip), the time it
took, and beam size / maximum length controls. Example clips (a folder with `examples.jsonl`, as `flallm demo` writes)
appear under the video with their reference sentence. Bad input (not a video, an empty or corrupt file, a clip too
long) gives a message on the page; the page keeps working for the next upload. Needs the `app` extra
(`pip install "flallm[app]"`: gradio).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

STRIP_FRAMES = 16  # at most this many kept frames are shown, evenly spread
STRIP_HEIGHT = 96


def find_examples(model: str, examples: str | None = None) -> list[dict]:
    """[{"path", "reference"}] from `examples` (a folder with examples.jsonl), else from the folder `flallm demo` writes
    beside its stage directories (MODEL/../examples)."""
    folder = Path(examples) if examples else Path(model).expanduser().resolve().parent / "examples"
    listing = folder / "examples.jsonl"
    if not listing.is_file():
        if examples:
            raise FileNotFoundError(
                f"--examples {examples}: no examples.jsonl there (flallm demo writes one in DIR/examples)"
            )
        return []
    rows = [json.loads(line) for line in listing.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [
        {"path": str(folder / row["file"]), "reference": row.get("reference", "")}
        for row in rows
        if (folder / row["file"]).is_file()
    ]


def frame_strip(frames: np.ndarray, count: int = STRIP_FRAMES, height: int = STRIP_HEIGHT) -> np.ndarray:
    """Up to `count` of the kept frames, evenly spread, side by side at `height` pixels."""
    from PIL import Image

    picks = np.linspace(0, len(frames) - 1, min(count, len(frames))).round().astype(int)
    tiles = []
    for frame in frames[picks]:
        width = max(1, round(frame.shape[1] * height / frame.shape[0]))
        tiles.append(np.asarray(Image.fromarray(frame).resize((width, height), Image.NEAREST)))
    return np.concatenate(tiles, axis=1)


class Translator:
    """The pipeline of one model, and what the page needs around it: kept frames, timing, clear errors."""

    def __init__(self, model: str, device=None, max_seconds: float = 600.0, dtype: str = "fp32"):
        from .translate import load_translator

        self.pipeline = load_translator(model, device=device)
        self.dtype = dtype
        self.max_seconds = max_seconds
        self.references = {}

    def check(self, path: str) -> None:
        """A clip the page takes: a video the one reader can open (`modeling_flallm.video_io`), not too long."""
        from modeling_flallm.video_io import probe_video

        num_frames, fps, _ = probe_video(path)  # a ValueError naming the file if it is not a readable video
        seconds = num_frames / fps
        if seconds > self.max_seconds:
            raise ValueError(
                f"the clip is {seconds / 60:.1f} minutes long; this page takes up to "
                f"{self.max_seconds / 60:.0f} (flallm app --max-seconds)"
            )

    def __call__(self, path: str | None, num_beams: int, max_new_tokens: int):
        """(translation, frame strip or None, status line, reference) for the page."""
        from modeling_flallm.video_io import load_video

        from .cli import inference_precision

        if not path:
            return "", None, "Upload or record a video first.", ""
        name = Path(path).name
        try:
            self.check(path)
            processor = self.pipeline.processor.video_processor
            kept = load_video(path, lambda n: processor.sample_frame_indices(n), max_short_side=processor.size)
            started = time.perf_counter()
            with inference_precision(self.dtype, self.pipeline.device):
                output = self.pipeline(path, num_beams=int(num_beams), max_new_tokens=int(max_new_tokens))
            seconds = time.perf_counter() - started
        except (ValueError, FileNotFoundError, OSError) as error:
            logger.info("app: %s: %s", name, error)
            return "", None, f"**Could not translate {name}:** {error}", ""
        status = f"Translated in {seconds:.2f} s; the model kept {len(kept)} frames (shown: up to {STRIP_FRAMES})."
        return output["translation_text"], frame_strip(kept), status, self.references.get(Path(path).name, "")


def build_app(
    model: str, examples: list[dict] | None = None, device=None, max_seconds: float = 600.0, dtype: str = "fp32"
):
    """The gr.Blocks page of `model` (a folder or Hub id)."""
    import gradio as gr

    translator = Translator(model, device=device, max_seconds=max_seconds, dtype=dtype)
    generation = translator.pipeline.model.generation_config
    examples = examples or []
    translator.references = {Path(e["path"]).name: e["reference"] for e in examples}
    with gr.Blocks(title="flallm: sign language translation") as page:
        gr.Markdown(f"# Sign language translation\nModel: `{model}`. Upload a video (or record one), then Translate.")
        with gr.Row():
            with gr.Column():
                video = gr.Video(sources=["upload", "webcam"], label="Video", elem_id="video")
                with gr.Row():
                    beams = gr.Slider(
                        1, 10, value=generation.num_beams or 5, step=1, label="beam size", elem_id="beams"
                    )
                    length = gr.Slider(
                        4, 200, value=generation.max_new_tokens or 100, step=1, label="max new tokens", elem_id="length"
                    )
                button = gr.Button("Translate", variant="primary", elem_id="translate")
            with gr.Column():
                translation = gr.Textbox(label="Translation", elem_id="translation", interactive=False)
                reference = gr.Textbox(label="Reference (example clips)", elem_id="reference", interactive=False)
                status = gr.Markdown(elem_id="status")
        strip = gr.Image(label="Frames the model kept", elem_id="frames", interactive=False)
        if examples:
            gr.Examples([[e["path"]] for e in examples], inputs=[video], label="Example clips")
        button.click(translator, inputs=[video, beams, length], outputs=[translation, strip, status, reference])
    return page


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from .cli import add_dtype_argument, model_argument

    parser.add_argument("--model", required=True, type=model_argument, help="Model directory or Hub id.")
    add_dtype_argument(parser)
    parser.add_argument("--host", default="127.0.0.1", help="Address to serve on (default 127.0.0.1: this machine).")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument(
        "--examples", help="Folder with examples.jsonl (default: MODEL/../examples, as flallm demo writes)."
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: an accelerator if present).")
    parser.add_argument("--max-seconds", type=float, default=600.0, help="Longest clip the page accepts (default 600).")


def run(args: argparse.Namespace) -> int:
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise SystemExit('flallm app needs gradio: pip install "flallm[app]"') from None
    try:
        examples = find_examples(args.model, args.examples)
        page = build_app(args.model, examples, device=args.device, max_seconds=args.max_seconds, dtype=args.dtype)
    except (OSError, ValueError) as error:
        raise SystemExit(f"flallm app: {error}") from None
    print(f"flallm app: http://{args.host}:{args.port} ({len(examples)} example clips)", flush=True)
    page.launch(
        server_name=args.host, server_port=args.port, allowed_paths=[str(Path(e["path"]).parent) for e in examples[:1]]
    )
    return 0
