"""Every kind of bad input gives an error naming the file/sample, or a logged skip when asked for."""

import logging
import pickle

import numpy as np
import pytest
from PIL import Image

from data_builders import decode_video, load_plain_pickle, load_sign_dataset
from data_builders.testing import write_csl_daily, write_how2sign, write_phoenix14t


def _load(name, data_dir, tmp_path, **options):
    return load_sign_dataset(name, data_dir, cache_dir=str(tmp_path / "cache"), **options)


def _phoenix_csv(release, split="train"):
    return release / "annotations" / "manual" / f"PHOENIX-2014-T.{split}.corpus.csv"


def _first_frame_folder(release, split="train"):
    return sorted((release / "features" / "fullFrame-210x260px" / split).iterdir())[0]


def test_missing_and_empty_data_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"does not exist.*PHOENIX-2014-T\.train\.corpus\.csv"):
        _load("phoenix14t", tmp_path / "nowhere", tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"empty\b.*is empty"):
        _load("csl_daily", tmp_path / "empty", tmp_path)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("hello")
    with pytest.raises(FileNotFoundError, match="no how2sign_realigned_train.csv in"):
        _load("how2sign", tmp_path / "other", tmp_path)


def test_missing_split_frame_folder(tmp_path):
    release = write_phoenix14t(tmp_path / "raw")
    (release / "features" / "fullFrame-210x260px" / "dev").rename(tmp_path / "moved")
    with pytest.raises(FileNotFoundError, match=r"fullFrame-210x260px/dev not found"):
        _load("phoenix14t", release, tmp_path)


@pytest.mark.parametrize("problem", ["missing", "empty"])
def test_sample_without_frames_errors_or_is_skipped_with_a_count(tmp_path, caplog, problem):
    release = write_phoenix14t(tmp_path / "raw")
    folder = _first_frame_folder(release)
    for frame in folder.iterdir():
        frame.unlink()
    if problem == "missing":
        folder.rmdir()
    with pytest.raises(ValueError, match=rf"sample {folder.name} .*(does not exist|holds no \.png)"):
        _load("phoenix14t", release, tmp_path)
    assert len(_load("phoenix14t", release, tmp_path / "before", skip_bad_samples=True)["train"]) == 2
    with caplog.at_level(logging.WARNING):
        dataset = _load("phoenix14t", release, tmp_path / "skip", skip_bad_samples=True)
    assert len(dataset["train"]) == 2 and folder.name not in dataset["train"]["id"]
    assert "phoenix14t train: skipped 1: 1 samples without frames" in caplog.text
    folder.mkdir(exist_ok=True)  # the frames come back: the cache must be rebuilt to see them
    Image.new("RGB", (21, 26)).save(folder / "images0001.png")
    assert len(_load("phoenix14t", release, tmp_path / "before", skip_bad_samples=True)["train"]) == 2
    assert len(_load("phoenix14t", release, tmp_path / "before", skip_bad_samples=True, rebuild=True)["train"]) == 3


def test_csv_row_with_wrong_number_of_fields(tmp_path, caplog):
    release = write_phoenix14t(tmp_path / "raw")
    csv = _phoenix_csv(release)
    lines = csv.read_text(encoding="utf-8").splitlines()
    lines[2] = lines[2] + "|extra"
    csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"corpus\.csv:3: row has 8 '\|'-separated fields, expected 7"):
        _load("phoenix14t", release, tmp_path)
    with caplog.at_level(logging.WARNING):
        dataset = _load("phoenix14t", release, tmp_path / "skip", skip_bad_samples=True)
    assert len(dataset["train"]) == 2
    assert "skipped 1: 1 rows with a wrong number of fields" in caplog.text


def test_csv_with_a_wrong_header(tmp_path):
    release = write_how2sign(tmp_path / "raw")
    csv = release / "how2sign_realigned_test.csv"
    text = csv.read_text(encoding="utf-8")
    csv.write_text(text.replace("SENTENCE_NAME", "CLIP_NAME", 1), encoding="utf-8")
    with pytest.raises(
        ValueError, match=r"how2sign_realigned_test\.csv: header .* lacks column\(s\) \['SENTENCE_NAME'\]"
    ):
        _load("how2sign", release, tmp_path)


