"""`load_sign_dataset`: one entry point for every corpus, raw or prepared."""

from __future__ import annotations

import json
import os
from pathlib import Path

import datasets
import pyarrow.parquet as pq
from datasets.utils.file_utils import xopen

from .common import COLUMNS, COMPLETE_FILE, SPLITS, STATE_DIR, SignCorpusBuilder, prepared_features
from .csl_daily import CslDailyBuilder
from .how2sign import How2SignBuilder
from .phoenix14t import Phoenix14TBuilder
from .synthetic import SyntheticSignBuilder

BUILDERS: dict[str, type[SignCorpusBuilder]] = {
    "phoenix14t": Phoenix14TBuilder,
    "csl_daily": CslDailyBuilder,
    "how2sign": How2SignBuilder,
    "synthetic": SyntheticSignBuilder,
}


def get_builder(
    name: str, data_dir: str | os.PathLike | None = None, cache_dir: str | None = None, **options
) -> SignCorpusBuilder:
    """The `datasets` builder of a corpus, configured with `options` (e.g. skip_bad_samples, or the synthetic options)."""
    if name not in BUILDERS:
        raise ValueError(f"unknown corpus {name!r}; expected one of {sorted(BUILDERS)} or a prepared dataset folder")
    builder_class = BUILDERS[name]
    known = set(builder_class.BUILDER_CONFIG_CLASS.__dataclass_fields__) - {
        "name",
        "version",
        "data_dir",
        "data_files",
        "description",
    }
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"{name}: unknown option(s) {unknown}; expected some of {sorted(known)}")
    if data_dir is not None:  # absolute: the cache is keyed by this string
        options["data_dir"] = str(Path(data_dir).expanduser().resolve())
    return builder_class(cache_dir=cache_dir, **options)


def _unwrap(error: datasets.exceptions.DatasetGenerationError) -> BaseException:
    """datasets wraps errors raised while generating; surface ours, which name the file and sample."""
    cause = error.__cause__
    return cause if isinstance(cause, (ValueError, OSError)) else error


def check_prepared(folder: str | os.PathLike) -> None:
    """Refuse a local `flallm prepare` folder that is not complete: an interrupted run (whole splits may be missing),
    or a shard deleted or truncated since. Folders without our state (e.g. downloaded from the Hub) are left to
    `datasets`, which checks the card's split sizes."""
    folder = Path(folder)
    state = folder / STATE_DIR
    if not state.is_dir():
        return
    resume = "run the same `flallm prepare` command again to finish it (it resumes)"
    try:
        manifest = json.loads((state / COMPLETE_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(
            f"{folder} is an incomplete `flallm prepare` output (the run was interrupted, or is still "
            f"writing): {resume}"
        ) from None
    except ValueError:
        raise ValueError(f"{folder}: {STATE_DIR}/{COMPLETE_FILE} is corrupt: {resume}") from None
    for file, size in manifest["shards"].items():
        path = folder / file
        if not path.is_file():
            raise ValueError(f"{folder}: shard {file} is missing (deleted since `flallm prepare` wrote it): {resume}")
        if path.stat().st_size != size:
            raise ValueError(
                f"{folder}: shard {file} has {path.stat().st_size} bytes, {size} when written (truncated or "
                f"changed): {resume}"
            )


def _load_prepared(path: str, streaming: bool, cache_dir: str | None):
    """A dataset written by `flallm prepare` (local folder or Hub repo), with frames left encoded.

    The features are given at load time rather than cast afterwards: casting a List(Image())
    column rewrites the whole dataset, while this only changes how `video` is decoded (not at
    all: decode_video then decodes just the frames the sampling keeps).
    """
    if Path(path).is_dir():
        check_prepared(path)
    columns = _columns_of(datasets.load_dataset_builder(path, cache_dir=cache_dir))
    missing = [column for column in COLUMNS if column not in columns]
    if missing:
        raise ValueError(
            f"{path}: lacks column(s) {missing}; expected a dataset written by `flallm prepare` "
            f"with columns {list(COLUMNS)}"
        )
    features = prepared_features(decode=False)
    try:
        dataset = datasets.load_dataset(path, streaming=streaming, cache_dir=cache_dir, features=features)
    except (ValueError, TypeError, KeyError, datasets.exceptions.DatasetGenerationError) as error:
        cause = error.__cause__ or error
        raise ValueError(
            f"{path}: cannot read it as a dataset written by `flallm prepare` ({type(cause).__name__}: {cause})"
        ) from None
    for split in SPLITS:
        if split not in dataset:  # `prepare` writes no file for an empty split
            dataset[split] = _empty(features, streaming)
    return type(dataset)({split: dataset[split] for split in SPLITS})


def _columns_of(builder) -> list[str]:
    """Column names from the dataset card, or else from the first data file's parquet schema."""
    if builder.info.features is not None:
        return list(builder.info.features)
    files = [file for split_files in (builder.config.data_files or {}).values() for file in split_files]
    if not files:
        return []
    with xopen(files[0], "rb") as handle:
        return pq.read_schema(handle).names


def _empty(features: datasets.Features, streaming: bool = False):
    """A split without examples but with the schema (datasets cannot read back an empty split)."""
    empty = datasets.Dataset.from_dict({column: [] for column in features}, features=features)
    return empty.to_iterable_dataset() if streaming else empty


def load_sign_dataset(
    name: str = "synthetic",
    data_dir: str | os.PathLike | None = None,
    streaming: bool = False,
    cache_dir: str | None = None,
    num_proc: int | None = None,
    rebuild: bool = False,
    **options,
) -> datasets.DatasetDict | datasets.IterableDatasetDict:
    """train / validation / test splits of a corpus, all with columns id, text, gloss, signer, num_frames, fps, video.

    name: phoenix14t, csl_daily, how2sign, synthetic, or the folder (or Hub id) of a prepared dataset.
    data_dir: the raw release (not needed for synthetic or prepared datasets).
    options: corpus options, e.g. skip_bad_samples=True, or seed/num_train/resolution/... for synthetic.
    rebuild: rebuild a raw corpus's cached dataset (after the release on disk changed).
    Decode a `video` value with `decode_video(example["video"], indices)`.
    """
    if name not in BUILDERS:
        if options:
            raise ValueError(f"{name}: options {sorted(options)} apply to raw corpora, not to a prepared dataset")
        if Path(name).is_dir() or ("/" in name and not Path(name).exists() and not name.startswith((".", "/"))):
            return _load_prepared(name, streaming, cache_dir)
        raise ValueError(
            f"unknown corpus {name!r}; expected one of {sorted(BUILDERS)} or the folder of a prepared dataset"
        )
    builder = get_builder(name, data_dir, cache_dir, **options)
    try:
        if streaming:
            return datasets.IterableDatasetDict(builder.as_streaming_dataset())
        if rebuild:  # the old split sizes (read from the cache) must not be checked against the new ones
            builder.download_and_prepare(
                num_proc=num_proc,
                download_mode=datasets.DownloadMode.FORCE_REDOWNLOAD,
                verification_mode=datasets.VerificationMode.NO_CHECKS,
            )
        else:
            builder.download_and_prepare(num_proc=num_proc)
    except datasets.exceptions.DatasetGenerationError as error:
        raise _unwrap(error) from None
    splits = {}
    for split in SPLITS:
        if builder.info.splits[split].num_examples:
            splits[split] = builder.as_dataset(split=split)
        else:
            splits[split] = _empty(builder.info.features)
    return datasets.DatasetDict(splits)
