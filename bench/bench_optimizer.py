"""Time of one optimizer step: PyTorch's per-tensor loop, `foreach` and `fused` implementations, in one run.

    python bench/bench_optimizer.py [--models demo_stage1,demo_stage2,paper_stage1] [--repeats 30] [--threads 1] [--json out.json]

The trainer builds its optimizer with `train.optimizer.build_optimizer` (`optimizer.fused`, null: fused on
cpu/cuda/mps/xpu). On a CPU torch defaults to the per-tensor loop, which costs as much as a forward pass for the
small models of `flallm demo`. This script times `optimizer.step()` for SGD (stage 1 of the paper), Adam (stage 2)
and AdamW (the demo) over the trainable parameters of each model, with random gradients, the three
implementations interleaved repeat by repeat so that a change in machine load hits all of them.

Models (random weights): demo_stage1 / demo_stage2 are the `flallm demo` models (train/configs/demo_stage*.yaml,
vocabulary 502), paper_stage1 is the paper's stage 1 (ResNet-18, Light-T 3+3 d512, vocabulary 3000).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from _benchutil import count_parameters, machine_info, markdown_table, print_machine, stage1_config, write_json

from modeling_flallm import FlaLlmConfig, FlaLlmForSignTranslation
from train.config import TrainConfig
from train.optimizer import build_optimizer

DEMO_VOCABULARY = 502  # the demo LM's byte-level BPE vocabulary
DEMO_VISION = {"embedding_size": 16, "hidden_sizes": [16, 32, 64, 128], "depths": [1, 1, 1, 1], "layer_type": "basic"}
DEMO_LIGHT_T = {
    "model_type": "mbart",
    "vocab_size": DEMO_VOCABULARY,
    "encoder_layers": 2,
    "decoder_layers": 2,
    "d_model": 128,
    "encoder_attention_heads": 4,
    "decoder_attention_heads": 4,
    "encoder_ffn_dim": 256,
    "decoder_ffn_dim": 256,
    "max_position_embeddings": 128,
}
DEMO_LM = {
    **DEMO_LIGHT_T,
    "d_model": 256,
    "encoder_ffn_dim": 1024,
    "decoder_ffn_dim": 1024,
    "max_position_embeddings": 256,
}


def build_model(name: str) -> FlaLlmForSignTranslation:
    torch.manual_seed(0)
    if name == "paper_stage1":
        return FlaLlmForSignTranslation(stage1_config())
    common = {"vision_config": DEMO_VISION, "temporal_hidden_size": 128, "frame_sample_rate": 4}
    if name == "demo_stage1":
        return FlaLlmForSignTranslation(FlaLlmConfig(text_config=DEMO_LIGHT_T, adapter_hidden_size=128, **common))
    if name == "demo_stage2":
        return FlaLlmForSignTranslation(
            FlaLlmConfig(
                text_config=DEMO_LM, adapter_hidden_size=256, stage="llm_fine_tuning", freeze="visual_encoder", **common
            )
        )
    raise SystemExit(f"unknown model {name!r}: expected demo_stage1, demo_stage2 or paper_stage1")


def optimizer_for(model, name: str, implementation: str) -> torch.optim.Optimizer:
    stage = 2 if model.config.freeze == "visual_encoder" else 1
    settings = {"name": name, "lr": 1e-4}
    if implementation == "fused":
        settings["fused"] = True
    else:
        settings["fused"] = False
    optimizer = build_optimizer(model, TrainConfig.from_dict({"stage": stage, "optimizer": settings}).resolved())
    if implementation == "foreach":
        for group in optimizer.param_groups:
            group["foreach"] = True
    return optimizer


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="demo_stage1,demo_stage2,paper_stage1")
    parser.add_argument("--optimizers", default="sgd,adam,adamw")
    parser.add_argument(
        "--repeats", type=int, default=30, help="Timed steps per implementation (after 3 warm-up steps)."
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", help="Also write the rows and machine info here.")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    info = machine_info(args.threads)
    implementations = ("loop", "foreach", "fused")
    rows = []
    for model_name in args.models.split(","):
        model = build_model(model_name)
        trainable = [p for p in model.parameters() if p.requires_grad]
        for optimizer_name in args.optimizers.split(","):
            optimizers = {impl: optimizer_for(model, optimizer_name, impl) for impl in implementations}
            times = {impl: [] for impl in implementations}
            for repeat in range(args.repeats + 3):
                for impl, optimizer in optimizers.items():
                    for parameter in trainable:
                        parameter.grad = torch.randn_like(parameter)
                    start = time.perf_counter()
                    optimizer.step()
                    if repeat >= 3:
                        times[impl].append(time.perf_counter() - start)
            row = {
                "model": model_name,
                "parameters_m": count_parameters(model) / 1e6,
                "trainable_m": sum(p.numel() for p in trainable) / 1e6,
                "tensors": len(trainable),
                "optimizer": optimizer_name,
            }
            for impl in implementations:
                row[f"{impl}_ms"] = 1000 * statistics.median(times[impl])
            row["fused_speedup"] = row["loop_ms"] / row["fused_ms"]
            rows.append(row)
            del optimizers
    info["load_average_end"] = machine_info()["load_average_start"]
    print_machine(info)
    print(
        markdown_table(
            rows,
            [
                ("model", "model"),
                ("trainable_m", "trainable (M)"),
                ("tensors", "tensors"),
                ("optimizer", "optimizer"),
                ("loop_ms", "loop ms"),
                ("foreach_ms", "foreach ms"),
                ("fused_ms", "fused ms"),
                ("fused_speedup", "loop / fused"),
            ],
        )
    )
    write_json(args.json, {"machine": info, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