def test_text_that_is_not_utf8(tmp_path, caplog):
    release = write_phoenix14t(tmp_path / "raw")
    csv = _phoenix_csv(release, "test")
    lines = csv.read_bytes().split(b"\n")
    lines[1] = lines[1] + "für".encode("latin-1")
    csv.write_bytes(b"\n".join(lines))
    with pytest.raises(ValueError, match=r"test\.corpus\.csv:2: text is not valid UTF-8"):
        _load("phoenix14t", release, tmp_path)
    with caplog.at_level(logging.WARNING):
        dataset = _load("phoenix14t", release, tmp_path / "skip", skip_bad_samples=True)
    assert len(dataset["test"]) == 1
    assert "skipped 1: 1 lines not UTF-8" in caplog.text


def test_corrupt_png_and_jpeg_frames_are_named(tmp_path):
    release = write_phoenix14t(tmp_path / "raw")
    frame = sorted(_first_frame_folder(release).iterdir())[1]
    frame.write_bytes(frame.read_bytes()[:40])  # truncated
    example = _load("phoenix14t", release, tmp_path)["train"][0]
    with pytest.raises(ValueError, match=rf"{frame.name}: could not decode the frame"):
        decode_video(example["video"])
    assert decode_video(example["video"], [0, 2]).shape[0] == 2  # other frames still decode

    csl = write_csl_daily(tmp_path / "csl")
    jpeg = sorted((csl / "sentence" / "frames_512x512").iterdir())[0] / "000000.jpg"
    jpeg.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    example = _load("csl_daily", csl, tmp_path / "c2")["train"][0]
    with pytest.raises(ValueError, match=r"000000\.jpg: could not decode the frame"):
        decode_video(example["video"], [0])


def test_corrupt_and_missing_mp4(tmp_path, caplog):
    release = write_how2sign(tmp_path / "raw")
    clips = sorted((release / "train_rgb_front_clips" / "raw_videos").glob("*.mp4"))
    clips[0].write_bytes(b"\x00\x00\x00\x18ftypmp42 garbage" * 3)
    clips[1].unlink()
    with pytest.raises(ValueError, match=rf"{clips[0].stem} .*could not open the video"):
        _load("how2sign", release, tmp_path)
    with caplog.at_level(logging.WARNING):
        dataset = _load("how2sign", release, tmp_path / "skip", skip_bad_samples=True)
    assert len(dataset["train"]) == 1
    assert (
        "how2sign train: skipped 2: 1 unreadable videos" in caplog.text and "1 samples without a video" in caplog.text
    )
    with pytest.raises(ValueError, match="could not open the video"):
        decode_video(str(clips[0]))


