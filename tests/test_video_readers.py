"""The pipeline's reader (`modeling_flallm.video_io`) and the dataset readers (`data_builders`: decode for training,
iterate for `flallm prepare`) return the same frames for the same file or folder."""

import av
import numpy as np
import pytest
import torch
from PIL import Image

from data_builders import decode_video
from data_builders.video_io import iter_frames
from modeling_flallm.video_io import load_video


def _marked_frames(count=4, height=16, width=32):
    """Landscape frames with a white block in the top-left corner (where it ends up shows the orientation)."""
    frames = np.zeros((count, height, width, 3), np.uint8)
    frames[:, :6, :6] = 255
    return frames


def _write(path, frames, rotation=None):
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=25, options={"qscale": "1"})
        stream.height, stream.width = frames.shape[1:3]
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


def _readers(video):
    return {
        "pipeline": load_video(str(video)),
        "training": decode_video(str(video)),
        "prepare": np.stack(list(iter_frames(str(video)))),
    }


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_a_rotated_phone_video_reaches_every_reader_upright(tmp_path, rotation):
    frames = _marked_frames()
    video = _write(tmp_path / "phone.mp4", frames, rotation)
    expected = np.rot90(frames, k=rotation // 90, axes=(1, 2))  # the display rotation, counterclockwise
    outputs = _readers(video)
    for name, output in outputs.items():
        assert output.shape == expected.shape, name
        assert np.abs(output.astype(int) - expected.astype(int)).mean() < 8, name  # mpeg4 at its best quality
    assert np.array_equal(outputs["pipeline"], outputs["training"]) and np.array_equal(
        outputs["training"], outputs["prepare"]
    )


def test_every_reader_reads_a_frame_folder_alike(tmp_path):
    folder = tmp_path / "clip"
    folder.mkdir()
    for index, value in ((1, 10), (2, 20), (10, 100), (11, 110)):
        Image.new("RGB", (8, 6), (value, 0, 0)).save(folder / f"frame{index}.png")
    Image.new("L", (8, 6), 50).save(folder / "frame3.png")  # grayscale: converted to RGB by every reader
    (folder / "._frame1.png").write_bytes(b"macOS resource fork")
    outputs = _readers(folder)
    assert [int(frame[0, 0, 0]) for frame in outputs["pipeline"]] == [10, 20, 50, 100, 110]
    for name, output in outputs.items():
        assert np.array_equal(output, outputs["pipeline"]), name


@pytest.mark.parametrize("mode", ["1", "P", "LA", "RGBA"])  # ("PA" cannot be saved as PNG)
def test_every_reader_accepts_the_same_image_modes(tmp_path, mode):
    folder = tmp_path / mode
    folder.mkdir()
    for index in range(3):
        Image.new("RGB", (8, 6), (40 * index, 200, 90)).convert(mode).save(folder / f"{index:03d}.png")
    outputs = _readers(folder)
    assert outputs["pipeline"].shape == (3, 6, 8, 3)
    for name, output in outputs.items():
        assert np.array_equal(output, outputs["pipeline"]), name


def test_a_16_bit_frame_is_refused_by_every_reader(tmp_path):
    folder = tmp_path / "deep"
    folder.mkdir()
    Image.fromarray(np.full((6, 8), 40000, dtype=np.uint16)).save(folder / "000.png")
    for read in (lambda: load_video(str(folder)), lambda: decode_video(str(folder))):
        with pytest.raises(ValueError, match="000.png: image mode 'I;16' is not supported"):
            read()


def _clip_inputs(tmp_path):
    """The same 13 frames, larger than the processor's size (so every path shrinks them), as a frame folder with
    unpadded names, as an mp4, and as the raw-corpus references the builders write for each."""
    frames = np.zeros((13, 48, 40, 3), np.uint8)
    for index in range(13):
        frames[index, :, :, 0] = np.linspace(0, 255, 40)  # smooth, so that mpeg4 keeps them close to these values
        frames[index, :, :, 1] = 20 * index
        frames[index, 8 + index : 20 + index, 10:22, 2] = 255
    folder = tmp_path / "clip"
    folder.mkdir()
    for index, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"frame{index}.png")
    mp4 = _write(tmp_path / "clip.mp4", frames)
    names = [f"frame{index}.png" for index in range(13)]
    return {
        "folder": (str(folder), {"path": str(folder), "frames": names}),
        "file": (str(mp4), {"path": str(mp4)}),
    }


@pytest.mark.parametrize("kind", ["folder", "file"])
def test_every_path_gives_the_model_the_same_pixels(tmp_path, kind):
    """Issue 13: training (the collator: stage-1 batches, stage-2 features, validation), evaluation, and the pipeline
    (`flallm translate`, the app) feed the model identical pixel values for one clip; `flallm prepare` stores the
    frames `decode_video` reads."""
    from transformers import pipeline

    from data_builders import SignTranslationCollator
    from modeling_flallm import FlaLlmProcessor, FlaLlmVideoProcessor
    from tests.modeling_fixtures import tiny_model, tiny_tokenizer
    from train.evaluation import _CollateWithReferences
    from train.translate import translate_clips

    path, reference = _clip_inputs(tmp_path)[kind]
    video_processor = FlaLlmVideoProcessor(frame_sample_rate=4, size=24, crop_size=20)
    processor = FlaLlmProcessor(video_processor, tiny_tokenizer())
    example = {"id": "clip", "text": "regen", "num_frames": 13, "video": reference}

    translator = pipeline("sign-language-translation", model=tiny_model(), processor=processor)
    by_path = {
        "pipeline": torch.from_numpy(translator.preprocess(path)["frames"]),
        "training": SignTranslationCollator(processor)([example])["pixel_values"][0],
        "training (path)": SignTranslationCollator(processor)([{**example, "video": path}])["pixel_values"][0],
        "evaluation": _CollateWithReferences(processor)([example])["pixel_values"][0],
    }
    assert by_path["pipeline"].shape == (4, 3, 20, 20)
    for name, pixels in by_path.items():
        assert torch.equal(pixels, by_path["pipeline"]), name
    # `flallm translate` runs that pipeline on the file, and prepare stores what decode_video reads.
    seen = []
    translator.preprocess = lambda video, real=translator.preprocess: seen.append(video) or real(video)
    assert len(list(translate_clips(translator, [path], batch_size=1))) == 1 and seen == [path]
    assert np.array_equal(np.stack(list(iter_frames(reference))), decode_video(reference))
