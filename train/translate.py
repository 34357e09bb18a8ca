"""Translate video files or frame folders from the command line: `flallm translate`.

```
flallm translate --model runs/phoenix/stage2 clip.mp4 frames_of_one_clip/
flallm translate --model runs/phoenix/stage2 clips/ --output translations.jsonl --batch-size 8
```
Each input is a video file, a folder of frame images (one clip), or a folder of clips: video files,
or sub-folders of frames (one clip each). Prints `input<TAB>translation` per clip; `--output`
writes JSONL or CSV (by extension). Runs the `sign-language-translation` pipeline.
"""

import argparse
import csv
import json
import logging
import sys
from pathlib import Path

logger = logging.getLogger(__name__)


def _kind(folder: Path) -> tuple[list[Path], list[Path], list[Path]]:
    from modeling_flallm.video_io import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS

    entries = sorted(folder.iterdir())
    videos = [p for p in entries if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS]
    images = [p for p in entries if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    subfolders = [p for p in entries if p.is_dir()]
    return videos, images, subfolders


def expand_inputs(paths) -> list[Path]:
    """The clips behind the command-line inputs, in order (see the module docstring)."""
    clips = []
    for path in map(Path, paths):
        if path.is_file():
            clips.append(path)
            continue
        if not path.is_dir():
            raise FileNotFoundError(f"{path}: no such video file or folder.")
        videos, images, subfolders = _kind(path)
        if images and not videos:
            clips.append(path)  # a frame folder: one clip
            continue
        frame_folders = [sub for sub in subfolders if _kind(sub)[1]]
        if not videos and not frame_folders:
            raise ValueError(f"{path}: holds no video files, frame images or sub-folders of frames.")
        clips += videos + frame_folders
    return clips


def load_translator(model: str, device=None, dtype="auto"):
    """The sign-language-translation pipeline of a model directory or Hub id (the package's own code)."""
    from transformers import pipeline

    import modeling_flallm  # noqa: F401  (registers the model, processor and task)
    from modeling_flallm.pipeline_flallm import SignLanguageTranslationPipeline

    # pipeline_class: a directory saved by the pipeline lists it in custom_pipelines, which transformers
    # would otherwise refuse to run without trust_remote_code.
    return pipeline(
        "sign-language-translation",
        model=model,
        device=device,
        dtype=dtype,
        pipeline_class=SignLanguageTranslationPipeline,
    )


def _check_output(output: Path) -> str:
    suffix = output.suffix.lower()
    if suffix not in (".jsonl", ".csv"):
        raise ValueError(f"--output {output}: expected a .jsonl or .csv file name.")
    return suffix


class ResultWriter:
    """Writes each translation as it comes (JSONL `{"input", "translation"}` lines, or CSV `input,translation`, by
    the extension), so that what was translated is kept if a later clip or the run fails. Opened before the first
    clip: an unwritable --output fails at once."""

    def __init__(self, output: Path):
        suffix = _check_output(output)
        try:
            output.parent.mkdir(parents=True, exist_ok=True)
            self.handle = open(output, "w", encoding="utf-8", newline="")  # noqa: SIM115 (closed by close())
        except OSError as error:
            raise OSError(f"--output {output}: cannot be written ({error.strerror}: {error.filename})") from None
        self.csv = csv.DictWriter(self.handle, fieldnames=["input", "translation"]) if suffix == ".csv" else None
        if self.csv:
            self.csv.writeheader()

    def write(self, result: dict) -> None:
        if self.csv:
            self.csv.writerow(result)
        else:
            self.handle.write(json.dumps(result, ensure_ascii=False) + "\n")
        self.handle.flush()

    def close(self) -> None:
        self.handle.close()


def translate_clips(translator, clips: list[Path], batch_size: int = 1, fail_fast: bool = False, **generate_kwargs):
    """Yield (clip, translation, error) per clip in order. A batch holding a bad clip is translated again clip by
    clip, so one unreadable file costs only itself; with `fail_fast` the first error is raised."""
    for start in range(0, len(clips), batch_size):
        chunk = clips[start : start + batch_size]
        try:
            outputs = translator([str(clip) for clip in chunk], batch_size=batch_size, **generate_kwargs)
            yield from ((clip, output["translation_text"], None) for clip, output in zip(chunk, outputs))
            continue
        except Exception as error:  # noqa: BLE001 (a clip the pipeline cannot read is reported, not fatal)
            if fail_fast or len(chunk) == 1:
                if fail_fast:
                    raise
                yield chunk[0], None, error
                continue
        for clip in chunk:
            try:
                [output] = translator([str(clip)], batch_size=1, **generate_kwargs)
            except Exception as error:  # noqa: BLE001
                yield clip, None, error
            else:
                yield clip, output["translation_text"], None


def _report(results, total: int, failed: list, writer, tqdm):
    """Print (and write) each translation as it comes; log and collect the clips that failed."""
    for clip, translation, error in tqdm(results, total=total, disable=total < 2, file=sys.stderr):
        if error is not None:
            failed.append(clip)
            logger.error("%s: not translated: %s", clip, error)
            continue
        print(f"{clip}\t{translation}", flush=True)
        if writer:
            writer.write({"input": str(clip), "translation": translation})
        yield clip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from .cli import add_dtype_argument, model_argument, positive_int

    parser.add_argument(
        "inputs", nargs="+", metavar="VIDEO_OR_FOLDER", help="Video files, frame folders, or folders of clips."
    )
    parser.add_argument(
        "--model", required=True, type=model_argument, help="Model directory (save_pretrained output) or Hub id."
    )
    parser.add_argument(
        "--output", default=None, help="Also write the translations to this .jsonl or .csv file (as they come)."
    )
    parser.add_argument("--batch-size", type=positive_int, default=1, help="Clips translated together.")
    parser.add_argument("--num-beams", type=positive_int, default=None, help="Beam size (default: the model's, 5).")
    parser.add_argument("--max-new-tokens", type=positive_int, default=None)
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: an accelerator if present).")
    add_dtype_argument(parser)
    parser.add_argument(
        "--fail-fast",
        action="store_true",
        help="Stop at the first clip that cannot be translated (default: report it, go on, exit 1).",
    )


