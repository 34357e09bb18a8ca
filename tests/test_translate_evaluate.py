"""`evaluate_model`, `flallm evaluate` and `flallm translate` with the tiny model overfitted on four clips."""

import csv
import json

import datasets
import numpy as np
import pytest
from _slt_fixtures import TEXTS, VIDEOS, trained_tiny, write_video
from PIL import Image

from data_builders import raw_features
from train import model_card
from train.cli import main
from train.evaluation import evaluate_model
from train.metrics import load_metric
from train.translate import expand_inputs

GENERATION = {"num_beams": 2, "max_new_tokens": 8}


def write_frames(folder, frames):
    folder.mkdir(parents=True)
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{i:04d}.png")
    return folder


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    model, processor = trained_tiny()
    path = tmp_path_factory.mktemp("model")
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def clip_dataset(tmp_path, references):
    """The four clips as a split in the shared raw schema (frame folders on disk)."""
    rows = {name: [] for name in raw_features()}
    for i, (frames, text) in enumerate(zip(VIDEOS, references)):
        folder = write_frames(tmp_path / f"clip{i}", frames)
        rows["id"].append(f"clip-{i}")
        rows["text"].append(text)
        rows["gloss"].append("")
        rows["signer"].append("Signer01")
        rows["num_frames"].append(len(frames))
        rows["fps"].append(25.0)
        rows["video"].append({"path": str(folder), "frames": sorted(p.name for p in folder.iterdir()), "synthetic": ""})
    return datasets.Dataset.from_dict(rows, features=raw_features())


@pytest.mark.parametrize("batch_size", [1, 3])
def test_evaluate_model_scores_what_it_translated(tmp_path, batch_size):
    model, processor = trained_tiny()
    references = list(TEXTS)
    references[1] = "sonne und wind"  # one imperfect translation, so the scores are not all 100
    dataset = clip_dataset(tmp_path, references)
    metrics, predictions = evaluate_model(
        model, processor, dataset, language="de", batch_size=batch_size, generate_kwargs=GENERATION, progress=False
    )
    assert predictions == [{"id": f"clip-{i}", "hypothesis": TEXTS[i], "reference": references[i]} for i in range(4)]
    expected = load_metric().compute(predictions=TEXTS, references=references, language="de")
    assert metrics == {"num_examples": 4, "language": "de", **expected}
    assert 0 < metrics["bleu2"] < 100  # (the sentences are too short for any 4-gram)
    assert model.training is False


def test_evaluate_cli_writes_predictions_and_metrics_the_card_uses(model_dir, tmp_path, capsys):
    code = main(
        [
            "evaluate",
            "--model",
            str(model_dir),
            "--dataset",
            "synthetic",
            "--split",
            "test",
            "--option",
            "num_train=0",
            "--option",
            "num_validation=0",
            "--option",
            "num_test=3",
            "--option",
            "resolution=32",
            "--num-beams",
            "2",
            "--max-new-tokens",
            "6",
            "--batch-size",
            "2",
            "--cache-dir",
            str(tmp_path / "cache"),
        ]
    )
    assert code == 0
    lines = (model_dir / "predictions_test.jsonl").read_text(encoding="utf-8").splitlines()
    predictions = [json.loads(line) for line in lines]
    assert [p["id"] for p in predictions] == [f"synthetic-test-{i:06d}" for i in range(3)]
    assert all(set(p) == {"id", "hypothesis", "reference"} and p["reference"] for p in predictions)

    record = json.loads((model_dir / "metrics_test.json").read_text(encoding="utf-8"))
    assert record["dataset"] == "synthetic" and record["split"] == "test"
    assert record["language"] == "en" and record["num_beams"] == 2 and record["num_examples"] == 3
    recomputed = load_metric().compute(
        predictions=[p["hypothesis"] for p in predictions],
        references=[p["reference"] for p in predictions],
        language="en",
    )
    assert {key: record[key] for key in recomputed} == recomputed

    printed = capsys.readouterr().out
    assert "synthetic test (3 examples)" in printed and "BLEU-4" in printed and "signature: nrefs:1" in printed

    # The evaluation lands in the model directory, where `flallm push` finds it for the card.
    card = model_card.render_model_card(model_dir, "someone/tiny")
    [result] = card.data.eval_results[-1:]
    assert result.dataset_type == "synthetic" and result.dataset_split == "test"
    assert result.metric_value == round(record["chrf"], 2)


def test_evaluate_cli_needs_a_language_for_unknown_corpora(model_dir, tmp_path):
    with pytest.raises(ValueError, match="--language"):
        main(["evaluate", "--model", str(model_dir), "--dataset", str(tmp_path / "prepared")])


