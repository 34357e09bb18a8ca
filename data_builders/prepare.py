"""`flallm prepare`: turn a corpus into parquet shards + a dataset card, once.

Raw releases are slow to read (a PNG per frame, or 720p H.264 that must be decoded from the
start). A prepared dataset stores every frame as a JPEG at training resolution in a
`List(Image())` column, so a reader decodes only the frames the T/4 sampling keeps, and the
folder is a plain Hub dataset: `datasets.load_dataset(folder)` opens it without this package.

Robustness: shards are planned from the annotation rows, each is written under a temporary
name and renamed when complete, and a rerun skips the shards that exist, so an interrupted run
resumes where it stopped and a half-written shard never looks complete. The split sizes in the
card are what `datasets` verifies when loading.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from tqdm.auto import tqdm

from .common import (
    COMPLETE_FILE,
    LOCK_FILE,
    SPLITS,
    STATE_DIR,
    BadSampleError,
    SkipLog,
    atomic_file,
    directory_lock,
    prepared_features,
    write_text_atomic,
)
from .loading import BUILDERS, get_builder
from .video_io import encode_jpeg, iter_frames, resize_frame

logger = logging.getLogger(__name__)

DEFAULT_RESOLUTION = 256  # shorter side of stored frames for the real corpora (the processor crops 224 of 256)
ROWS_PER_GROUP = 8  # examples per parquet row group: small reads for random access


def _shard_plan(rows: dict[str, list[dict]], examples_per_shard: int) -> list[dict]:
    shards = []
    for split in SPLITS:
        split_rows = rows.get(split, [])
        count = math.ceil(
            len(split_rows) / examples_per_shard
        )  # an empty split gets no file (`datasets` cannot load one)
        for index in range(count):
            shards.append(
                {
                    "split": split,
                    "file": f"data/{split}-{index:05d}-of-{count:05d}.parquet",
                    "rows": split_rows[index * examples_per_shard : (index + 1) * examples_per_shard],
                }
            )
    return shards


def _encode_example(builder, row: dict, resolution: int | None, quality: int) -> dict:
    example = builder.resolve(row)
    try:  # frame by frame: memory stays at one decoded frame
        video = [
            {"bytes": encode_jpeg(resize_frame(frame, resolution), quality), "path": None}
            for frame in iter_frames(example["video"])
        ]
    except (ValueError, OSError) as error:
        raise BadSampleError(
            f"{builder.CORPUS} sample {example['id']}", str(error), reason="samples with unreadable frames"
        ) from None
    return {
        **{key: example[key] for key in ("id", "text", "gloss", "signer", "fps")},
        "num_frames": len(video),
        "video": video,
    }


def _shard_is_complete(output: Path, file: str) -> bool:
    """The shard exists with the size its report recorded (a truncated or replaced shard is written again)."""
    report = output / STATE_DIR / (Path(file).name + ".json")
    try:
        recorded = json.loads(report.read_text(encoding="utf-8"))
        if "bytes" in recorded:
            return recorded["bytes"] == (output / file).stat().st_size
        return pq.ParquetFile(output / file).metadata.num_rows == recorded["examples"]  # written before sizes were kept
    except (OSError, ValueError, KeyError, pa.ArrowException):
        return False


def _write_shard(job: dict, progress=None) -> dict:
    """Write one shard under a temporary name, then rename it; returns its skip report."""
    builder = get_builder(job["name"], job["data_dir"], job["cache_dir"], **job["options"])
    features = prepared_features()
    schema = features.arrow_schema
    final = Path(job["output_dir"]) / job["file"]
    final.parent.mkdir(parents=True, exist_ok=True)
    skip_log = SkipLog(f"{job['name']} {job['file']}", job["options"].get("skip_bad_samples", False))
    written, buffer = 0, []
    with atomic_file(final) as temporary, pq.ParquetWriter(temporary, schema) as writer:
        for row in job["rows"]:
            if progress is not None:
                progress(1)
            try:
                buffer.append(_encode_example(builder, row, job["resolution"], job["quality"]))
            except BadSampleError as error:
                skip_log.handle(error)
                continue
            if len(buffer) == ROWS_PER_GROUP:
                writer.write_table(pa.Table.from_pylist(buffer, schema=schema))
                written, buffer = written + len(buffer), []
        if buffer:  # an empty shard gets no row group at all: `datasets` cannot read a 0-row group
            writer.write_table(pa.Table.from_pylist(buffer, schema=schema))
            written += len(buffer)
    # The shard is visible only once complete (atomic_file); its report is written after it.
    report = {
        "file": job["file"],
        "examples": written,
        "bytes": final.stat().st_size,
        "skipped": skip_log.count,
        "reasons": dict(skip_log.reasons),
        "first": skip_log.examples,
    }
    write_text_atomic(Path(job["output_dir"]) / STATE_DIR / (Path(job["file"]).name + ".json"), json.dumps(report))
    return report


def dataset_card(
    name: str, split_sizes: dict[str, int], settings: dict, split_bytes: dict[str, int] | None = None
) -> str:
    """README.md with the YAML `datasets` and the Hub read (features, splits, data files, license)."""
    builder_class = BUILDERS[name]
    features = prepared_features()
    present = [split for split in SPLITS if split_sizes.get(split)]
    metadata = {
        "license": builder_class.LICENSE,
        "language": [builder_class.LANGUAGE],
        "pretty_name": f"{builder_class.PRETTY_NAME} (prepared with flallm)",
        "task_categories": ["translation"],
        "tags": ["sign-language", "sign-language-translation", "video", "flallm"],
        "dataset_info": {
            "features": features._to_yaml_list(),
            "splits": [
                {"name": split, "num_bytes": (split_bytes or {}).get(split, 0), "num_examples": split_sizes[split]}
                for split in present
            ],
        },
        "configs": [
            {
                "config_name": "default",
                "default": True,
                "data_files": [{"split": split, "path": f"data/{split}-*"} for split in present],
            }
        ],
    }
    if builder_class.LICENSE == "other":
        metadata["license_name"] = f"{name}-license"
        metadata["license_link"] = builder_class.HOMEPAGE
    options = {k: v for k, v in settings["options"].items() if k != "skip_bad_samples"}
    resolution = settings["resolution"]
    lines = [
        "---",
        yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True).strip(),
        "---",
        "",
        f"# {builder_class.PRETTY_NAME}, prepared for sign language translation",
        "",
        builder_class.DESCRIPTION,
        "",
        *(
            [
                f"Source: {builder_class.HOMEPAGE}. Check the original license before redistributing; "
                "this folder holds re-encoded frames of the original videos.",
                "",
            ]
            if builder_class.HOMEPAGE
            else []
        ),
        "Written by `flallm prepare` (the `flallm` package). Every example is one signed sentence; "
        "`video` holds its frames as JPEG images, in order.",
        "",
        "| column | content |",
        "|---|---|",
        "| id | the corpus's own sample name |",
        "| text | the spoken-language sentence (translation target) |",
        "| gloss | the gloss sequence where the corpus has one, else empty |",
        "| signer | the signer id where the corpus gives one, else empty |",
        "| num_frames | number of frames in `video` |",
        "| fps | frames per second of the original video |",
        "| video | list of frames (JPEG) |",
        "",
        "| split | examples |",
        "|---|---|",
        *[f"| {split} | {split_sizes[split]} |" for split in SPLITS],
        "",
        *(
            ["Empty splits have no data files; `load_sign_dataset` adds them back as empty splits.", ""]
            if len(present) < len(SPLITS)
            else []
        ),
        f"Frames: {'shorter side at most ' + str(resolution) + ' px' if resolution else 'original size'}, "
        f"JPEG quality {settings['quality']}." + (f" Corpus options: `{json.dumps(options)}`." if options else ""),
        "",
        "```python",
        "from datasets import load_dataset",
        'dataset = load_dataset("path/or/repo")               # frames come back as PIL images',
        "",
        "from data_builders import load_sign_dataset, decode_video  # the flallm package",
        'dataset = load_sign_dataset("path/or/repo")           # frames stay encoded until decoded',
        'frames = decode_video(dataset["train"][0]["video"], indices=[0, 4, 8])',
        "```",
        "",
    ]
    if builder_class.CITATION:
        lines += ["## Citation", "", "```bibtex", builder_class.CITATION, "```", ""]
    return "\n".join(lines)


def prepare_dataset(
    name: str,
    output_dir: str | os.PathLike,
    data_dir: str | os.PathLike | None = None,
    resolution: int | None = None,
    jpeg_quality: int = 90,
    examples_per_shard: int = 200,
    num_proc: int = 1,
    skip_bad_samples: bool = False,
    overwrite: bool = False,
    **options,
) -> Path:
    """Prepare corpus `name` into `output_dir` (parquet shards + README.md); resumes an interrupted run.

    resolution: shorter side of the stored frames (never upscaled; 0 keeps the original size;
    default 256). For `synthetic` it is the rendered frame size instead (default: the corpus default).
    """
    if name not in BUILDERS:
        raise ValueError(f"unknown corpus {name!r}; expected one of {sorted(BUILDERS)}")
    if examples_per_shard < 1 or not 1 <= jpeg_quality <= 100:
        raise ValueError(
            f"examples_per_shard={examples_per_shard} must be >= 1 and jpeg_quality={jpeg_quality} in 1..100"
        )
    output = Path(output_dir).expanduser().resolve()
    options = dict(options, skip_bad_samples=skip_bad_samples)
    if name == "synthetic":
        if resolution:
            options["resolution"] = resolution
        resolution = None  # rendered at the requested size; nothing to resize
    elif resolution is None:
        resolution = DEFAULT_RESOLUTION
    settings = {
        "name": name,
        "data_dir": str(Path(data_dir).resolve()) if data_dir else None,
        "resolution": resolution or None,
        "quality": jpeg_quality,
        "examples_per_shard": examples_per_shard,
        "options": options,
    }
    settings = json.loads(json.dumps(settings))  # as it reads back from settings.json (tuples -> lists)

    with directory_lock(output, f"flallm prepare {name}"):
        state = output / STATE_DIR
        settings_file = state / "settings.json"
        if overwrite and output.exists():
            shutil.rmtree(output / "data", ignore_errors=True)
            shutil.rmtree(state, ignore_errors=True)
            (output / "README.md").unlink(missing_ok=True)
        if settings_file.exists():
            previous = json.loads(settings_file.read_text(encoding="utf-8"))
            if previous != settings:
                raise ValueError(
                    f"{output} holds a preparation with other settings ({previous}); "
                    "use another --output-dir or --overwrite"
                )
        elif any(p.name != STATE_DIR and not p.name.startswith(LOCK_FILE) for p in output.iterdir()):
            raise ValueError(
                f"{output} is not empty and was not written by `flallm prepare`; use another --output-dir or --overwrite"
            )
        state.mkdir(parents=True, exist_ok=True)
        (state / COMPLETE_FILE).unlink(missing_ok=True)  # until this run ends, the folder is incomplete
        write_text_atomic(settings_file, json.dumps(settings, indent=1))
        for stale in (output / "data").glob(".*.tmp") if (output / "data").exists() else ():
            stale.unlink()  # left by an interrupted run

        builder = get_builder(name, data_dir, str(state / "cache"), **options)
        shards = _shard_plan(builder.split_rows(), examples_per_shard)
        if not shards:
            raise ValueError(f"{name}: every split is empty; nothing to prepare")
        todo = [shard for shard in shards if not _shard_is_complete(output, shard["file"])]
        if len(todo) < len(shards):
            logger.info("%s: %d of %d shards already written; resuming", output, len(shards) - len(todo), len(shards))
        jobs = [
            {
                **shard,
                "name": name,
                "data_dir": str(data_dir) if data_dir else None,
                "cache_dir": str(state / "cache"),
                "options": options,
                "output_dir": str(output),
                "resolution": resolution,
                "quality": jpeg_quality,
            }
            for shard in todo
        ]
        total = sum(len(shard["rows"]) for shard in shards)
        with tqdm(
            total=total, initial=total - sum(len(job["rows"]) for job in jobs), unit="example", desc=f"prepare {name}"
        ) as bar:
            if num_proc > 1 and len(jobs) > 1:
                with ProcessPoolExecutor(num_proc) as pool:
                    for job, _ in zip(jobs, pool.map(_write_shard, jobs)):
                        bar.update(len(job["rows"]))
            else:
                for job in jobs:
                    _write_shard(job, progress=bar.update)

        sizes = {split: 0 for split in SPLITS}
        num_bytes = {split: 0 for split in SPLITS}
        skipped = 0
        for shard in shards:
            metadata = pq.ParquetFile(output / shard["file"]).metadata
            sizes[shard["split"]] += metadata.num_rows
            num_bytes[shard["split"]] += sum(
                metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups)
            )
            report = state / (Path(shard["file"]).name + ".json")
            if report.exists():
                skipped += json.loads(report.read_text(encoding="utf-8"))["skipped"]
        if skipped:
            logger.warning("%s: skipped %d bad samples in total (per-shard reports in %s)", name, skipped, state)
        write_text_atomic(output / "README.md", dataset_card(name, sizes, settings, num_bytes))
        # Last, atomically: the folder is complete (`check_prepared` reads it before loading).
        manifest = {
            "splits": sizes,
            "shards": {shard["file"]: (output / shard["file"]).stat().st_size for shard in shards},
        }
        write_text_atomic(state / COMPLETE_FILE, json.dumps(manifest, indent=1))
        logger.info("%s: wrote %s (%s)", name, output, ", ".join(f"{split} {n}" for split, n in sizes.items()))
    return output


def push_prepared(output_dir: str | os.PathLike, repo_id: str, private: bool = False, token: str | None = None) -> str:
    """Upload a prepared folder to a Hub dataset repo (huggingface_hub.upload_folder); returns the commit URL."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    commit = api.upload_folder(
        repo_id=repo_id,
        repo_type="dataset",
        folder_path=str(output_dir),
        ignore_patterns=[f"{STATE_DIR}/**", "**/.*.tmp", ".*.tmp", f"{LOCK_FILE}*"],
        commit_message="Upload dataset prepared with flallm",
    )
    return str(commit)


