"""`flallm prepare`: parquet shards + card that plain `datasets.load_dataset` opens; resumable; pushable."""

import base64
import json
import logging
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import datasets
import numpy as np
import pytest
import yaml

from data_builders import decode_video, load_sign_dataset
from data_builders import prepare as prepare_module
from data_builders.prepare import prepare_dataset
from data_builders.testing import write_csl_daily, write_how2sign, write_phoenix14t
from train.cli import main as cli_main

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory):
    root = tmp_path_factory.mktemp("phoenix")
    release = write_phoenix14t(root / "raw")
    raw = load_sign_dataset("phoenix14t", release, cache_dir=str(root / "cache"))
    output = prepare_dataset("phoenix14t", root / "prepared", data_dir=release, examples_per_shard=2)
    return release, raw, output


def test_plain_load_dataset_round_trip(phoenix, tmp_path):
    _, raw, output = phoenix
    assert sorted(p.name for p in (output / "data").iterdir()) == [
        "test-00000-of-00001.parquet",
        "train-00000-of-00002.parquet",
        "train-00001-of-00002.parquet",
        "validation-00000-of-00001.parquet",
    ]
    prepared = datasets.load_dataset(str(output), cache_dir=str(tmp_path))  # no flallm code involved
    assert list(prepared) == ["train", "validation", "test"]
    for split in raw:
        for column in ("id", "text", "gloss", "signer", "num_frames", "fps"):
            assert prepared[split][column] == raw[split][column]
    example, original = prepared["train"][1], raw["train"][1]
    assert len(example["video"]) == example["num_frames"]
    assert example["video"][0].size == (21, 26)  # PIL (width, height): PHOENIX-like frames are not resized
    frames = np.stack([np.asarray(image) for image in example["video"]])
    assert np.abs(frames.astype(int) - decode_video(original["video"]).astype(int)).max() <= 4  # JPEG
    card = yaml.safe_load((output / "README.md").read_text(encoding="utf-8").split("---\n")[1])
    assert card["license"] == "cc-by-nc-sa-3.0" and card["language"] == ["de"]
    assert [s["num_examples"] for s in card["dataset_info"]["splits"]] == [3, 2, 2]
    assert "camgoz2018neural" in (output / "README.md").read_text(encoding="utf-8")


def test_load_sign_dataset_reads_prepared_frames_lazily(phoenix):
    _, raw, output = phoenix
    prepared = load_sign_dataset(str(output))
    example = prepared["validation"][0]
    assert isinstance(example["video"][0], dict) and example["video"][0]["bytes"][:2] == b"\xff\xd8"
    frames = decode_video(example["video"], indices=[2, 0])
    assert frames.shape == (2, 26, 21, 3)
    expected = decode_video(raw["validation"][0]["video"], indices=[2, 0])
    assert np.abs(frames.astype(int) - expected.astype(int)).max() <= 4
    streamed = next(iter(load_sign_dataset(str(output), streaming=True)["validation"]))
    assert streamed["id"] == example["id"] and decode_video(streamed["video"], [1]).shape == (1, 26, 21, 3)


def test_how2sign_clips_are_prepared_frame_by_frame(tmp_path):
    release = write_how2sign(tmp_path / "raw", size=(16, 24))
    raw = load_sign_dataset("how2sign", release, cache_dir=str(tmp_path / "cache"))["validation"]
    output = prepare_dataset("how2sign", tmp_path / "out", data_dir=release, resolution=8)
    prepared = load_sign_dataset(str(output))["validation"]
    assert prepared["num_frames"] == raw["num_frames"] and prepared["fps"] == raw["fps"]
    assert decode_video(prepared[0]["video"]).shape == (raw[0]["num_frames"], 8, 12, 3)  # 16x24 -> shorter side 8


def test_resolution_caps_the_shorter_side(tmp_path):
    release = write_csl_daily(tmp_path / "raw")
    output = prepare_dataset("csl_daily", tmp_path / "out", data_dir=release, resolution=8)
    example = load_sign_dataset(str(output))["test"][0]
    assert decode_video(example["video"]).shape[1:] == (8, 8, 3)
    assert yaml.safe_load((output / "README.md").read_text(encoding="utf-8").split("---\n")[1])["license"] == "other"


