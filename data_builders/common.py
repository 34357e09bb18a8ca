"""What every corpus builder shares: the schema, split names, bad-input handling, the base builder.

Every corpus comes out with the same columns, whatever its raw layout, so training code never
branches on the corpus. The raw builders do not copy frames: `video` is a *reference* (a frame
folder, a video file, or a synthetic render spec) that `decode_video` resolves, so building a
raw dataset only reads annotations and lists folders.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
from datasets.builder import Key

STATE_DIR = ".prepare"  # in a `flallm prepare` folder: settings and per-shard reports; not uploaded
COMPLETE_FILE = "complete.json"  # in STATE_DIR, written last: {"splits": sizes, "shards": {file: bytes}}
LOCK_FILE = ".flallm.lock"  # held (flock) by the run writing into a folder; its holder is in LOCK_FILE + ".owner"


class DirectoryInUseError(RuntimeError):
    """Another run is writing into the folder (its lock is held)."""


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries (a rename into it) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, temporary: str | os.PathLike | None = None):
    """Yields a temporary path beside `path` to write. When the block ends, the file is flushed to disk and renamed
    onto `path`, so that readers see the old content or the new, never a part; if the block fails it is removed.
    `temporary` names it where its name matters (a suffix a writer reads, a per-process name)."""
    path = Path(path)
    temporary = Path(temporary) if temporary is not None else path.with_name(f".{path.name}.tmp")
    try:
        yield temporary
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write a small text file atomically (`atomic_file`)."""
    with atomic_file(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


@contextlib.contextmanager
def directory_lock(directory: str | os.PathLike, command: str):
    """Hold `directory`'s lock while one run writes into it: a second run into the same folder stops at once with an
    error naming the holder. The lock is an OS file lock, released when its process ends, however it ends: a killed
    run leaves no stale lock behind."""
    import socket
    import time

    from filelock import FileLock, Timeout

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    lock, owner = FileLock(directory / LOCK_FILE), directory / f"{LOCK_FILE}.owner"
    try:
        lock.acquire(timeout=0)
    except Timeout:
        try:
            holder = owner.read_text(encoding="utf-8").strip()
        except OSError:
            holder = "another process"
        raise DirectoryInUseError(
            f"{directory} is in use by {holder}: two runs writing into one folder would overwrite "
            "each other's files. Wait for that run to end, or choose another output directory."
        ) from None
    try:
        owner.write_text(
            f"`{command}` (pid {os.getpid()} on {socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S')})\n",
            encoding="utf-8",
        )
        yield directory
    finally:
        owner.unlink(missing_ok=True)
        lock.release()


logger = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")

# A raw `video`: exactly one of the three ways of finding the frames is filled in.
#   path + frames    -> a folder of image files, `frames` = file names in playing order
#   path (a file)    -> a video file, decoded with PyAV
#   synthetic        -> a JSON render spec of the synthetic corpus, rendered on demand
VIDEO_REFERENCE = {
    "path": datasets.Value("string"),
    "frames": datasets.List(datasets.Value("string")),
    "synthetic": datasets.Value("string"),
}


def text_features() -> dict:
    """The columns every corpus shares besides `video`."""
    return {
        "id": datasets.Value("string"),
        "text": datasets.Value("string"),
        "gloss": datasets.Value("string"),
        "signer": datasets.Value("string"),
        "num_frames": datasets.Value("int32"),
        "fps": datasets.Value("float32"),
    }


def raw_features() -> datasets.Features:
    """Schema of a dataset read straight from a release (video = a reference, see VIDEO_REFERENCE)."""
    return datasets.Features({**text_features(), "video": VIDEO_REFERENCE})


def prepared_features(decode: bool = True) -> datasets.Features:
    """Schema of a prepared dataset: one JPEG per frame, so a reader decodes only the frames it keeps."""
    return datasets.Features({**text_features(), "video": datasets.List(datasets.Image(decode=decode))})


COLUMNS = tuple(raw_features())


def video_reference(path: str | os.PathLike = "", frames: Iterable[str] = (), synthetic: str = "") -> dict:
    return {"path": str(path), "frames": list(frames), "synthetic": synthetic}


class BadSampleError(ValueError):
    """One sample (or annotation row) is unusable; `skip_bad_samples=True` turns it into a logged skip."""

    def __init__(self, sample: str, message: str, reason: str = "bad sample"):
        super().__init__(f"{sample}: {message}")
        self.sample = sample
        self.reason = reason


class SkipLog:
    """Counts what `skip_bad_samples` dropped, so a skip is never silent."""

    def __init__(self, what: str, skip: bool):
        self.what = what
        self.skip = skip
        self.reasons: Counter[str] = Counter()
        self.examples: dict[str, str] = {}

    def handle(self, error: BadSampleError) -> None:
        """Re-raise `error`, or record it when skipping."""
        if not self.skip:
            raise error
        self.reasons[error.reason] += 1
        self.examples.setdefault(error.reason, str(error))

    @property
    def count(self) -> int:
        return sum(self.reasons.values())

    def log_summary(self) -> None:
        if not self.count:
            return
        details = "; ".join(f"{n} {reason} (first: {self.examples[reason]})" for reason, n in self.reasons.items())
        logger.warning("%s: skipped %d: %s", self.what, self.count, details)


# ---------------------------------------------------------------------------------------------
# Reading annotation files


def read_lines(path: Path, skip_log: SkipLog) -> Iterator[tuple[int, str]]:
    """(1-based line number, text) of a UTF-8 file; a line that is not UTF-8 is an error naming it."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: annotation file not found") from None
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    for number, raw in enumerate(data.split(b"\n"), start=1):
        raw = raw.rstrip(b"\r")
        if not raw.strip():
            continue
        try:
            yield number, raw.decode("utf-8")
        except UnicodeDecodeError as error:
            skip_log.handle(
                BadSampleError(
                    f"{path}:{number}",
                    f"text is not valid UTF-8 ({error.reason} at byte {error.start}); expected a UTF-8 encoded file",
                    reason="lines not UTF-8",
                )
            )


def _unquote(field: str) -> str:
    if len(field) >= 2 and field[0] == field[-1] == '"':
        return field[1:-1].replace('""', '"')
    return field


def read_table(path: Path, separator: str, required: Iterable[str], skip_log: SkipLog) -> list[dict[str, Any]]:
    """Rows of a separator-delimited file with a header line, as dicts (plus `_line`).

    Fields are split on the separator only (the releases never quote it inside a field); a field
    wrapped in double quotes is unquoted. A row with the wrong number of fields is an error that
    names the file and line.
    """
    lines = read_lines(path, skip_log)
    try:
        _, header_line = next(lines)
    except StopIteration:
        raise ValueError(f"{path}: file is empty; expected a header line") from None
    header = [name.strip() for name in header_line.split(separator)]
    missing = [name for name in required if name not in header]
    if missing:
        raise ValueError(
            f"{path}: header {header_line!r} lacks column(s) {missing}; expected {separator!r}-separated columns "
            f"including {list(required)}"
        )
    rows = []
    for number, line in lines:
        fields = line.split(separator)
        if len(fields) != len(header):
            skip_log.handle(
                BadSampleError(
                    f"{path}:{number}",
                    f"row has {len(fields)} {separator!r}-separated fields, expected {len(header)} ({separator.join(header)})",
                    reason="rows with a wrong number of fields",
                )
            )
            continue
        row = {name: _unquote(value.strip()) for name, value in zip(header, fields)}
        row["_line"] = f"{path}:{number}"
        rows.append(row)
    return rows


def find_root(data_dir: str | os.PathLike | None, corpus: str, marker: str, inner: Iterable[str] = ()) -> Path:
    """The release root holding `marker`, given the root, a folder around it, or a folder inside it.

    Users unpack releases differently (with or without the outer archive folder) or point at the
    annotations folder; all of those should work.
    """
    if data_dir is None:
        raise ValueError(f"{corpus}: data_dir is required (the folder of the release, which holds {marker})")
    base = Path(data_dir).expanduser().resolve()
    if not base.exists():
        raise FileNotFoundError(
            f"{corpus}: data_dir {base} does not exist; expected the release folder holding {marker}"
        )
    if not base.is_dir():
        raise NotADirectoryError(
            f"{corpus}: data_dir {base} is not a folder; expected the release folder holding {marker}"
        )
    candidates = [base, *(base / sub for sub in inner), *base.parents[:3]]
    for candidate in candidates:
        if (candidate / marker).is_file():
            return candidate
    if not any(base.iterdir()):
        raise FileNotFoundError(f"{corpus}: data_dir {base} is empty; expected the release folder holding {marker}")
    raise FileNotFoundError(
        f"{corpus}: no {marker} in {base} (also looked in {[str(c) for c in candidates[1:]]}); "
        "expected the official release layout (see README)"
    )


def list_frames(folder: Path, extensions: tuple[str, ...], sample: str) -> list[str]:
    """Frame file names in `folder` in playing order (`modeling_flallm.video_io.frame_names`, as the pipeline reads
    a folder); missing, unreadable or empty folders are bad samples."""
    from modeling_flallm.video_io import frame_names

    try:
        names = frame_names(folder, extensions)
    except FileNotFoundError:
        raise BadSampleError(sample, f"frame folder {folder} does not exist", reason="samples without frames") from None
    except NotADirectoryError:
        raise BadSampleError(sample, f"{folder} is not a folder of frames", reason="samples without frames") from None
    except OSError as error:  # a symlink loop, no permission, an I/O error
        raise BadSampleError(
            sample, f"frame folder {folder} cannot be read ({error.strerror})", reason="unreadable frame folders"
        ) from None
    if not names:
        raise BadSampleError(
            sample, f"frame folder {folder} holds no {'/'.join(extensions)} files", reason="samples without frames"
        )
    return names


def check_sample_name(name: str, sample: str) -> None:
    """A sample name becomes a path component of the release: refuse one that would leave its folder (`../x`)."""
    if "/" in name or "\\" in name or name in (".", ".."):
        raise BadSampleError(
            sample,
            f"sample name {name!r} is not a plain file name (it would point outside the release's frame folder)",
            reason="rows with an unsafe name",
        )


# ---------------------------------------------------------------------------------------------
# The base builder


def _source_hash() -> str:
    """Changes whenever this package's builder code changes, so stale caches are not reused."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@dataclass
class SignCorpusConfig(datasets.BuilderConfig):
    """Options shared by the release readers.

    skip_bad_samples: drop unusable samples/rows with a logged count instead of raising.
    """

    skip_bad_samples: bool = False


class SignCorpusBuilder(datasets.GeneratorBasedBuilder):
    """A release reader: `split_rows()` parses annotations, `resolve(row)` finds one sample's frames.

    Keeping the two apart lets `prepare` shard and resume on cheap annotation rows, and keeps
    frame-folder listing lazy in streaming mode.
    """

    BUILDER_CONFIG_CLASS = SignCorpusConfig
    BUILDER_CONFIGS = [SignCorpusConfig(name="default", version=datasets.Version("1.0.0"))]
    DEFAULT_CONFIG_NAME = "default"

    # Facts about the corpus: the one place the dataset card (`prepare`), the model card and evaluation read them.
    CORPUS = ""  # the name `load_sign_dataset` knows it by
    PRETTY_NAME = ""
    DESCRIPTION = ""
    HOMEPAGE = ""
    LICENSE = ""  # Hub licence id: the corpus' terms, which trained weights inherit by default
    CITATION = ""
    LANGUAGE = ""  # spoken target language, ISO 639-1
    SPOKEN_LANGUAGE = ""  # its name
    SIGN_LANGUAGE = ""
    SIGN_LANGUAGE_CODE: str | None = None  # ISO 639-3, for Hub metadata
    DOMAIN = ""  # what the sentences are about
    LIMITATIONS = ""  # the caveat a model card trained on it carries

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("hash", _source_hash())
        kwargs.setdefault("dataset_name", self.CORPUS)
        super().__init__(*args, **kwargs)

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description=self.DESCRIPTION,
            features=raw_features(),
            homepage=self.HOMEPAGE,
            license=self.LICENSE,
            citation=self.CITATION,
        )

    # -- to implement per corpus -------------------------------------------------------------
    def split_rows(self) -> dict[str, list[dict]]:
        """Annotation rows per split (train/validation/test); raises on unreadable annotations."""
        raise NotImplementedError

    def resolve(self, row: dict) -> dict:
        """One example in the shared schema; raises BadSampleError when its frames are unusable."""
        raise NotImplementedError

    # -- datasets plumbing ---------------------------------------------------------------------
    def _split_generators(self, dl_manager):
        return [
            datasets.SplitGenerator(name=split, gen_kwargs={"rows": rows, "split": split})
            for split, rows in self.split_rows().items()
        ]

    def _generate_examples(self, rows: list[dict], split: str):
        skip_log = SkipLog(f"{self.CORPUS} {split}", self.config.skip_bad_samples)
        for index, row in enumerate(rows):
            try:
                example = self.resolve(row)
            except BadSampleError as error:
                skip_log.handle(error)
                continue
            yield Key(0, index), example
        skip_log.log_summary()
