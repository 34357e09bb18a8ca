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
    return pipeline("sign-language-translation", model=model, device=device, dtype=dtype,
                    pipeline_class=SignLanguageTranslationPipeline)


def _check_output(output: Path) -> str:
    suffix = output.suffix.lower()
    if suffix not in (".jsonl", ".csv"):
        raise ValueError(f"--output {output}: expected a .jsonl or .csv file name.")
    return suffix


def write_results(results: list[dict], output: Path) -> None:
    """JSONL ({"input", "translation"} per line) or CSV (input,translation), chosen by the extension."""
    suffix = _check_output(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(output, "w", encoding="utf-8", newline="") as handle:
        if suffix == ".jsonl":
            for result in results:
                handle.write(json.dumps(result, ensure_ascii=False) + "\n")
        else:
            writer = csv.DictWriter(handle, fieldnames=["input", "translation"])
            writer.writeheader()
            writer.writerows(results)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="VIDEO_OR_FOLDER",
                        help="Video files, frame folders, or folders of clips.")
    parser.add_argument("--model", required=True, help="Model directory (save_pretrained output) or Hub id.")
    parser.add_argument("--output", default=None, help="Also write the translations to this .jsonl or .csv file.")
    parser.add_argument("--batch-size", type=int, default=1, help="Clips translated together.")
    parser.add_argument("--num-beams", type=int, default=None, help="Beam size (default: the model's, 5).")
    parser.add_argument("--max-new-tokens", type=int, default=None)
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: an accelerator if present).")


def run(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    try:
        clips = expand_inputs(args.inputs)
        if args.output:
            _check_output(Path(args.output))  # fail on a bad file name before translating
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"flallm translate: {error}") from None
    translator = load_translator(args.model, device=args.device)
    generate_kwargs = {key: value for key, value in
                       (("num_beams", args.num_beams), ("max_new_tokens", args.max_new_tokens)) if value is not None}
    logger.info("Translating %d clip(s) with %s", len(clips), args.model)

    results = []
    outputs = translator((str(clip) for clip in clips), batch_size=args.batch_size, **generate_kwargs)
    try:
        for clip, output in zip(clips, tqdm(outputs, total=len(clips), disable=len(clips) < 2, file=sys.stderr)):
            results.append({"input": str(clip), "translation": output["translation_text"]})
            print(f"{clip}\t{output['translation_text']}", flush=True)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"flallm translate: {error}") from None
    if args.output:
        write_results(results, Path(args.output))
        logger.info("Wrote %d translations to %s", len(results), args.output)
    return 0
