"""A checkpoint saved by an earlier flallm (commit 5bd5c2d, before the issue-13 reshuffle: the video processor in
processing_flallm.py, two video readers) still loads and computes what it computed then, with this package and as
remote code. `tests/data/checkpoint-5bd5c2d/expected.json` holds what that commit's code computed."""

import json
import shutil
from pathlib import Path

import numpy as np
import torch
from _slt_fixtures import translate_without_flallm, write_video
from transformers import AutoModel, AutoProcessor

import modeling_flallm  # noqa: F401  (registers the model and the task)
from train.translate import load_translator

SAVED = Path(__file__).resolve().parent / "data" / "checkpoint-5bd5c2d"
EXPECTED = json.loads((SAVED / "expected.json").read_text())
VIDEO = np.random.default_rng(EXPECTED["video_seed"]).integers(0, 256, (10, 40, 36, 3), dtype=np.uint8)
GENERATION = {"num_beams": 1, "min_new_tokens": 5, "max_new_tokens": 8}


def test_an_old_checkpoint_loads_and_computes_what_it_did():
    model = AutoModel.from_pretrained(SAVED).eval()
    assert type(model).__module__ == "modeling_flallm.modeling_flallm"
    torch.manual_seed(0)
    pixel_values = torch.randn(1, 6, 3, 32, 32)
    pixel_mask = torch.ones(1, 6, dtype=torch.long)
    with torch.no_grad():
        features, _ = model.get_visual_features(pixel_values, pixel_mask)
        generated = model.generate(pixel_values=pixel_values, pixel_mask=pixel_mask, do_sample=False, **GENERATION)
    assert torch.allclose(features[0, :, :4], torch.tensor(EXPECTED["features"]), atol=1e-6)
    assert generated[0].tolist() == EXPECTED["generated"]

    processor = AutoProcessor.from_pretrained(SAVED)
    assert type(processor.video_processor).__module__ == "modeling_flallm.video_processing_flallm"
    assert load_translator(str(SAVED))(VIDEO, **GENERATION) == EXPECTED["pipeline"]  # as flallm translate loads it


def test_an_old_checkpoint_still_runs_as_remote_code_without_flallm(tmp_path):
    copy = shutil.copytree(SAVED, tmp_path / "checkpoint")
    clip = write_video(tmp_path / "clip.mp4", VIDEO)
    report = translate_without_flallm(copy, clip, GENERATION, tmp_path)
    assert report["class"].startswith("transformers_modules.") and report["leaked"] == []
    # The checkpoint's own (old) code and this package's read the file and translate it alike.
    assert report["result"] == load_translator(str(SAVED))(str(clip), **GENERATION)
