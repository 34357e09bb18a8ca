"""The three release readers on tiny fixture trees in the official layouts, and decode_video."""

import gzip
import json
from pathlib import Path

import datasets
import numpy as np
import pytest
from PIL import Image

from data_builders import (
    COLUMNS,
    CslDailyBuilder,
    How2SignBuilder,
    Phoenix14TBuilder,
    decode_video,
    load_sign_dataset,
)
from data_builders.testing import (
    CHINESE,
    ENGLISH,
    GERMAN,
    fake_samples,
    frame_value,
    write_csl_daily,
    write_how2sign,
    write_phoenix14t,
)
from data_builders.video_io import iter_frames

WRITERS = {"phoenix14t": write_phoenix14t, "csl_daily": write_csl_daily, "how2sign": write_how2sign}
WORDS = {"phoenix14t": GERMAN, "csl_daily": CHINESE, "how2sign": ENGLISH}
FRAME_SIZES = {"phoenix14t": (26, 21), "csl_daily": (16, 16), "how2sign": (16, 24)}
FPS = {"phoenix14t": 25.0, "csl_daily": 30.0, "how2sign": 24.0}
TOLERANCE = {"phoenix14t": 0, "csl_daily": 4, "how2sign": 6}  # PNG exact, JPEG / H.264 lossy
REAL_TEXT = Path(__file__).resolve().parents[2] / "shared" / "data" / "real_text"


@pytest.fixture(scope="module", params=sorted(WRITERS))
def corpus(request, tmp_path_factory):
    """(name, release folder, samples written, loaded DatasetDict)."""
    name = request.param
    root = tmp_path_factory.mktemp(name)
    samples = fake_samples({"train": 3, "validation": 2, "test": 2}, WORDS[name])
    release = WRITERS[name](root / "raw", samples)  # fills in each sample's name and index
    dataset = load_sign_dataset(name, release, cache_dir=str(root / "cache"))
    return name, release, samples, dataset


def test_splits_columns_and_annotations(corpus):
    name, _, samples, dataset = corpus
    assert isinstance(dataset, datasets.DatasetDict)
    assert list(dataset) == ["train", "validation", "test"]
    for split, expected in samples.items():
        part = dataset[split]
        assert part.column_names == list(COLUMNS)
        assert len(part) == len(expected)
        for example, sample in zip(part, expected):
            assert example["id"] == sample["name"]
            assert example["text"] == sample["text"]
            assert example["gloss"] == sample["gloss"]
            assert example["signer"] == sample["signer"]
            assert example["num_frames"] == sample["num_frames"]
            assert example["fps"] == pytest.approx(FPS[name])


def test_decoded_frames_are_the_written_frames(corpus):
    name, _, samples, dataset = corpus
    height, width = FRAME_SIZES[name]
    for example, sample in zip(dataset["validation"], samples["validation"]):
        frames = decode_video(example["video"])
        assert frames.dtype == np.uint8 and frames.shape == (sample["num_frames"], height, width, 3)
        for j in range(sample["num_frames"]):
            assert np.abs(frames[j].astype(int) - frame_value(sample["index"], j)).max() <= TOLERANCE[name]
        kept = [sample["num_frames"] - 1, 0, 2]
        subset = decode_video(example["video"], indices=kept)
        assert subset.shape == (3, height, width, 3)
        np.testing.assert_array_equal(subset, frames[kept])


def test_streaming_gives_the_same_examples(corpus):
    name, release, _, dataset = corpus
    streamed = load_sign_dataset(name, release, streaming=True)
    assert isinstance(streamed, datasets.IterableDatasetDict)
    rows = list(streamed["test"])
    assert [row["id"] for row in rows] == dataset["test"]["id"]
    assert [row["num_frames"] for row in rows] == dataset["test"]["num_frames"]
    np.testing.assert_array_equal(decode_video(rows[0]["video"], [1]), decode_video(dataset["test"][0]["video"], [1]))


