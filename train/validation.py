"""Validation and export of a training run: scoring a split (predictions written to the run directory), the BatchNorm
statistics the processes share, the `save_pretrained` export of the best model, and the test score of that export."""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
from pathlib import Path

import torch

from data_builders.common import write_text_atomic

from . import checkpointing
from .checkpointing import TrainerState
from .config import TrainConfig
from .diagnostics import encoder_output_spread
from .sampling import sign_collator

logger = logging.getLogger(__name__)


def _full_parameters(accelerator, model):
    """FSDP (v1) shards parameters: generation needs them gathered first, since each process translates
    a different shard and beam search calls the model a different number of times on each.
    FSDP2 and DeepSpeed ZeRO-3 are not supported for validation (see README)."""
    from torch.distributed.fsdp import FullyShardedDataParallel

    if isinstance(model, FullyShardedDataParallel):
        return FullyShardedDataParallel.summon_full_params(model, writeback=False)
    return contextlib.nullcontext()


def sync_batchnorm_statistics(accelerator, model) -> None:
    """Average BatchNorm running statistics over processes (as timm's `distribute_bn` does).

    DDP all-reduces gradients but not buffers: each process updates its running mean/var from its
    own batches, so without this the ranks would validate, checkpoint and export different models.
    """
    from accelerate.utils import DistributedType

    if accelerator.num_processes == 1 or accelerator.distributed_type in (
        DistributedType.FSDP,
        DistributedType.DEEPSPEED,
    ):
        return
    for module in accelerator.unwrap_model(model).modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and module.track_running_stats:
            for buffer in (module.running_mean, module.running_var):
                buffer.copy_(accelerator.reduce(buffer.detach().clone(), reduction="mean"))


def evaluate(
    accelerator, model, processor, dataset, config: TrainConfig, split: str, state: TrainerState, run_dir: Path
) -> dict:
    """Translate and score a split with `train.evaluation.evaluate_model` (each process a shard, all get the
    record) and write its predictions to the run directory."""
    from .evaluation import evaluate_model

    with _full_parameters(accelerator, model):
        scores, predictions = evaluate_model(
            model,
            processor,
            dataset,
            language=config.data.language,
            batch_size=config.evaluation.batch_size,
            num_workers=config.data.num_workers,
            accelerator=accelerator,
            generate_kwargs={
                "num_beams": config.evaluation.num_beams,
                "max_new_tokens": config.evaluation.max_new_tokens,
            },
        )
    record = {"dataset": config.data.dataset, "split": split, **scores, "step": state.global_step, "epoch": state.epoch}
    if split == "validation":
        record["encoder_output_spread"] = _encoder_output_spread(accelerator, model, processor, dataset, config)
    if split == "validation" and state.loss_count:
        record["train_loss"] = state.loss_sum / state.loss_count
        state.loss_sum, state.loss_count = 0.0, 0
    if accelerator.is_main_process:
        path = run_dir / "predictions" / f"{split}-step{state.global_step:08d}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8") as handle:
            for prediction in predictions:
                handle.write(json.dumps(prediction, ensure_ascii=False) + "\n")
        logger.info(
            "%s at step %d: %s",
            split,
            state.global_step,
            ", ".join(f"{key} {record[key]:.2f}" for key in ("bleu1", "bleu4", "rougeL") if key in record)
            + (
                f", encoder output spread {record['encoder_output_spread']:.3g}"
                if "encoder_output_spread" in record
                else ""
            ),
        )
    return record


def _encoder_output_spread(accelerator, model, processor, dataset, config: TrainConfig, num_clips: int = 32) -> float:
    """`train.diagnostics.encoder_output_spread` on the first clips of the dev split (0 = the decoder reads the same
    for every clip: the language-prior trap)."""
    rows = [dataset[i] for i in range(min(num_clips, len(dataset)))]
    batch = sign_collator(processor, training=False, config=config)(rows)
    batch = {k: v.to(accelerator.device) for k, v in batch.items() if torch.is_tensor(v)}
    with _full_parameters(accelerator, model):
        return encoder_output_spread(accelerator.unwrap_model(model), batch)


def export(accelerator, model, processor, config: TrainConfig, metrics: dict) -> None:
    """Write the `save_pretrained` directory (model, processor, training_config.yaml, metrics.json) atomically."""
    export_dir = Path(config.export_dir)
    state_dict = accelerator.get_state_dict(model)  # every process takes part (FSDP/DeepSpeed gather)
    if accelerator.is_main_process:
        tmp = export_dir.with_name(f".tmp-{export_dir.name}")
        shutil.rmtree(tmp, ignore_errors=True)
        accelerator.unwrap_model(model).save_pretrained(tmp, state_dict=state_dict)
        processor.save_pretrained(tmp)
        (tmp / "training_config.yaml").write_text(config.to_yaml(), encoding="utf-8")
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False), encoding="utf-8")
        checkpointing.fsync_tree(tmp)
        export_dir.parent.mkdir(parents=True, exist_ok=True)
        checkpointing.replace_dir(tmp, export_dir)
        logger.info("Exported %s", export_dir)
    accelerator.wait_for_everyone()


def final_metrics(accelerator, config: TrainConfig, splits, state: TrainerState, output_dir: Path) -> dict:
    """Score the exported (best) model on the test split; write metrics.json in the export and the run dir."""
    from modeling_flallm import FlaLlmForSignTranslation, FlaLlmProcessor

    export_dir = Path(config.export_dir)
    metrics = json.loads((export_dir / "metrics.json").read_text(encoding="utf-8"))
    if splits["test"] is not None:
        best = FlaLlmForSignTranslation.from_pretrained(export_dir).to(accelerator.device)
        processor = FlaLlmProcessor.from_pretrained(export_dir)
        metrics["test"] = evaluate(accelerator, best, processor, splits["test"], config, "test", state, output_dir)
        # The record describes the exported model, not where training stopped.
        metrics["test"].update(
            {key: metrics.get("validation", {}).get(key, metrics["test"][key]) for key in ("step", "epoch")}
        )
        del best
    if accelerator.is_main_process:
        text = json.dumps(metrics, indent=2, ensure_ascii=False)
        write_text_atomic(export_dir / "metrics.json", text)
        summary = {
            **metrics,
            "best_step": state.best_step,
            "best_metric": state.best_metric,
            "metric": config.evaluation.metric,
            "global_step": state.global_step,
            "history": state.history,
        }
        write_text_atomic(output_dir / "metrics.json", json.dumps(summary, indent=2, ensure_ascii=False))
    accelerator.wait_for_everyone()
    return metrics