def test_expand_inputs(tmp_path):
    video = write_video(tmp_path / "a.mp4", VIDEOS[0])
    frames = write_frames(tmp_path / "frames", VIDEOS[1])
    clips = tmp_path / "clips"
    clips.mkdir()
    write_video(clips / "b.mp4", VIDEOS[2])
    write_frames(clips / "c", VIDEOS[3])
    (clips / "notes.txt").write_text("not a clip")
    assert expand_inputs([video, frames, clips]) == [video, frames, clips / "b.mp4", clips / "c"]
    with pytest.raises(FileNotFoundError, match="missing"):
        expand_inputs([tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty: holds no video files"):
        expand_inputs([tmp_path / "empty"])


@pytest.mark.parametrize("suffix", ["jsonl", "csv"])
def test_translate_cli(model_dir, tmp_path, capsys, suffix):
    root = tmp_path / "many"
    for i in (0, 2, 3):
        write_frames(root / f"clip{i}", VIDEOS[i])
    single = write_frames(tmp_path / "one", VIDEOS[1])
    output = tmp_path / f"out.{suffix}"
    code = main(
        [
            "translate",
            "--model",
            str(model_dir),
            str(single),
            str(root),
            "--output",
            str(output),
            "--batch-size",
            "2",
            "--num-beams",
            "2",
            "--max-new-tokens",
            "8",
        ]
    )
    assert code == 0
    expected = [(str(single), TEXTS[1])] + [(str(root / f"clip{i}"), TEXTS[i]) for i in (0, 2, 3)]
    printed = capsys.readouterr().out.splitlines()
    assert printed == [f"{path}\t{text}" for path, text in expected]
    if suffix == "jsonl":
        rows = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    else:
        with open(output, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    assert rows == [{"input": path, "translation": text} for path, text in expected]


def test_translate_cli_video_file_and_errors(model_dir, tmp_path, capsys):
    video = write_video(tmp_path / "clip.mp4", VIDEOS[0])
    assert main(["translate", "--model", str(model_dir), str(video), "--num-beams", "2"]) == 0
    assert capsys.readouterr().out == f"{video}\t{TEXTS[0]}\n"
    with pytest.raises(SystemExit, match="nothing.mp4: no such video file"):
        main(["translate", "--model", str(model_dir), str(tmp_path / "nothing.mp4")])
    with pytest.raises(SystemExit, match="expected a .jsonl or .csv"):
        main(["translate", "--model", str(model_dir), str(video), "--output", str(tmp_path / "out.txt")])
    broken = tmp_path / "broken.webm"
    broken.write_bytes(np.random.default_rng(0).bytes(200))
    with pytest.raises(SystemExit, match="broken.webm"):
        main(["translate", "--model", str(model_dir), str(broken), "--fail-fast"])


def test_translate_skips_a_bad_clip_keeps_the_others_and_exits_1(model_dir, tmp_path, capsys, caplog):
    clips = [write_frames(tmp_path / f"clip{i}", VIDEOS[i]) for i in range(3)]
    broken = tmp_path / "broken.webm"
    broken.write_bytes(np.random.default_rng(0).bytes(200))
    output = tmp_path / "out.jsonl"
    with caplog.at_level("ERROR"):
        code = main(
            [
                "translate",
                "--model",
                str(model_dir),
                str(clips[0]),
                str(broken),
                str(clips[1]),
                str(clips[2]),
                "--output",
                str(output),
                "--batch-size",
                "2",
                "--num-beams",
                "2",
                "--max-new-tokens",
                "8",
            ]
        )
    assert code == 1
    expected = [{"input": str(clips[i]), "translation": TEXTS[i]} for i in range(3)]
    assert [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()] == expected
    assert f"{broken}: not translated" in caplog.text and "1 of 4 clip(s) could not be translated" in caplog.text
    assert capsys.readouterr().out.splitlines() == [f"{row['input']}\t{row['translation']}" for row in expected]


def test_translate_and_evaluate_refuse_bad_arguments_before_loading_anything(model_dir, tmp_path, capsys):
    clip = write_frames(tmp_path / "clip", VIDEOS[0])
    (tmp_path / "not-a-dir").write_text("x")
    for argv, message in (
        (["--num-beams", "0"], "--num-beams: expected a whole number >= 1, got 0"),
        (["--batch-size", "two"], "--batch-size: expected a whole number >= 1, got 'two'"),
        (["--model", str(tmp_path / "missing" / "stage2")], "missing/stage2: no such model directory"),
        (["--model", str(tmp_path)], "is a folder without config.json"),
        (["--model", str(tmp_path / "not-a-dir")], "not-a-dir is a file"),
    ):
        for command in (["translate", str(clip)], ["evaluate"]):
            argv_model = [] if "--model" in argv else ["--model", str(model_dir)]
            with pytest.raises(SystemExit) as exit_info:
                main([*command, *argv_model, *argv])
            assert exit_info.value.code == 2
            assert message in capsys.readouterr().err
    # An unwritable --output fails before the first clip is translated.
    with pytest.raises(SystemExit, match="--output .*out.jsonl: cannot be written"):
        main(["translate", "--model", str(model_dir), str(clip), "--output", str(tmp_path / "not-a-dir" / "out.jsonl")])


def test_bf16_translate_and_evaluate_run_and_agree_with_fp32_on_the_tiny_model(model_dir, tmp_path, capsys):
    clips = [write_frames(tmp_path / f"clip{i}", VIDEOS[i]) for i in range(4)]
    outputs = {}
    for dtype in ("fp32", "bf16"):
        assert (
            main(
                [
                    "translate",
                    "--model",
                    str(model_dir),
                    *map(str, clips),
                    "--dtype",
                    dtype,
                    "--num-beams",
                    "2",
                    "--max-new-tokens",
                    "8",
                ]
            )
            == 0
        )
        outputs[dtype] = capsys.readouterr().out.splitlines()
    assert outputs["fp32"] == [f"{clip}\t{text}" for clip, text in zip(clips, TEXTS)]
    assert sum(a == b for a, b in zip(outputs["fp32"], outputs["bf16"])) >= 3  # bf16 rounding may flip a close call
    assert (
        main(
            [
                "evaluate",
                "--model",
                str(model_dir),
                "--dataset",
                "synthetic",
                "--option",
                "num_train=0",
                "--option",
                "num_validation=0",
                "--option",
                "num_test=2",
                "--option",
                "resolution=32",
                "--dtype",
                "bf16",
                "--max-new-tokens",
                "6",
                "--output-dir",
                str(tmp_path / "eval"),
                "--cache-dir",
                str(tmp_path / "cache"),
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "eval" / "metrics_test.json").read_text())["dtype"] == "bf16"