def run(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from .cli import inference_precision

    try:
        clips = expand_inputs(args.inputs)
        writer = ResultWriter(Path(args.output)) if args.output else None  # fails before translating
    except (OSError, ValueError) as error:
        raise SystemExit(f"flallm translate: {error}") from None
    try:
        try:
            translator = load_translator(args.model, device=args.device)
        except OSError as error:
            raise SystemExit(f"flallm translate: --model {args.model}: {error}") from None
        generate_kwargs = {
            key: value
            for key, value in (("num_beams", args.num_beams), ("max_new_tokens", args.max_new_tokens))
            if value is not None
        }
        logger.info("Translating %d clip(s) with %s", len(clips), args.model)
        failed = []
        results = translate_clips(translator, clips, args.batch_size, args.fail_fast, **generate_kwargs)
        try:
            with inference_precision(args.dtype, translator.device):  # the generator runs the model inside it
                for _ in _report(results, len(clips), failed, writer, tqdm):
                    pass
        except Exception as error:  # noqa: BLE001 (--fail-fast)
            raise SystemExit(
                f"flallm translate: {error}" + (f" (translations so far: {args.output})" if writer else "")
            ) from None
    finally:
        if writer:
            writer.close()
    if writer:
        logger.info("Wrote %d translations to %s", len(clips) - len(failed), args.output)
    if failed:
        logger.error(
            "%d of %d clip(s) could not be translated: %s", len(failed), len(clips), ", ".join(map(str, failed))
        )
        return 1
    return 0