@pytest.mark.parametrize(
    "name, builder_class, relative",
    [
        ("phoenix14t", Phoenix14TBuilder, "../.."),  # the folder holding PHOENIX-2014-T-release-v3
        ("phoenix14t", Phoenix14TBuilder, "annotations/manual"),
        ("csl_daily", CslDailyBuilder, "sentence_label"),
        ("how2sign", How2SignBuilder, ".."),
    ],
)
def test_data_dir_may_be_the_outer_or_the_annotation_folder(tmp_path, name, builder_class, relative):
    release = WRITERS[name](tmp_path / "raw")
    builder = builder_class(data_dir=str((release / relative).resolve()), cache_dir=str(tmp_path / "cache"))
    assert isinstance(builder, datasets.GeneratorBasedBuilder)
    builder.download_and_prepare()
    assert builder.as_dataset(split="train").num_rows == 3


@pytest.mark.skipif(not REAL_TEXT.is_dir(), reason="../shared/data/real_text is not available")
def test_real_phoenix_sentences_round_trip(tmp_path):
    with gzip.open(REAL_TEXT / "phoenix14t.dev.jsonl.gz", "rt", encoding="utf-8") as handle:
        rows = [json.loads(next(handle)) for _ in range(4)]
    samples = {
        "train": [],
        "validation": [
            {"name": r["name"], "text": r["text"], "gloss": r["gloss"], "signer": "Signer01", "num_frames": 2}
            for r in rows
        ],
        "test": [],
    }
    release = write_phoenix14t(tmp_path / "raw", samples)
    dataset = load_sign_dataset("phoenix14t", release, cache_dir=str(tmp_path / "cache"))
    assert dataset["validation"]["text"] == [r["text"] for r in rows]
    assert dataset["validation"]["gloss"] == [r["gloss"] for r in rows]
    assert len(dataset["train"]) == len(dataset["test"]) == 0


def test_decode_video_accepts_paths_arrays_and_images(tmp_path):
    release = write_how2sign(tmp_path / "raw")
    clip = next((release / "val_rgb_front_clips" / "raw_videos").glob("*.mp4"))
    from_file = decode_video(clip)
    assert from_file.shape[1:] == (16, 24, 3)
    np.testing.assert_array_equal(decode_video(str(clip), [1, 0]), from_file[[1, 0]])

    folder = tmp_path / "frames"
    folder.mkdir()
    for j, frame in enumerate(from_file):
        Image.fromarray(frame).save(folder / f"{j:03d}.png")
    np.testing.assert_array_equal(decode_video(folder), from_file)
    np.testing.assert_array_equal(np.stack(list(iter_frames(clip))), from_file)  # what prepare reads, frame by frame
    reference = {"path": str(folder), "frames": sorted(p.name for p in folder.iterdir()), "synthetic": ""}
    np.testing.assert_array_equal(np.stack(list(iter_frames(reference))), from_file)
    np.testing.assert_array_equal(decode_video(from_file, [2]), from_file[[2]])
    images = [Image.fromarray(frame) for frame in from_file]
    np.testing.assert_array_equal(decode_video(images, [0, 2]), from_file[[0, 2]])
    with pytest.raises(ValueError, match="out of range"):
        decode_video(from_file, [len(from_file)])
    with pytest.raises(FileNotFoundError, match="no-such.mp4"):
        decode_video(tmp_path / "no-such.mp4")


def test_unknown_corpus_and_option_are_named(tmp_path):
    with pytest.raises(ValueError, match="unknown corpus 'phoenix'"):
        load_sign_dataset("phoenix")
    with pytest.raises(ValueError, match="num_trains"):
        load_sign_dataset("synthetic", num_trains=3)
    with pytest.raises(ValueError, match="data_dir is required"):
        load_sign_dataset("phoenix14t", cache_dir=str(tmp_path))
