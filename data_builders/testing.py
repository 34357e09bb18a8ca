"""Tiny fake releases in the exact official layouts, for tests and for trying the readers.

The real corpora cannot be shipped, so tests write a few samples with a few tiny frames in each
release's layout. Every frame is a flat colour that encodes (sample, frame), so a test can check
that `decode_video` returned the right frames, even through lossy JPEG or H.264.
"""

from __future__ import annotations

import io
import itertools
import pickle
from pathlib import Path

import numpy as np
from PIL import Image

GERMAN = [
    "regen",
    "sonne",
    "wolken",
    "wind",
    "schnee",
    "nebel",
    "gewitter",
    "morgen",
    "heute",
    "abend",
    "nacht",
    "im",
    "norden",
    "süden",
    "osten",
    "westen",
    "mit",
    "bis",
    "zu",
    "grad",
    "kühler",
    "wärmer",
    "freundlich",
    "überall",
    "später",
    "örtlich",
    "schauer",
]
CHINESE = list("我你他她们今天明天昨天学校医院吃饭喝水工作朋友家人喜欢看书去来好大小")
ENGLISH = [
    "and",
    "then",
    "you",
    "take",
    "the",
    "brush",
    "paint",
    "the",
    "wall",
    "slowly",
    "make",
    "sure",
    "it",
    "is",
    "dry",
    "before",
    "adding",
    "another",
    "layer",
    "of",
    "color",
    "because",
    "that",
    "keeps",
    "edges",
    "clean",
]


def frame_value(sample_index: int, frame_index: int) -> tuple[int, int, int]:
    """The flat RGB colour of frame `frame_index` of sample `sample_index` in the fixtures."""
    return (20 + (frame_index * 23) % 220, 20 + (sample_index * 41) % 220, 128)


def frame_image(sample_index: int, frame_index: int, size: tuple[int, int]) -> np.ndarray:
    frame = np.empty((size[0], size[1], 3), dtype=np.uint8)
    frame[:] = frame_value(sample_index, frame_index)
    return frame


def fake_samples(
    sizes: dict[str, int], words: list[str], seed: int = 0, frames: tuple[int, int] = (3, 9)
) -> dict[str, list[dict]]:
    """Per split: dicts with text, gloss, signer, num_frames (names are set by the writers)."""
    rng = np.random.default_rng(seed)
    samples = {}
    for split, count in sizes.items():
        samples[split] = []
        for _ in range(count):
            text = [words[i] for i in rng.integers(len(words), size=int(rng.integers(3, 8)))]
            samples[split].append(
                {
                    "text": ("" if words is CHINESE else " ").join(text),
                    "gloss": " ".join(w.upper() for w in text[::-1][:4]),
                    "signer": f"Signer{int(rng.integers(1, 10)):02d}",
                    "num_frames": int(rng.integers(frames[0], frames[1] + 1)),
                }
            )
    return samples


def _save(frame: np.ndarray, path: Path, **kwargs) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(frame).save(path, **kwargs)


