"""The `sign-language-translation` pipeline: every input form, batching, generation options, remote code.

The model is a tiny FLa-LLM overfitted on four clips (tests/_slt_fixtures.py), so each clip has a
known translation. For lossy video files the reference is `model.generate` on frames decoded here
with PyAV, so the pipeline's own reader and frame sampling are checked, not reused.
"""

import json
import os
import subprocess
import sys
import textwrap

import av
import numpy as np
import pytest
import torch
from _slt_fixtures import TEXTS, VIDEOS, trained_tiny
from PIL import Image
from transformers import pipeline

import modeling_flallm  # noqa: F401  (registers the model classes)
from modeling_flallm.pipeline_flallm import SignLanguageTranslationPipeline
from modeling_flallm.video_io import load_video

GENERATION = {"num_beams": 2, "max_new_tokens": 8}


def write_video(path, frames, codec, rate=25):
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return str(path)


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
    ids = model.generate(pixel_values=inputs["pixel_values"], pixel_mask=inputs["pixel_mask"], **{**GENERATION, **kwargs})
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
    path = write_video(tmp_path / f"clip.{suffix}", VIDEOS[0], codec)
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


@pytest.mark.xfail(strict=True, reason="FlaLlmProcessor._get_arguments_from_pretrained drops trust_remote_code before "
                   "AutoTokenizer (see /work/notes/PIPELINE_notes.md); remove this mark once fixed")
def test_saved_pipeline_loads_as_remote_code_without_the_package(translator, tmp_path):
    saved = tmp_path / "saved"
    translator.save_pretrained(saved)
    config = json.loads((saved / "config.json").read_text())
    assert config["custom_pipelines"]["sign-language-translation"]["impl"] == "pipeline_flallm.SignLanguageTranslationPipeline"
    assert {"pipeline_flallm.py", "video_io.py", "processor_config.json"} <= set(os.listdir(saved))
    clip = write_video(tmp_path / "clip.mp4", VIDEOS[0], "mpeg4")
    expected = translator(clip, **GENERATION)["translation_text"]
    assert expected == TEXTS[0]

    # A fresh interpreter where the flallm packages cannot be imported, whatever is installed.
    script = textwrap.dedent(f"""
        import json, sys

        class Blocker:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("modeling_flallm", "data_builders", "train"):
                    raise ModuleNotFoundError(f"{{name}} is blocked in this test")

        sys.meta_path.insert(0, Blocker())
        from transformers import pipeline

        translator = pipeline(model={str(saved)!r}, trust_remote_code=True)
        result = translator({clip!r}, **{GENERATION!r})
        print(json.dumps({{"result": result, "class": type(translator).__module__,
                          "leaked": [m for m in sys.modules if m.split(".")[0] == "modeling_flallm"]}}))
    """)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    env.pop("PYTHONPATH", None)
    completed = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-3000:]
    # trust_remote_code=True must reach every component: no interactive "run the custom code?" prompt.
    assert "Do you wish to run the custom code" not in completed.stdout + completed.stderr
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["result"] == {"translation_text": expected}
    assert report["class"].startswith("transformers_modules.")
    assert report["leaked"] == []
