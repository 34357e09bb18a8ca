"""`flallm demo --quick`: the whole pipeline runs and leaves loadable stage directories.

The quick run cannot learn in seconds; the full demo's numbers are recorded in BENCHMARKS.md.
"""

import json

import numpy as np
from transformers import AutoModel, pipeline

import modeling_flallm  # noqa: F401  (registers the model and the task)
from train.cli import main


def test_quick_demo_leaves_both_stages_and_metrics(tmp_path, capsys):
    assert main(["demo", "--quick", "--output-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "baseline" in out and "stage2" in out

    metrics = json.loads((tmp_path / "metrics.json").read_text())
    for stage in ("stage1", "stage2", "baseline"):
        assert set(metrics[stage]) >= {"bleu1", "bleu2", "bleu3", "bleu4", "rougeL"}, stage
        assert all(0.0 <= metrics[stage][key] <= 100.0 for key in ("bleu1", "bleu4", "rougeL"))

    video = np.random.default_rng(0).integers(0, 256, (12, 16, 16, 3), dtype=np.uint8)
    for stage in ("stage1", "stage2"):
        model = AutoModel.from_pretrained(tmp_path / stage)
        assert type(model).__name__ == "FlaLlmForSignTranslation"
        translator = pipeline("sign-language-translation", model=str(tmp_path / stage))
        assert isinstance(translator(video, num_beams=1, max_new_tokens=4)["translation_text"], str)
    assert AutoModel.from_pretrained(tmp_path / "stage2").config.freeze == "visual_encoder"
