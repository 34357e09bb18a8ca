"""CSL-Daily (Chinese sign language -> Chinese) from the official release.

Layout (the release root or its sentence_label folder are both accepted as data_dir):
    CSL-Daily/
      sentence_label/csl2020ct_v2.pkl        labels (a pickle of plain dicts and lists)
      sentence_label/split_1.txt             'name|split' with split train/dev/test
      sentence/frames_512x512/<name>/000000.jpg ...

A pickle runs code when loaded, so the label file is read with a restricted unpickler that
builds only plain builtin values and refuses anything else.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

from .common import (
    BadSampleError,
    SignCorpusBuilder,
    SkipLog,
    check_sample_name,
    find_root,
    list_frames,
    read_table,
    video_reference,
)

SPLIT_NAMES = {"train": "train", "dev": "validation", "test": "test"}
_SAFE_GLOBALS = (
    {
        ("builtins", name)
        for name in (
            "dict",
            "list",
            "tuple",
            "set",
            "frozenset",
            "str",
            "bytes",
            "bytearray",
            "int",
            "float",
            "complex",
            "bool",
        )
    }
    | {
        ("__builtin__", name)
        for name in ("dict", "list", "tuple", "set", "frozenset", "unicode", "str", "int", "long", "float", "bool")
    }
    | {
        ("_codecs", "encode")  # how protocol-2 pickles write bytes
    }
)


class _PlainUnpickler(pickle.Unpickler):
    def __init__(self, file, path: Path):
        super().__init__(file)
        self.path = path

    def find_class(self, module: str, name: str):
        if (module, name) in _SAFE_GLOBALS:
            return super().find_class(module, name)
        raise ValueError(
            f"{self.path}: refusing to load {module}.{name} from the pickle; only plain builtin types "
            "(dict, list, str, int, float, ...) are allowed, because unpickling other objects can run code"
        )

    def persistent_load(self, pid):
        raise ValueError(f"{self.path}: the pickle uses persistent ids; expected plain builtin values only")


def load_plain_pickle(path: str | Path):
    """Unpickle a file holding only builtin values (dicts, lists, strings, numbers)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: label file not found") from None
    try:
        return _PlainUnpickler(io.BytesIO(data), path).load()
    except ValueError:
        raise
    except Exception as error:  # truncated or not a pickle at all
        raise ValueError(
            f"{path}: could not read the pickle ({type(error).__name__}: {error}); expected csl2020ct_v2.pkl"
        ) from None


class CslDailyBuilder(SignCorpusBuilder):
    CORPUS = "csl_daily"
    DESCRIPTION = "CSL-Daily: Chinese sign language sentences about daily life, with Chinese translations and glosses."
    HOMEPAGE = "https://ustc-slr.github.io/datasets/2021_csl_daily/"
    LICENSE = "other"
    LANGUAGE = "zh"
    PRETTY_NAME = "CSL-Daily"
    SPOKEN_LANGUAGE = "Chinese"
    SIGN_LANGUAGE = "Chinese Sign Language (CSL)"
    SIGN_LANGUAGE_CODE = "csl"
    DOMAIN = "daily-life conversation"
    LIMITATIONS = (
        "CSL-Daily is released for non-commercial research only, by 10 signers in a lab "
        "setting; scores are character-level BLEU."
    )
    FPS = 30.0
    CITATION = """@inproceedings{zhou2021improving,
  title = {Improving Sign Language Translation with Monolingual Data by Sign Back-Translation},
  author = {Zhou, Hao and Zhou, Wengang and Qi, Weizhen and Pu, Junfu and Li, Houqiang},
  booktitle = {IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  year = {2021}
}"""

    @property
    def root(self) -> Path:
        return find_root(self.config.data_dir, self.CORPUS, "sentence_label/csl2020ct_v2.pkl", inner=("CSL-Daily",))

    def _labels(self, path: Path, skip_log: SkipLog) -> dict[str, dict]:
        labels = load_plain_pickle(path)
        if not isinstance(labels, dict) or not isinstance(labels.get("info"), list):
            raise ValueError(
                f"{path}: expected a dict with an 'info' list of samples, got {type(labels).__name__}"
                + (f" with keys {sorted(labels)[:8]}" if isinstance(labels, dict) else "")
            )
        by_name = {}
        for index, info in enumerate(labels["info"]):
            where = f"{path} info[{index}]"
            if (
                not isinstance(info, dict)
                or not isinstance(info.get("name"), str)
                or not isinstance(info.get("label_char"), list)
            ):
                skip_log.handle(
                    BadSampleError(
                        where,
                        "expected a dict with 'name' (str) and 'label_char' (list)",
                        reason="malformed label entries",
                    )
                )
                continue
            by_name[info["name"]] = info
        return by_name

    def split_rows(self) -> dict[str, list[dict]]:
        root = self.root
        label_dir = root / "sentence_label"
        frames_root = root / "sentence" / "frames_512x512"
        if not frames_root.is_dir():
            raise FileNotFoundError(
                f"csl_daily: frame folder {frames_root} not found; expected sentence/frames_512x512/<name>/*.jpg"
            )
        skip_log = SkipLog("csl_daily labels", self.config.skip_bad_samples)
        labels = self._labels(label_dir / "csl2020ct_v2.pkl", skip_log)
        split_path = label_dir / "split_1.txt"
        rows: dict[str, list[dict]] = {split: [] for split in SPLIT_NAMES.values()}
        seen: set[str] = set()
        for row in read_table(split_path, "|", ("name", "split"), skip_log):
            name, split = row["name"], SPLIT_NAMES.get(row["split"])
            if split is None:
                skip_log.handle(
                    BadSampleError(
                        row["_line"],
                        f"split {row['split']!r} is not one of train/dev/test",
                        reason="rows with an unknown split",
                    )
                )
                continue
            try:
                check_sample_name(name, row["_line"])
            except BadSampleError as error:
                skip_log.handle(error)
                continue
            if name not in labels:
                skip_log.handle(
                    BadSampleError(
                        row["_line"],
                        f"sample {name!r} has no entry in csl2020ct_v2.pkl",
                        reason="samples without labels",
                    )
                )
                continue
            if name in seen:
                skip_log.handle(
                    BadSampleError(row["_line"], f"sample {name!r} is listed twice", reason="rows with a repeated name")
                )
                continue
            seen.add(name)
            info = labels[name]
            rows[split].append(
                {
                    "name": name,
                    "text": "".join(map(str, info["label_char"])),
                    "gloss": " ".join(map(str, info.get("label_gloss") or [])),
                    "_frames_dir": str(frames_root / name),
                    "_line": row["_line"],
                }
            )
        skip_log.log_summary()
        return rows

    def resolve(self, row: dict) -> dict:
        folder = Path(row["_frames_dir"])
        frames = list_frames(folder, (".jpg", ".jpeg"), f"csl_daily sample {row['name']} ({row['_line']})")
        # names look like S000000_P0000_T00: P is the signer (participant)
        parts = row["name"].split("_")
        return {
            "id": row["name"],
            "text": row["text"],
            "gloss": row["gloss"],
            "signer": parts[1] if len(parts) == 3 and parts[1].startswith("P") else "",
            "num_frames": len(frames),
            "fps": self.FPS,
            "video": video_reference(folder, frames),
        }
