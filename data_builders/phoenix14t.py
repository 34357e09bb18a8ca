"""RWTH-PHOENIX-Weather-2014T (German sign language -> German) from the official release.

Layout (the release root or the folder inside it are both accepted as data_dir):
    PHOENIX-2014-T-release-v3/PHOENIX-2014-T/
      annotations/manual/PHOENIX-2014-T.{train,dev,test}.corpus.csv   ('|'-separated, UTF-8)
      features/fullFrame-210x260px/{train,dev,test}/<name>/images0001.png ...
"""

from __future__ import annotations

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

SPLIT_FILES = {"train": "train", "validation": "dev", "test": "test"}
COLUMNS = ("name", "video", "start", "end", "speaker", "orth", "translation")


class Phoenix14TBuilder(SignCorpusBuilder):
    CORPUS = "phoenix14t"
    DESCRIPTION = (
        "RWTH-PHOENIX-Weather-2014T: German sign language weather forecasts with German translations and glosses."
    )
    HOMEPAGE = "https://www-i6.informatik.rwth-aachen.de/~koller/RWTH-PHOENIX-2014-T/"
    LICENSE = "cc-by-nc-sa-3.0"
    LANGUAGE = "de"
    PRETTY_NAME = "RWTH-PHOENIX-Weather-2014T"
    SPOKEN_LANGUAGE = "German"
    SIGN_LANGUAGE = "German Sign Language (DGS)"
    SIGN_LANGUAGE_CODE = "gsg"
    DOMAIN = "TV weather forecasts"
    LIMITATIONS = (
        "PHOENIX-2014T covers only weather forecasts by 9 signers filmed in one TV studio; "
        "it will not translate other topics, and the licence (CC BY-NC-SA 3.0) forbids commercial use."
    )
    FPS = 25.0
    CITATION = """@inproceedings{camgoz2018neural,
  title = {Neural Sign Language Translation},
  author = {Camgoz, Necati Cihan and Hadfield, Simon and Koller, Oscar and Ney, Hermann and Bowden, Richard},
  booktitle = {IEEE Conference on Computer Vision and Pattern Recognition (CVPR)},
  year = {2018}
}"""

    @property
    def root(self) -> Path:
        return find_root(
            self.config.data_dir,
            self.CORPUS,
            "annotations/manual/PHOENIX-2014-T.train.corpus.csv",
            inner=("PHOENIX-2014-T", "PHOENIX-2014-T-release-v3/PHOENIX-2014-T"),
        )

    def split_rows(self) -> dict[str, list[dict]]:
        root = self.root
        rows = {}
        for split, name in SPLIT_FILES.items():
            path = root / "annotations" / "manual" / f"PHOENIX-2014-T.{name}.corpus.csv"
            frames_dir = root / "features" / "fullFrame-210x260px" / name
            if not frames_dir.is_dir():
                raise FileNotFoundError(
                    f"phoenix14t: frame folder {frames_dir} not found; expected features/fullFrame-210x260px/{name}/<name>/*.png"
                )
            skip_log = SkipLog(f"phoenix14t {path.name}", self.config.skip_bad_samples)
            table = read_table(path, "|", COLUMNS, skip_log)
            seen: set[str] = set()
            rows[split] = []
            for row in table:
                try:
                    check_sample_name(row["name"], row["_line"])
                except BadSampleError as error:
                    skip_log.handle(error)
                    continue
                if not row["name"] or row["name"] in seen:
                    skip_log.handle(
                        BadSampleError(
                            row["_line"],
                            f"sample name {row['name']!r} is empty or repeated; expected unique names",
                            reason="rows with a repeated name",
                        )
                    )
                    continue
                seen.add(row["name"])
                rows[split].append({**row, "_frames_dir": str(frames_dir / row["name"])})
            skip_log.log_summary()
        return rows

    def resolve(self, row: dict) -> dict:
        folder = Path(row["_frames_dir"])
        frames = list_frames(folder, (".png",), f"phoenix14t sample {row['name']} ({row['_line']})")
        return {
            "id": row["name"],
            "text": row["translation"],
            "gloss": row["orth"],
            "signer": row["speaker"],
            "num_frames": len(frames),
            "fps": self.FPS,
            "video": video_reference(folder, frames),
        }
