"""bench/bench_recognition.py: the WER it reports, and a --quick run of every method (seconds; learns nothing)."""

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture(scope="module")
def bench():
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))  # the script imports `_benchutil` from its own folder
    spec = importlib.util.spec_from_file_location("bench_recognition", BENCH / "bench_recognition.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_word_error_rate(bench):
    assert bench.word_error_rate(["A B C D"], ["A B C D"]) == 0.0
    assert bench.word_error_rate(["A X C D"], ["A B C D"]) == 25.0
    assert bench.word_error_rate([""], ["A B C D"]) == 100.0
    assert bench.word_error_rate(["A B C D E"], ["A B C D"]) == 25.0  # an insertion
    # Summed over sentences, divided by all reference words: (1 + 2) / (2 + 4).
    assert bench.word_error_rate(["A", "A B"], ["A B", "A B C D"]) == 50.0
    assert bench.word_error_rate([["A", "B"]], [["A", "C"]]) == 50.0
    with pytest.raises(ValueError):
        bench.word_error_rate(["A"], ["A", "B"])


def test_greedy_ctc_decode_merges_repeats_and_drops_blanks(bench):
    glosses = ["MAN", "BIG", "NOT"]
    path = torch.tensor([[1, 1, 0, 2, 0, 2, 3, 3, 0, 1]])  # MAN MAN - BIG - BIG NOT NOT - | padding
    log_probs = torch.nn.functional.one_hot(path, 4).float().log()
    assert bench.greedy_ctc_decode(log_probs, torch.tensor([9]), glosses) == ["MAN BIG BIG NOT"]


def test_quick_run_writes_one_row_per_method(bench, tmp_path, capsys):
    threads = torch.get_num_threads()
    assert (
        bench.main(["--quick", "--seeds", "0", "--output-dir", str(tmp_path), "--json", str(tmp_path / "r.json")]) == 0
    )
    assert torch.get_num_threads() == threads
    result = json.loads((tmp_path / "r.json").read_text())
    rows = result["rows"]
    assert [row["method"] for row in rows] == ["ctc", "stage1-gloss", "stage1-gloss (no BoW)"]
    for row in rows:
        assert row["seed"] == 0 and row["steps"] == 2  # the quick budget: 1 epoch of 16 clips, batch 8
        assert math.isfinite(row["dev_wer"]) and row["dev_wer"] >= 0
    assert rows[1]["bag_of_words_weight"] > 0 and rows[2]["bag_of_words_weight"] == 0.0
    assert len(result["ratios"]) == 2
    # Stage 1 trained on the glosses, over a gloss tokenizer of its own, and validated once (at the end).
    predictions = list((tmp_path / "seed-0" / "stage1-gloss" / "predictions").glob("validation-step*.jsonl"))
    assert len(predictions) == 1
    first = json.loads(predictions[0].read_text().splitlines()[0])
    assert first["reference"].isupper()
    assert "| ctc | 0 | 2 |" in capsys.readouterr().out


def test_substitutions_and_motion_confusions(bench):
    recognition = bench
    assert recognition.align(["A", "X", "C"], ["A", "B", "C"]) == (1, [("B", "X")])
    assert recognition.align(["A", "C"], ["A", "B", "C"]) == (1, [])  # a deletion, not a substitution
    from data_builders.synthetic import SIGN_CODES

    glosses = list(SIGN_CODES)
    twin = next((a, b) for a in glosses for b in glosses if a != b and SIGN_CODES[a][:2] == SIGN_CODES[b][:2])
    other = next(b for b in glosses if SIGN_CODES[b][:2] != SIGN_CODES[twin[0]][:2])
    result = recognition.motion_confusions([{"hypothesis": f"{twin[1]} {other}", "reference": f"{twin[0]} {twin[0]}"}])
    assert result["substitutions"] == 2 and result["motion_only"] == 1
