"""The `sign-language-translation` pipeline: every input form, batching, generation options, remote code.

The model is a tiny FLa-LLM overfitted on four clips (tests/_slt_fixtures.py), so each clip has a
known translation. For lossy video files the reference is `model.generate` on frames decoded here
with PyAV, so the pipeline's own reader and frame sampling are checked, not reused.
"""

import json
import os

import av
import numpy as np
import pytest
import torch
from _slt_fixtures import TEXTS, VIDEOS, trained_tiny, translate_without_flallm, write_video
from PIL import Image
from transformers import pipeline
from transformers.pipelines import PIPELINE_REGISTRY

import modeling_flallm  # noqa: F401  (registers the model classes)
from modeling_flallm.pipeline_flallm import SignLanguageTranslationPipeline
from modeling_flallm.video_io import load_video
from train import hub

GENERATION = {"num_beams": 2, "max_new_tokens": 8}


def decode_all(path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


@pytest.fixture(scope="module")
def model():
    return trained_tiny()[0]


@pytest.fixture(scope="module")
def processor():
    return trained_tiny()[1]


@pytest.fixture(scope="module")
def translator(model, processor):
    return pipeline("sign-language-translation", model=model, processor=processor)


def direct(model, processor, videos, **kwargs):
    """Reference translations without the pipeline."""
    inputs = processor(videos=list(videos))
    ids = model.generate(
        pixel_values=inputs["pixel_values"], pixel_mask=inputs["pixel_mask"], **{**GENERATION, **kwargs}
    )
    return processor.batch_decode(ids, skip_special_tokens=True)


def test_registered_task_builds_the_pipeline(translator):
    assert isinstance(translator, SignLanguageTranslationPipeline)


def test_array_and_pil_inputs(translator):
    assert translator(VIDEOS[0], **GENERATION) == {"translation_text": TEXTS[0]}
    assert translator(torch.from_numpy(VIDEOS[3]), **GENERATION) == {"translation_text": TEXTS[3]}
    pil_frames = [Image.fromarray(frame) for frame in VIDEOS[1]]  # a list of frames is one video
    assert translator(pil_frames, **GENERATION) == {"translation_text": TEXTS[1]}


@pytest.mark.parametrize("batch_size", [1, 3])
def test_list_of_mixed_inputs_keeps_order(translator, batch_size, tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(VIDEOS[2]):  # unpadded numbers: the reader must sort naturally
        Image.fromarray(frame).save(folder / f"frame{i}.png")
    # Different lengths in one batch: padding must not change any translation.
    inputs = [VIDEOS[3], str(folder), [Image.fromarray(f) for f in VIDEOS[1]], VIDEOS[0]]
    outputs = translator(inputs, batch_size=batch_size, **GENERATION)
    assert outputs == [{"translation_text": TEXTS[i]} for i in (3, 2, 1, 0)]


@pytest.mark.parametrize("suffix,codec", [("mp4", "mpeg4"), ("webm", "libvpx"), ("avi", "mjpeg")])
def test_video_files(translator, model, processor, tmp_path, suffix, codec):
    path = str(write_video(tmp_path / f"clip.{suffix}", VIDEOS[0], codec))
    decoded = decode_all(path)
    assert decoded.shape == VIDEOS[0].shape
    # Only the sampled frames are decoded, and they are the frames the processor would keep.
    indices = processor.video_processor.sample_frame_indices(len(decoded))
    np.testing.assert_array_equal(load_video(path, lambda n: indices), decoded[indices])
    assert translator(path, **GENERATION) == {"translation_text": direct(model, processor, [decoded])[0]}


def test_generation_options_pass_through(translator):
    assert translator(VIDEOS[2], num_beams=1, max_new_tokens=1)["translation_text"] == TEXTS[2].split()[0]
    assert translator(VIDEOS[2], num_beams=3, max_new_tokens=2)["translation_text"] == " ".join(TEXTS[2].split()[:2])
    # min_new_tokens forces words past the learned end of sentence.
    assert len(translator(VIDEOS[0], num_beams=1, min_new_tokens=5, max_new_tokens=5)["translation_text"].split()) == 5


def test_device_argument(model, processor):
    translator = pipeline("sign-language-translation", model=model, processor=processor, device="cpu")
    assert translator.device == torch.device("cpu")
    assert translator(VIDEOS[1], **GENERATION) == {"translation_text": TEXTS[1]}


def test_bad_inputs_name_the_input(translator, tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.mp4"):
        translator(str(tmp_path / "missing.mp4"))
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"this is not a video")
    with pytest.raises(ValueError, match="broken.mp4"):
        translator(str(broken))
    empty_dir = tmp_path / "no_frames"
    empty_dir.mkdir()
    with pytest.raises(ValueError, match="no_frames.*no frame images"):
        translator(str(empty_dir))
    with pytest.raises(ValueError, match=r"shape \(0, 32, 32, 3\).*empty"):
        translator(np.zeros((0, 32, 32, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        translator(np.zeros((4, 32, 32, 3), dtype=np.float32))


def test_saved_pipeline_carries_its_remote_code(translator, tmp_path):
    translator.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    # `flallm push` adds the same entry to training exports (train.hub.PIPELINE_ENTRY).
    assert config["custom_pipelines"] == {"sign-language-translation": hub.PIPELINE_ENTRY}
    assert {"pipeline_flallm.py", "video_io.py", "processor_config.json", "tokenizer.json"} <= set(os.listdir(tmp_path))

    # Loading that copy as remote code in this process keeps the package's registration, and the
    # remote class can save itself again.
    remote = pipeline(model=str(tmp_path), trust_remote_code=True)
    assert type(remote).__module__.startswith("transformers_modules.")
    assert PIPELINE_REGISTRY.supported_tasks["sign-language-translation"]["impl"] is SignLanguageTranslationPipeline
    assert remote(VIDEOS[0], **GENERATION) == {"translation_text": TEXTS[0]}
    remote.save_pretrained(tmp_path / "again")
    assert (
        json.loads((tmp_path / "again" / "config.json").read_text())["custom_pipelines"] == config["custom_pipelines"]
    )


def test_saved_pipeline_loads_as_remote_code_without_the_package(translator, tmp_path):
    saved = tmp_path / "saved"
    translator.save_pretrained(saved)
    clip = str(write_video(tmp_path / "clip.mp4", VIDEOS[0]))
    assert translator(clip, **GENERATION) == {"translation_text": TEXTS[0]}
    report = translate_without_flallm(saved, clip, GENERATION, tmp_path)
    assert report["result"] == {"translation_text": TEXTS[0]}
    assert report["class"].startswith("transformers_modules.")
    assert report["leaked"] == []


def test_a_long_large_video_is_shrunk_as_decoded_and_sampled_over_its_whole_length(
    translator, processor, tmp_path, caplog
):
    from modeling_flallm import video_processing_flallm

    video_processor = processor.video_processor
    frames = np.random.default_rng(0).integers(
        0,
        256,
        (
            video_processor.max_frames * video_processor.frame_sample_rate + 40,
            3 * video_processor.size,
            4 * video_processor.size,
            3,
        ),
        dtype=np.uint8,
    )
    path = str(write_video(tmp_path / "long.mp4", frames))
    kept = load_video(path, lambda n: video_processor.sample_frame_indices(n), max_short_side=video_processor.size)
    assert kept.shape == (video_processor.max_frames, video_processor.size, round(4 / 3 * video_processor.size), 3)
    indices = video_processor.sample_frame_indices(len(frames))
    assert (
        indices[0] < video_processor.frame_sample_rate
        and indices[-1] > len(frames) - 2 * video_processor.frame_sample_rate
    )
    video_processing_flallm._warned_long_video = False
    with caplog.at_level("WARNING"):
        assert isinstance(translator(path, **GENERATION)["translation_text"], str)
    assert f"keeps at most max_frames={video_processor.max_frames}, spread over the whole clip" in caplog.text
