"""The GPU suite (bench/gpu_suite.sh) runs every part end to end: here on tiny shapes on the CPU (`--cpu-smoke`), so
that a session lent a GPU spends its minutes measuring, not debugging the script."""

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_gpu_suite_runs_every_part_on_the_cpu(tmp_path):
    process = subprocess.run(
        ["bash", str(ROOT / "bench" / "gpu_suite.sh"), "--cpu-smoke", "--output", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "HOME": str(tmp_path)},
    )
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_suite.json").read_text())
    assert report["smoke"] is True
    assert set(report["parts"]) == {
        "stage1_mfu",
        "stage1_memory_batch1",
        "stage1_memory_batch2",
        "stage2_step",
        "loader",
    }
    assert all(part["status"] == "ok" for part in report["parts"].values())
    measures = [row["measure"] for row in report["summary"]]
    assert any(m.startswith("stage 1, channels_last") for m in measures)
    assert any(m.startswith("stage 2 step") for m in measures) and "stage-1 step consumes" in measures
    loader = report["parts"]["loader"]["result"]
    assert loader["step"]["frames_per_second"] > 0 and all(row["frames_per_second"] > 0 for row in loader["loaders"])
    assert "| measure | result |" in process.stdout


def test_the_gpu_commands_use_only_flags_their_scripts_have():
    """The GPU run itself cannot be tried here: at least every flag it passes must exist (a typo would cost a GPU
    session its minutes)."""
    sys.path.insert(0, str(ROOT / "bench"))
    import gpu_suite

    helps = {}
    for part in gpu_suite.parts(smoke=False, workers=[0, 4, 8, 16]):
        script = part["command"][0]
        if script not in helps:
            helps[script] = subprocess.run(
                [sys.executable, str(ROOT / "bench" / script), "--help"], capture_output=True, text=True, timeout=120
            ).stdout
        flags = [arg for arg in part["command"][1:] if arg.startswith("--")]
        known = set(re.findall(r"(?<![\w-])--[\w-]+", helps[script]))  # the flags the script's --help lists
        assert flags and set(flags) <= known, (part["name"], sorted(set(flags) - known))
    assert sum(part["timeout"] for part in gpu_suite.parts(smoke=False, workers=[0])) <= 600  # ~8-10 minutes