def _option(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--option {text!r}: expected KEY=VALUE")
    return key.strip(), yaml.safe_load(value)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", choices=sorted(BUILDERS), help="corpus to prepare")
    parser.add_argument("--data-dir", help="folder of the raw release (not needed for synthetic)")
    parser.add_argument("--output-dir", required=True, help="where to write data/*.parquet and README.md")
    parser.add_argument(
        "--resolution",
        type=int,
        default=None,
        help=f"shorter side of stored frames, never upscaled; 0 keeps the original (default {DEFAULT_RESOLUTION}). "
        "For synthetic: the rendered frame size (default: the corpus default)",
    )
    parser.add_argument("--jpeg-quality", type=int, default=90, help="JPEG quality of stored frames (default 90)")
    parser.add_argument("--examples-per-shard", type=int, default=200, help="examples per parquet shard (default 200)")
    parser.add_argument("--num-proc", type=int, default=1, help="shards written in parallel (default 1)")
    parser.add_argument(
        "--skip-bad-samples", action="store_true", help="skip unusable samples with a logged count instead of stopping"
    )
    parser.add_argument(
        "--option",
        type=_option,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="corpus option, repeatable, e.g. --option num_train=2000 --option fps=10 (synthetic)",
    )
    parser.add_argument("--overwrite", action="store_true", help="delete an earlier preparation in --output-dir first")
    parser.add_argument("--push-to-hub", metavar="REPO_ID", help="upload the result to this Hub dataset repo")
    parser.add_argument("--private", action="store_true", help="create the Hub repo as private")


def run(args: argparse.Namespace) -> int:
    output = prepare_dataset(
        args.name,
        args.output_dir,
        data_dir=args.data_dir,
        resolution=args.resolution,
        jpeg_quality=args.jpeg_quality,
        examples_per_shard=args.examples_per_shard,
        num_proc=args.num_proc,
        skip_bad_samples=args.skip_bad_samples,
        overwrite=args.overwrite,
        **dict(args.option),
    )
    if args.push_to_hub:
        url = push_prepared(output, args.push_to_hub, private=args.private)
        logger.info("pushed %s to %s", output, url)
    return 0