def test_interrupted_run_leaves_no_complete_looking_shard_and_resumes(tmp_path, monkeypatch):
    release = write_phoenix14t(tmp_path / "raw")
    output = tmp_path / "out"
    real_encode = prepare_module._encode_example
    calls = []

    def encode_then_crash(builder, row, *args):
        calls.append(row["name"])
        if len(calls) == 3:  # the one example of the second train shard
            raise KeyboardInterrupt
        return real_encode(builder, row, *args)

    monkeypatch.setattr(prepare_module, "_encode_example", encode_then_crash)
    with pytest.raises(KeyboardInterrupt):
        prepare_dataset("phoenix14t", output, data_dir=release, examples_per_shard=2)
    data = output / "data"
    assert sorted(p.name for p in data.glob("*.parquet")) == ["train-00000-of-00002.parquet"]
    assert not [p.name for p in data.iterdir() if p.name.endswith(".tmp")]  # the failed shard's part is removed
    # A killed process (no exception to clean up after) leaves its part behind: the next run removes it.
    (data / ".train-00001-of-00002.parquet.tmp").write_bytes(b"PAR1 half a shard")
    assert not (output / "README.md").exists()
    first_shard_mtime = (data / "train-00000-of-00002.parquet").stat().st_mtime_ns
    # The interrupted folder loads as nothing: every reader says it is incomplete and how to resume.
    incomplete = r"out is an incomplete `flallm prepare` output .*run the same `flallm prepare` command again"
    with pytest.raises(ValueError, match=incomplete):
        load_sign_dataset(str(output))
    with pytest.raises(SystemExit, match=incomplete):
        cli_main(
            [
                "train",
                "--config",
                "synthetic_stage1.yaml",
                f"data.dataset={output}",
                "data.options={}",
                "--output-dir",
                str(tmp_path / "run"),
            ]
        )
    assert not (tmp_path / "run" / "best").exists()

    monkeypatch.setattr(prepare_module, "_encode_example", real_encode)
    prepare_dataset("phoenix14t", output, data_dir=release, examples_per_shard=2)
    assert (data / "train-00000-of-00002.parquet").stat().st_mtime_ns == first_shard_mtime  # not redone
    assert not [p for p in data.iterdir() if p.name.endswith(".tmp")]
    assert datasets.load_dataset(str(output), cache_dir=str(tmp_path / "c"))["train"].num_rows == 3

    with pytest.raises(ValueError, match="other settings"):
        prepare_dataset("phoenix14t", output, data_dir=release, examples_per_shard=2, jpeg_quality=50)
    prepare_dataset("phoenix14t", output, data_dir=release, examples_per_shard=5, overwrite=True)
    assert len(list(data.glob("train-*.parquet"))) == 1


def test_corrupt_frame_is_named_or_skipped_with_a_count(tmp_path, caplog):
    release = write_phoenix14t(tmp_path / "raw")
    folder = sorted((release / "features" / "fullFrame-210x260px" / "test").iterdir())[0]
    (folder / "images0001.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(ValueError, match=rf"sample {folder.name}: .*images0001\.png: could not decode the frame"):
        prepare_dataset("phoenix14t", tmp_path / "out", data_dir=release)
    with caplog.at_level(logging.WARNING):
        output = prepare_dataset("phoenix14t", tmp_path / "skip", data_dir=release, skip_bad_samples=True)
    assert "skipped 1 bad samples in total" in caplog.text
    prepared = datasets.load_dataset(str(output), cache_dir=str(tmp_path / "c"))
    assert prepared["test"].num_rows == 1 and folder.name not in prepared["test"]["id"]


def test_cli_prepares_synthetic_with_options(tmp_path):
    output = tmp_path / "synthetic"
    code = cli_main(
        [
            "prepare",
            "synthetic",
            "--output-dir",
            str(output),
            "--resolution",
            "24",
            "--option",
            "num_train=6",
            "--examples-per-shard",
            "2",
            "--num-proc",
            "2",
            "--option",
            "num_validation=2",
            "--option",
            "num_test=0",
            "--option",
            "fps=8",
        ]
    )
    assert code == 0
    prepared = datasets.load_dataset(str(output), cache_dir=str(tmp_path / "c"))
    assert {s: len(prepared[s]) for s in prepared} == {"train": 6, "validation": 2}  # no file for an empty split
    assert len(list((output / "data").glob("train-*-of-00003.parquet"))) == 3  # written by two processes
    assert len(load_sign_dataset(str(output))["test"]) == 0  # ... which load_sign_dataset adds back
    example = prepared["train"][0]
    assert (
        example["fps"] == 8.0
        and example["video"][0].size == (24, 24)
        and len(example["video"]) == example["num_frames"]
    )
    raw = load_sign_dataset(
        "synthetic", cache_dir=str(tmp_path / "raw"), num_train=6, num_validation=2, num_test=0, fps=8, resolution=24
    )
    assert prepared["train"]["text"] == raw["train"]["text"]


class _DatasetHub(BaseHTTPRequestHandler):
    """Just enough of the Hub for create_repo + upload_folder of a dataset (files sent inline)."""

    commits: list = []

    def log_message(self, *args):
        pass

    def _reply(self, body):
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.startswith("/api/repos/create"):
            payload = json.loads(body)
            return self._reply(
                {"url": f"http://{self.headers['Host']}/datasets/{payload['organization']}/{payload['name']}"}
            )
        if self.path.startswith("/api/validate-yaml"):
            return self._reply({"errors": [], "warnings": []})
        if "/preupload/" in self.path:
            files = json.loads(body)["files"]
            return self._reply(
                {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]}
            )
        if "/commit/" in self.path:
            lines = [json.loads(line) for line in body.splitlines() if line.strip()]
            files = {
                op["value"]["path"]: base64.b64decode(op["value"]["content"]) for op in lines if op["key"] == "file"
            }
            type(self).commits.append((self.path, files))
            repo_id = self.path[len("/api/datasets/") :].split("/commit/")[0]
            return self._reply(
                {
                    "commitUrl": f"http://{self.headers['Host']}/datasets/{repo_id}/commit/{'0' * 40}",
                    "commitOid": "0" * 40,
                }
            )
        self.send_response(404)
        self.send_header("X-Error-Code", "EntryNotFound")
        self.end_headers()

    do_GET = do_HEAD = lambda self: (
        self.send_response(404),
        self.send_header("X-Error-Code", "EntryNotFound"),
        self.end_headers(),
    )


