"""How2Sign (American sign language -> English) from the official release.

Layout (data_dir = the folder holding the CSVs):
    How2Sign/
      how2sign_realigned_{train,val,test}.csv        tab-separated, UTF-8
      {train,val,test}_rgb_front_clips/raw_videos/<SENTENCE_NAME>.mp4

The clips are already cut per sentence. Frame count and frame rate are read from each mp4
container (PyAV), because they vary between about 24 and 30 fps.
"""

from __future__ import annotations

from pathlib import Path

from modeling_flallm.video_io import probe_video

from .common import (
    BadSampleError,
    SignCorpusBuilder,
    SkipLog,
    check_sample_name,
    find_root,
    read_table,
    video_reference,
)

SPLIT_NAMES = {"train": "train", "validation": "val", "test": "test"}
COLUMNS = ("VIDEO_ID", "VIDEO_NAME", "SENTENCE_ID", "SENTENCE_NAME", "START_REALIGNED", "END_REALIGNED", "SENTENCE")


class How2SignBuilder(SignCorpusBuilder):
    CORPUS = "how2sign"
    DESCRIPTION = "How2Sign: American sign language instructional videos with English sentences (realigned)."
    HOMEPAGE = "https://how2sign.github.io/"
    LICENSE = "cc-by-nc-4.0"
    LANGUAGE = "en"
    PRETTY_NAME = "How2Sign"
    SPOKEN_LANGUAGE = "English"
    SIGN_LANGUAGE = "American Sign Language (ASL)"
    SIGN_LANGUAGE_CODE = "ase"
    DOMAIN = "instructional videos"
    LIMITATIONS = (
        "How2Sign has a large open vocabulary and few examples per word; translations "
        "are often only topically related to the signing (BLEU-4 around 10 in the literature)."
    )
    CITATION = """@inproceedings{duarte2021how2sign,
  title = {How2Sign: A Large-scale Multimodal Dataset for Continuous American Sign Language},
  author = {Duarte, Amanda and Palaskar, Shruti and Ventura, Lucas and Ghadiyaram, Deepti and DeHaan, Kenneth and Metze, Florian and Torres, Jordi and Giro-i-Nieto, Xavier},
  booktitle = {IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  year = {2021}
}"""

    @property
    def root(self) -> Path:
        return find_root(self.config.data_dir, self.CORPUS, "how2sign_realigned_train.csv", inner=("How2Sign",))

    def split_rows(self) -> dict[str, list[dict]]:
        root = self.root
        rows = {}
        for split, name in SPLIT_NAMES.items():
            path = root / f"how2sign_realigned_{name}.csv"
            clips = root / f"{name}_rgb_front_clips" / "raw_videos"
            if not clips.is_dir():
                raise FileNotFoundError(
                    f"how2sign: clip folder {clips} not found; expected {name}_rgb_front_clips/raw_videos/<SENTENCE_NAME>.mp4"
                )
            skip_log = SkipLog(f"how2sign {path.name}", self.config.skip_bad_samples)
            seen: set[str] = set()
            rows[split] = []
            for row in read_table(path, "\t", COLUMNS, skip_log):
                try:
                    check_sample_name(row["SENTENCE_NAME"], row["_line"])
                except BadSampleError as error:
                    skip_log.handle(error)
                    continue
                if not row["SENTENCE_NAME"] or row["SENTENCE_NAME"] in seen:
                    skip_log.handle(
                        BadSampleError(
                            row["_line"],
                            f"SENTENCE_NAME {row['SENTENCE_NAME']!r} is empty or repeated",
                            reason="rows with a repeated name",
                        )
                    )
                    continue
                seen.add(row["SENTENCE_NAME"])
                rows[split].append({**row, "_video": str(clips / f"{row['SENTENCE_NAME']}.mp4")})
            skip_log.log_summary()
        return rows

    def resolve(self, row: dict) -> dict:
        path = Path(row["_video"])
        sample = f"how2sign sample {row['SENTENCE_NAME']} ({row['_line']})"
        if not path.is_file():
            raise BadSampleError(sample, f"video {path} does not exist", reason="samples without a video")
        try:
            num_frames, fps, _ = probe_video(path)
        except (ValueError, OSError) as error:
            raise BadSampleError(sample, str(error), reason="unreadable videos") from None
        if num_frames < 1:
            raise BadSampleError(sample, f"video {path} has no frames", reason="unreadable videos")
        return {
            "id": row["SENTENCE_NAME"],
            "text": row["SENTENCE"],
            "gloss": "",
            "signer": "",
            "num_frames": num_frames,
            "fps": fps,
            "video": video_reference(path),
        }
