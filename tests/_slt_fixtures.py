"""A tiny FLa-LLM trained for a few seconds to translate four coloured clips into four sentences.

A randomly initialised tiny model writes the same words whatever the video, which would let a
pipeline that mixes up or ignores its inputs pass. Overfitting four clips makes every output
depend on its input, so tests can compare translations to known sentences.
"""

import functools

import numpy as np
import torch
from modeling_fixtures import tiny_model, tiny_processor

TEXTS = ["regen morgen", "sonne und regen", "wettervorhersage für donnerstag", "den zwölften august"]


def clip(num_frames: int, seed: int, size: int = 32) -> np.ndarray:
    """A clip of one random base colour with mild noise (survives lossy video codecs)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(30, 226, (1, 1, 1, 3))
    return np.clip(base + rng.integers(-12, 13, (num_frames, size, size, 3)), 0, 255).astype(np.uint8)


VIDEOS = [clip(12, 1), clip(8, 2), clip(5, 4), clip(9, 7)]


def write_video(path, frames, codec: str = "mpeg4", rate: int = 25):
    """`frames` (T, H, W, 3) as a video file with PyAV (mpeg4, libvpx, mjpeg, ...); returns `path`."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


@functools.lru_cache(maxsize=1)
def trained_tiny(max_steps: int = 200):
    """(model in eval mode, processor) that translate VIDEOS[i] into TEXTS[i] with beam search."""
    torch.manual_seed(0)
    model = tiny_model(seed=0, label_smoothing=0.0)
    processor = tiny_processor(frame_sample_rate=2)
    inputs = processor(videos=VIDEOS, text=TEXTS)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-2)
    for step in range(1, max_steps + 1):
        model.train()
        loss = model(**inputs).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 10 == 0 and loss.item() < 0.3:
            model.eval()
            ids = model.generate(
                pixel_values=inputs["pixel_values"], pixel_mask=inputs["pixel_mask"], num_beams=2, max_new_tokens=8
            )
            if processor.batch_decode(ids) == TEXTS:
                return model, processor
    raise RuntimeError(f"the tiny model did not learn the four clips in {max_steps} steps (loss {loss.item():.3f})")


def translate_without_flallm(model_dir, video_path, generation: dict, work_dir) -> dict:
    """Run `pipeline(model=model_dir, trust_remote_code=True)` on a clip in a fresh interpreter where
    modeling_flallm, data_builders and train cannot be imported, whatever is installed.

    Returns {"result": pipeline output, "class": module of the pipeline class, "leaked": flallm modules}.
    """
    import json
    import os
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(f"""
        import json, sys

        class Blocker:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("modeling_flallm", "data_builders", "train"):
                    raise ModuleNotFoundError(f"{{name}} is blocked in this test")

        sys.meta_path.insert(0, Blocker())
        from transformers import pipeline

        translator = pipeline(model={str(model_dir)!r}, trust_remote_code=True)
        result = translator({str(video_path)!r}, **{generation!r})
        print(json.dumps({{"result": result, "class": type(translator).__module__,
                          "leaked": [m for m in sys.modules if m.split(".")[0] == "modeling_flallm"]}}))
    """)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(work_dir / "modules")}
    env.pop("PYTHONPATH", None)
    completed = subprocess.run(
        [sys.executable, "-c", script],
        cwd=work_dir,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    # trust_remote_code=True must reach every component: no interactive "run the custom code?" prompt.
    assert "Do you wish to run the custom code" not in completed.stdout + completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])