def test_push_to_hub_uploads_card_and_shards_only(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _DatasetHub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = dict(
        os.environ,
        HF_ENDPOINT=f"http://127.0.0.1:{server.server_address[1]}",
        HF_TOKEN="hf_test",
        HF_HUB_OFFLINE="0",
        HF_HOME=str(tmp_path / "hf"),
        HF_HUB_DISABLE_PROGRESS_BARS="1",
    )
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "train.cli",
                "prepare",
                "synthetic",
                "--output-dir",
                str(tmp_path / "out"),
                "--option",
                "num_train=3",
                "--option",
                "num_validation=1",
                "--option",
                "num_test=1",
                "--resolution",
                "16",
                "--push-to-hub",
                "someone/synthetic-signs",
            ],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(_DatasetHub.commits) == 1
    path, files = _DatasetHub.commits[0]
    assert path.startswith("/api/datasets/someone/synthetic-signs/commit/")
    assert sorted(files) == [
        "README.md",
        "data/test-00000-of-00001.parquet",
        "data/train-00000-of-00001.parquet",
        "data/validation-00000-of-00001.parquet",
    ]
    assert files["README.md"] == (tmp_path / "out" / "README.md").read_bytes()


def test_a_folder_that_is_not_a_prepared_dataset_is_named(tmp_path):
    (tmp_path / "data").mkdir()
    datasets.Dataset.from_dict({"id": ["a"], "text": ["b"]}).to_parquet(str(tmp_path / "data" / "train-00000.parquet"))
    with pytest.raises(
        ValueError, match=rf"{tmp_path}: lacks column\(s\) \['gloss', 'signer', 'num_frames', 'fps', 'video'\]"
    ):
        load_sign_dataset(str(tmp_path), cache_dir=str(tmp_path / "cache"))


def test_a_deleted_or_truncated_shard_is_named_and_rewritten_by_a_rerun(tmp_path):
    release = write_phoenix14t(tmp_path / "raw")
    output = prepare_dataset("phoenix14t", tmp_path / "out", data_dir=release, examples_per_shard=2)
    shard = output / "data" / "train-00001-of-00002.parquet"
    content = shard.read_bytes()
    shard.write_bytes(content[: len(content) // 2])
    with pytest.raises(
        ValueError, match=rf"shard data/{shard.name} has {len(content) // 2} bytes, {len(content)} when written"
    ):
        load_sign_dataset(str(output))
    shard.unlink()
    with pytest.raises(ValueError, match=rf"shard data/{shard.name} is missing"):
        load_sign_dataset(str(output))
    shard.write_bytes(content[:100])
    prepare_dataset("phoenix14t", output, data_dir=release, examples_per_shard=2)  # resumes: rewrites that shard only
    assert shard.read_bytes() == content and len(load_sign_dataset(str(output))["train"]) == 3


HOLD_LOCK = """
import sys, time
from data_builders.common import directory_lock
with directory_lock(sys.argv[1], "flallm prepare phoenix14t"):
    print("held", flush=True)
    time.sleep(60)
"""


def test_a_second_run_into_a_folder_stops_at_once_and_a_killed_run_leaves_no_stale_lock(tmp_path):
    from data_builders.common import DirectoryInUseError

    release = write_phoenix14t(tmp_path / "raw")
    output = tmp_path / "out"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(output)], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(
            DirectoryInUseError, match=rf"{output} is in use by `flallm prepare phoenix14t` \(pid {holder.pid} "
        ):
            prepare_dataset("phoenix14t", output, data_dir=release)
        with pytest.raises(SystemExit, match=rf"{output} is in use by"):
            cli_main(["train", "--config", "synthetic_stage1.yaml", "--output-dir", str(output)])
    finally:
        holder.kill()  # kill -9: the OS releases its lock
        holder.wait()
    prepare_dataset("phoenix14t", output, data_dir=release)
    assert len(load_sign_dataset(str(output))["train"]) == 3
