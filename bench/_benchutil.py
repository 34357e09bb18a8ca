"""Shared helpers of the bench/ scripts: paper-size models, machine description, memory, tables.

Not a library module: the bench scripts import it from their own folder (`python bench/x.py`).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

GIB = 1024**3

# Dense bf16 tensor-core peaks (TFLOP/s, no sparsity) from the vendors' data sheets, for MFU.
GPU_PEAK_BF16_TFLOPS = {"H100": 989.4, "H200": 989.4, "A100": 312.0}


# ------------------------------------------------------------------------------------------------
# Machine


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> str:
    try:
        return " ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "n/a"


def machine_info(torch_threads: int | None = None, device: str = "cpu") -> dict:
    import torch

    info = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch_threads if torch_threads is not None else torch.get_num_threads(),
        "load_average_start": load_average(),
        "python": platform.python_version(),
        "command": " ".join([Path(sys.executable).name] + sys.argv),
    }
    with contextlib.suppress(ValueError, OSError):  # not every platform has these sysconf names
        info["mem_total_gib"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB, 1)
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def print_machine(info: dict) -> None:
    print(f"# {info['date']}: {info['command']}")
    print(
        f"# machine: {info['cpu']}, {info['cpus_usable']} usable CPUs, {info.get('mem_total_gib', '?')} GiB RAM, "
        f"torch {info['torch']} ({info['torch_threads']} threads)" + (f", GPU {info['gpu']}" if "gpu" in info else "")
    )
    print(
        f"# load average at start: {info['load_average_start']}"
        + (f"; at end: {info['load_average_end']}" if "load_average_end" in info else "")
    )


def gpu_peak_tflops(name: str | None) -> float | None:
    for key, value in GPU_PEAK_BF16_TFLOPS.items():
        if name and key in name:
            return value
    return None


# ------------------------------------------------------------------------------------------------
# Models (random weights; shapes of the paper)


def stage1_config(vocab_size: int = 3000, **overrides):
    """Paper stage 1: ResNet-18 + Conv1D(k5, 1024) + VL-adapter (1024) + Light-T 3+3 d512 8 heads FFN 2048."""
    from modeling_flallm import FlaLlmConfig
    from modeling_flallm.configuration_flallm import LIGHT_T_DEFAULTS

    text = {**LIGHT_T_DEFAULTS, "model_type": "mbart", "vocab_size": vocab_size}
    return FlaLlmConfig(text_config=text, **overrides)


def mbart_large_text_config(vocab_size: int = 3000) -> dict:
    """mBART-large-cc25's shape: 12+12 layers, d 1024, 16 heads, FFN 4096 (vocabulary 250027 untrimmed)."""
    return {
        "model_type": "mbart",
        "vocab_size": vocab_size,
        "d_model": 1024,
        "encoder_layers": 12,
        "decoder_layers": 12,
        "encoder_attention_heads": 16,
        "decoder_attention_heads": 16,
        "encoder_ffn_dim": 4096,
        "decoder_ffn_dim": 4096,
        "max_position_embeddings": 1024,
        "scale_embedding": True,
        "dropout": 0.1,
        "pad_token_id": 1,
        "bos_token_id": 0,
        "eos_token_id": 2,
        "decoder_start_token_id": 2,
    }


def stage2_config(vocab_size: int = 3000, **overrides):
    from modeling_flallm import FlaLlmConfig

    return FlaLlmConfig(
        text_config=mbart_large_text_config(vocab_size), stage="llm_fine_tuning", freeze="visual_encoder", **overrides
    )


def count_parameters(module) -> int:
    return sum(p.numel() for p in module.parameters())


# ------------------------------------------------------------------------------------------------
# Memory


def current_rss_bytes(pid: int | str = "self") -> int:
    """Resident set size now (bytes), from /proc."""
    try:
        with open(f"/proc/{pid}/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError):
        return 0


def peak_rss_bytes() -> int:
    """Peak resident set size of this process since it started (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class PeakRSS:
    """Samples this process's RSS every `interval` seconds in a thread: the peak within a window
    (ru_maxrss cannot be reset). torch releases the GIL inside its kernels, so the sampler runs."""

    def __init__(self, interval: float = 0.005):
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = None

    def __enter__(self):
        self.peak = current_rss_bytes()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, current_rss_bytes())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, current_rss_bytes())
        return False


class SavedTensorBytes:
    """Bytes autograd keeps for the backward pass (unique storages), via saved_tensors_hooks: the
    activation memory of a training step, independent of the allocator and of RSS noise."""

    def __init__(self):
        self.storages = {}

    def _pack(self, tensor):
        try:
            storage = tensor.untyped_storage()
            self.storages[storage.data_ptr()] = storage.nbytes()
        except (RuntimeError, NotImplementedError):
            pass
        return tensor

    def __enter__(self):
        import torch

        self._context = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda tensor: tensor)
        self._context.__enter__()
        return self

    def __exit__(self, *exc):
        return self._context.__exit__(*exc)

    @property
    def total(self) -> int:
        return sum(self.storages.values())


# ------------------------------------------------------------------------------------------------
# Children: one configuration per process, so peak RSS is per configuration and a failure
# (compile error, memory cap) does not end the benchmark.


def run_child(argv: list[str], max_rss_bytes: int | None = None, timeout: float | None = None) -> dict:
    """Runs `python argv...` and returns the JSON object it prints on its last stdout line.

    With `max_rss_bytes`, the child is killed when its RSS passes the cap (reported as
    {"error": "rss cap ..."}), so no configuration can exhaust a shared machine.
    """
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable] + argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak, killed = 0, None
    output = {}

    def drain(stream, key):
        output[key] = stream.read()

    threads = [
        threading.Thread(target=drain, args=(process.stdout, "out"), daemon=True),
        threading.Thread(target=drain, args=(process.stderr, "err"), daemon=True),
    ]
    for thread in threads:
        thread.start()
    while process.poll() is None:
        rss = current_rss_bytes(process.pid)
        peak = max(peak, rss)
        if max_rss_bytes is not None and rss > max_rss_bytes:
            killed = f"killed: RSS {rss / GIB:.2f} GiB passed the cap --max-rss-gib {max_rss_bytes / GIB:g}"
            process.kill()
        elif timeout is not None and time.perf_counter() - start > timeout:
            killed = f"killed: ran past {timeout:.0f} s"
            process.kill()
        time.sleep(0.02)
    for thread in threads:
        thread.join()
    if killed:
        return {"error": killed, "observed_peak_rss_gib": round(peak / GIB, 3)}
    lines = [line for line in output.get("out", "").splitlines() if line.startswith("{")]
    if process.returncode != 0 or not lines:
        tail = output.get("err", "").strip().splitlines()[-3:]
        return {"error": f"exit {process.returncode}: " + " | ".join(tail)[-400:]}
    return json.loads(lines[-1])


# ------------------------------------------------------------------------------------------------
# Output


def markdown_table(rows: list[dict], columns: list[tuple[str, str]]) -> str:
    """`columns`: (key, header) pairs; missing values print as '-'."""

    def cell(value):
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
        return str(value)

    lines = ["| " + " | ".join(header for _, header in columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(cell(row.get(key)) for key, _ in columns) + " |")
    return "\n".join(lines)


def write_json(path: str | None, payload: dict) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(payload, indent=1, default=str), encoding="utf-8")
        print(f"# wrote {path}")