def test_grayscale_and_rgba_frames_are_converted_16_bit_refused(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    gray = np.arange(12 * 10, dtype=np.uint8).reshape(12, 10)
    Image.fromarray(gray, mode="L").save(folder / "0001.png")
    rgba = np.zeros((12, 10, 4), dtype=np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 128
    Image.fromarray(rgba, mode="RGBA").save(folder / "0002.png")
    frames = decode_video(folder)
    assert frames.shape == (2, 12, 10, 3) and frames.dtype == np.uint8
    np.testing.assert_array_equal(frames[0], np.repeat(gray[..., None], 3, axis=2))
    np.testing.assert_array_equal(frames[1], np.broadcast_to([200, 0, 0], (12, 10, 3)))  # alpha dropped
    Image.fromarray(np.full((12, 10), 40000, dtype=np.uint16)).save(folder / "0003.png")
    with pytest.raises(ValueError, match=r"0003\.png: image mode 'I;16' is not supported; expected 8-bit"):
        decode_video(folder, [2])


def test_frames_of_different_sizes_are_named(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    Image.new("RGB", (10, 12)).save(folder / "1.png")
    Image.new("RGB", (11, 12)).save(folder / "2.png")
    with pytest.raises(ValueError, match=r"2\.png: frame is 11x12, expected 10x12"):
        decode_video(folder)


class _Payload:
    """Unpickling this creates a file: the proof that a pickle ran code."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_label_pickle_with_code_is_refused(tmp_path):
    release = write_csl_daily(tmp_path / "raw")
    labels = release / "sentence_label" / "csl2020ct_v2.pkl"
    witness = tmp_path / "pickle-was-executed"
    labels.write_bytes(pickle.dumps({"info": [], "hook": _Payload(witness)}))
    with pytest.raises(
        ValueError, match=r"csl2020ct_v2\.pkl: refusing to load (io|builtins)\.open .*only plain builtin types"
    ):
        _load("csl_daily", release, tmp_path)
    assert not witness.exists()
    labels.write_bytes(pickle.dumps({"info": [], "array": np.zeros(2)}))
    with pytest.raises(ValueError, match="refusing to load numpy"):
        load_plain_pickle(labels)
    labels.write_bytes(pickle.dumps(["not", "a", "dict"]))
    with pytest.raises(ValueError, match=r"expected a dict with an 'info' list"):
        _load("csl_daily", release, tmp_path / "c2")
    labels.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="could not read the pickle"):
        _load("csl_daily", release, tmp_path / "c3")


def test_csl_split_file_naming_unknown_samples_or_splits(tmp_path, caplog):
    release = write_csl_daily(tmp_path / "raw")
    split_file = release / "sentence_label" / "split_1.txt"
    split_file.write_text(split_file.read_text() + "S999999_P0001_T00|train\nS000000_P0002_T00|holdout\n")
    with pytest.raises(
        ValueError, match=r"split_1\.txt:9: sample 'S999999_P0001_T00' has no entry in csl2020ct_v2\.pkl"
    ):
        _load("csl_daily", release, tmp_path)
    with caplog.at_level(logging.WARNING):
        dataset = _load("csl_daily", release, tmp_path / "skip", skip_bad_samples=True)
    assert len(dataset["train"]) == 3
    assert "1 samples without labels" in caplog.text and "1 rows with an unknown split" in caplog.text


def test_sample_names_that_leave_the_release_are_refused(tmp_path):
    from data_builders.testing import CHINESE, fake_samples

    samples = fake_samples({"train": 3, "validation": 2, "test": 2}, CHINESE)
    samples["train"][0]["name"] = "../../outside"  # its frames land outside sentence/frames_512x512/
    release = write_csl_daily(tmp_path / "raw", samples)
    assert (release / "outside").is_dir()
    with pytest.raises(ValueError, match=r"sample name '\.\./\.\./outside' is not a plain file name"):
        _load("csl_daily", release, tmp_path)
    dataset = _load("csl_daily", release, tmp_path / "skip", skip_bad_samples=True)
    assert len(dataset["train"]) == 2 and "../../outside" not in dataset["train"]["id"]


def test_hidden_files_are_not_frames_and_frames_play_in_natural_order(tmp_path):
    from modeling_flallm.video_io import list_frame_files

    release = write_phoenix14t(tmp_path / "raw")
    folder = _first_frame_folder(release)
    count = len(list(folder.iterdir()))
    (folder / "._images0001.png").write_bytes(b"\x00\x05\x16\x07 macOS resource fork")  # not an image at all
    dataset = _load("phoenix14t", release, tmp_path)
    row = dataset["train"][[r for r in dataset["train"]["id"]].index(folder.name)]
    assert row["num_frames"] == count and "._images0001.png" not in row["video"]["frames"]
    # Unpadded names: the corpus loader, the dataset decoder and the pipeline's reader agree on 1, 2, 10.
    loose = tmp_path / "loose"
    loose.mkdir()
    for index, value in ((1, 10), (2, 20), (10, 100)):
        Image.new("RGB", (8, 8), (value, value, value)).save(loose / f"frame{index}.png")
    pipeline_order = [int(p.stem[5:]) for p in list_frame_files(loose)]
    assert pipeline_order == [1, 2, 10]
    assert [int(frame[0, 0, 0]) for frame in decode_video(str(loose))] == [10, 20, 100]


def test_a_frame_folder_that_is_a_symlink_loop_is_a_bad_sample(tmp_path, caplog):
    release = write_phoenix14t(tmp_path / "raw")
    folder = _first_frame_folder(release)
    for frame in folder.iterdir():
        frame.unlink()
    folder.rmdir()
    folder.symlink_to(folder)  # a loop: listing it fails with ELOOP
    with pytest.raises(
        ValueError, match=rf"sample {folder.name} .*cannot be read \(Too many levels of symbolic links\)"
    ):
        _load("phoenix14t", release, tmp_path)
    with caplog.at_level(logging.WARNING):
        dataset = _load("phoenix14t", release, tmp_path / "skip", skip_bad_samples=True)
    assert len(dataset["train"]) == 2 and "skipped 1: 1 unreadable frame folders" in caplog.text