def write_phoenix14t(
    root: str | Path, samples: dict[str, list[dict]] | None = None, size: tuple[int, int] = (26, 21)
) -> Path:
    """PHOENIX-2014-T-release-v3/PHOENIX-2014-T/... under `root`; returns the inner release folder.

    `samples` per split (train/validation/test) get names like <split>_sample-<i> when they have none.
    """
    samples = samples or fake_samples({"train": 3, "validation": 2, "test": 2}, GERMAN)
    release = Path(root) / "PHOENIX-2014-T-release-v3" / "PHOENIX-2014-T"
    annotations = release / "annotations" / "manual"
    annotations.mkdir(parents=True, exist_ok=True)
    counter = 0
    for split, official in (("train", "train"), ("validation", "dev"), ("test", "test")):
        lines = ["name|video|start|end|speaker|orth|translation"]
        (release / "features" / "fullFrame-210x260px" / official).mkdir(parents=True, exist_ok=True)
        for sample in samples.get(split, []):
            name = sample.setdefault("name", f"01April_2010_Thursday_heute-{counter}")
            sample["index"] = counter
            lines.append(f"{name}|{name}/1/*.png|-1|-1|{sample['signer']}|{sample['gloss']}|{sample['text']}")
            for j in range(sample["num_frames"]):
                _save(
                    frame_image(counter, j, size),
                    release / "features" / "fullFrame-210x260px" / official / name / f"images{j + 1:04d}.png",
                )
            counter += 1
        (annotations / f"PHOENIX-2014-T.{official}.corpus.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return release


def write_csl_daily(
    root: str | Path, samples: dict[str, list[dict]] | None = None, size: tuple[int, int] = (16, 16)
) -> Path:
    """CSL-Daily/... under `root` (label pickle, split_1.txt, JPEG frame folders); returns CSL-Daily/."""
    samples = samples or fake_samples({"train": 3, "validation": 2, "test": 2}, CHINESE)
    release = Path(root) / "CSL-Daily"
    (release / "sentence_label").mkdir(parents=True, exist_ok=True)
    (release / "sentence" / "frames_512x512").mkdir(parents=True, exist_ok=True)
    info, split_lines, counter = [], ["name|split"], 0
    for split, official in (("train", "train"), ("validation", "dev"), ("test", "test")):
        for sample in samples.get(split, []):
            signer = sample["signer"][-2:]
            name = sample.setdefault("name", f"S{counter:06d}_P00{signer}_T00")
            sample["signer"] = f"P00{signer}"
            sample["index"] = counter
            info.append(
                {
                    "name": name,
                    "length": sample["num_frames"],
                    "label_gloss": sample["gloss"].split(),
                    "label_char": list(sample["text"]),
                    "label_word": [sample["text"]],
                    "label_postag": ["n"],
                }
            )
            split_lines.append(f"{name}|{official}")
            for j in range(sample["num_frames"]):
                _save(
                    frame_image(counter, j, size),
                    release / "sentence" / "frames_512x512" / name / f"{j:06d}.jpg",
                    quality=95,
                )
            counter += 1
    labels = {
        "info": info,
        "gloss_map": sorted({g for i in info for g in i["label_gloss"]}),
        "char_map": sorted({c for i in info for c in i["label_char"]}),
        "word_map": [],
        "postag_map": ["n"],
    }
    (release / "sentence_label" / "csl2020ct_v2.pkl").write_bytes(pickle.dumps(labels, protocol=4))
    (release / "sentence_label" / "split_1.txt").write_text("\n".join(split_lines) + "\n", encoding="utf-8")
    return release


def write_video(path: Path, frames, fps: int = 25, crf: int = 10) -> None:
    """An H.264 mp4 (PyAV) of uint8 (H,W,3) frames (an array or any iterable); H and W must be even."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    frames = iter(frames)
    first = next(frames)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.height, stream.width = first.shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "preset": "ultrafast"}
        for frame in itertools.chain([first], frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_how2sign(
    root: str | Path, samples: dict[str, list[dict]] | None = None, size: tuple[int, int] = (16, 24), fps: int = 24
) -> Path:
    """How2Sign/... under `root` (tab-separated CSVs, one mp4 per sentence); returns How2Sign/."""
    samples = samples or fake_samples({"train": 3, "validation": 2, "test": 2}, ENGLISH)
    release = Path(root) / "How2Sign"
    release.mkdir(parents=True, exist_ok=True)
    counter = 0
    for split, official in (("train", "train"), ("validation", "val"), ("test", "test")):
        lines = ["VIDEO_ID\tVIDEO_NAME\tSENTENCE_ID\tSENTENCE_NAME\tSTART_REALIGNED\tEND_REALIGNED\tSENTENCE"]
        (release / f"{official}_rgb_front_clips" / "raw_videos").mkdir(parents=True, exist_ok=True)
        for sample in samples.get(split, []):
            video_id = f"vid{counter:04d}xyz"
            name = sample.setdefault("name", f"{video_id}_{counter}-5-rgb_front")
            sample["index"], sample["signer"], sample["gloss"] = counter, "", ""
            lines.append(
                f"{video_id}\t{video_id}-5-rgb_front\t{video_id}_{counter}\t{name}\t1.0\t2.5\t{sample['text']}"
            )
            frames = np.stack([frame_image(counter, j, size) for j in range(sample["num_frames"])])
            write_video(release / f"{official}_rgb_front_clips" / "raw_videos" / f"{name}.mp4", frames, fps)
            counter += 1
        (release / f"how2sign_realigned_{official}.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return release


def encode_png(frame: np.ndarray, mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    image = Image.fromarray(frame)
    (image.convert(mode) if mode else image).save(buffer, format="PNG")
    return buffer.getvalue()
