"""`flallm train`: one FLa-LLM training stage on Accelerate, readable top to bottom.

    flallm train --config train/configs/phoenix14t_stage1.yaml data.data_dir=/data/PHOENIX-2014-T
    accelerate launch --multi_gpu --num_processes 4 -m train.cli train --config ...

Stage 1 ("visual initialing") trains visual encoder + VL-adapter + Light-T; stage 2 ("LLM fine-tuning")
starts from a stage-1 export and a language model, freezes the visual encoder and fine-tunes
LLM-adapter + LLM with their own learning rates. `train(config)` runs whichever stage the config says,
on one CPU, one GPU or the processes `accelerate launch` starts (DDP; FSDP/DeepSpeed via Accelerate
config files). The loop follows Accelerate's `nlp_example.py`: prepare, then for each batch
forward / backward / step, validating on the dev split and exporting the best model by dev BLEU-4.

Determinism and resuming: the batch order of epoch e is a function of (seed, e); train-time
augmentation of a batch is seeded by (seed, epoch, example ids) (`train.sampling`); and the torch RNG is
reseeded before every batch from (seed, epoch, batch, process), as fairseq reseeds per update. A run
resumed from a checkpoint therefore continues exactly as the uninterrupted run would have.

The model and processor come from `train.model_building`, the optimizer from `train.optimizer`, validation and
export from `train.validation`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from data_builders.common import DirectoryInUseError, directory_lock, write_text_atomic

from . import checkpointing
from .checkpointing import TrainerState
from .config import TrainConfig, load_config
from .diagnostics import module_grad_norms
from .model_building import build_model, stage1_export
from .optimizer import build_optimizer, build_scheduler
from .sampling import EpochShuffleSampler, SeededCollator, seed_of, sign_collator
from .validation import evaluate, export, final_metrics, sync_batchnorm_statistics

logger = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """The loss (or the gradient norm) became NaN/inf: training stops, checkpoints stay as they were."""


@dataclass
class TrainResult:
    output_dir: Path
    export_dir: Path  # save_pretrained dir of the best model by dev metric (+ processor, config, metrics)
    metrics: dict  # {"validation": record of the exported model, "test": record} (records as train.metrics gives)
    best_metric: float | None
    best_step: int | None
    global_step: int
    history: list = field(default_factory=list)  # every dev evaluation


# ------------------------------------------------------------------------------------------------
# Run setup


def _mixed_precision(setting: str) -> str | None:
    """`auto`: what `accelerate launch` was told, else bf16 on a GPU that supports it, else none."""
    if setting != "auto":
        return setting
    if os.environ.get("ACCELERATE_MIXED_PRECISION"):
        return None
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"


def _has_accelerator_device() -> bool:
    if hasattr(torch, "accelerator"):
        return torch.accelerator.is_available()
    return torch.cuda.is_available()


def _trackers(report_to):
    import importlib.util

    if report_to == "auto":
        return (
            ["tensorboard"]
            if importlib.util.find_spec("tensorboard") or importlib.util.find_spec("tensorboardX")
            else None
        )
    if report_to in ("none", None, []):
        return None
    return report_to


def _resume_checkpoint(config: TrainConfig, checkpoint_dir: Path) -> Path | None:
    resume = config.checkpointing.resume
    latest = checkpointing.latest_checkpoint(checkpoint_dir)
    if resume == "auto":
        return latest
    if resume is True:
        if latest is None:
            raise FileNotFoundError(f"resume requested but {checkpoint_dir} holds no complete checkpoint")
        return latest
    if resume is False:
        if latest is not None:
            raise ValueError(
                f"{checkpoint_dir} already holds checkpoints (latest {latest.name}) and resume is off: "
                "pass --resume to continue that run, or choose another output_dir"
            )
        return None
    path = Path(resume)
    checkpointing.read_state(path)  # raises when it is not a complete checkpoint
    return path


def _warn_about_changes(previous_path: Path, config: TrainConfig) -> None:
    """A resumed run may change settings (more epochs, another lr); say which, since results then differ."""
    import yaml

    if not previous_path.is_file():
        return
    before = _flat(yaml.safe_load(previous_path.read_text(encoding="utf-8")) or {})
    after = _flat(config.to_dict())
    changed = [
        f"{key}: {before.get(key)!r} -> {after.get(key)!r}"
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key) and key != "checkpointing.resume"
    ]
    if changed:
        logger.warning("Resuming with a changed config: %s", "; ".join(changed))


def _flat(data: dict, prefix: str = "") -> dict:
    """Config as scalar hyperparameters for the trackers."""
    flat = {}
    for key, value in data.items():
        if isinstance(value, dict) and value:
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value if isinstance(value, (int, float, str, bool)) else str(value)
    return flat


def _select(dataset, limit: int | None):
    return dataset.select(range(min(limit, len(dataset)))) if limit else dataset


def _load_splits(config: TrainConfig, datasets):
    if datasets is None:
        from data_builders import load_sign_dataset

        datasets = load_sign_dataset(
            config.data.dataset, config.data.data_dir, cache_dir=config.data.cache_dir, **config.data.options
        )
    splits = {}
    for role, name in (
        ("train", config.data.train_split),
        ("validation", config.data.validation_split),
        ("test", config.data.test_split),
    ):
        if name is None:
            splits[role] = None
            continue
        if name not in datasets:
            raise ValueError(
                f"data.{role}_split={name!r} is not a split of {config.data.dataset} (it has {list(datasets)})"
            )
        if len(datasets[name]) == 0:
            source = config.data.data_dir or config.data.dataset
            hint = "" if role == "train" else f" (data.{role}_split: null skips it)"
            raise ValueError(
                f"the {name!r} split of {source} has no examples: nothing to "
                f"{'train on' if role == 'train' else 'evaluate'}{hint}"
            )
        limit = config.data.max_train_samples if role == "train" else config.data.max_eval_samples
        splits[role] = _select(datasets[name], limit)
    return splits


# ------------------------------------------------------------------------------------------------
# The training loop


def train(config: TrainConfig | dict | str, datasets=None) -> TrainResult:
    """Run one training stage as `config` says; see the module docstring and docs/training.md for the config schema."""
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm

    config = resolve_config(config)
    with run_directory(config) as (accelerator, resume_from):
        set_seed(config.seed)

        # 1. Data, model, processor, optimizer and schedule
        splits = _load_splits(config, datasets)
        texts, init_dir = list(splits["train"]["text"]), Path(config.output_dir) / "init"
        model, processor = build_model(config, texts, init_dir, resume_from is not None, accelerator)
        use_cache = _use_feature_cache(config, model)
        batches_per_epoch, total_steps = training_length(config.training, len(splits["train"]), accelerator)
        optimizer = build_optimizer(model, config, accelerator.device)
        scheduler = build_scheduler(optimizer, config.scheduler, total_steps, accelerator.num_processes)
        model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
        run = StageRun(accelerator, model, processor, optimizer, scheduler, config, splits["validation"])
        state = resume_state(accelerator, config, resume_from)

        # 2. Training batches: augmented videos, or (stage 2) features of the frozen encoder, computed once
        train_loader, sampler, collate = training_batches(
            accelerator, model, processor, splits["train"], config, use_cache
        )
        accelerator.init_trackers(config.logging.project_name, config=_flat(config.to_dict()))
        trainable = [p for p in model.parameters() if p.requires_grad]
        last_eval_step = state.history[-1]["step"] if state.history else None
        accumulation, log_every = config.training.gradient_accumulation_steps, config.training.log_every_steps

        # 3. The loop
        progress = tqdm(
            total=total_steps,
            initial=state.global_step,
            desc=f"stage {config.stage}",
            unit="step",
            disable=not accelerator.is_local_main_process,
        )
        window = LogWindow()
        with progress:
            while state.epoch < config.training.epochs and state.global_step < total_steps:
                epoch = state.epoch
                # Accelerate's loader re-sets its sampler's epoch from its own counter at every pass: keep them equal.
                for seeded in (train_loader, sampler, collate):
                    seeded.set_epoch(epoch)
                loader = (
                    accelerator.skip_first_batches(train_loader, state.batches_in_epoch)
                    if state.batches_in_epoch  # a resumed epoch
                    else train_loader
                )
                model.train()
                for batch in window.timed(loader):
                    torch.manual_seed(
                        seed_of(config.seed, "step", epoch, state.batches_in_epoch, accelerator.process_index)
                    )
                    losses = training_step(run, trainable, batch, state)
                    state.batches_in_epoch += 1
                    window.add(losses, batch, state, accelerator.num_processes, accumulation)
                    if not accelerator.sync_gradients:
                        continue
                    state.global_step += 1
                    progress.update(1)
                    if _every(log_every, state.global_step) or state.global_step == total_steps:
                        steps = (state.global_step - 1) % log_every + 1  # optimizer steps in the window
                        logs = window.logs(steps, epoch + state.batches_in_epoch / batches_per_epoch)
                        log_training(run, progress, state, logs)
                        if window.windows:  # the first window holds the start-up (workers, first batches)
                            run.check_loader(window, steps)
                        window.reset()
                    if _every(config.evaluation.every_steps, state.global_step):
                        last_eval_step = run.validate_and_export(state)
                    mid_epoch = state.batches_in_epoch < batches_per_epoch  # the epoch's end saves below
                    if _every(config.checkpointing.every_steps, state.global_step) and mid_epoch:
                        run.save_checkpoint(state)
                    if state.global_step >= total_steps:
                        break
                if state.batches_in_epoch >= batches_per_epoch:
                    state.epoch, state.batches_in_epoch = epoch + 1, 0
                    if _every(config.evaluation.every_epochs, state.epoch) and last_eval_step != state.global_step:
                        last_eval_step = run.validate_and_export(state)
                run.save_checkpoint(state)

        # 4. Final model: validated (unless just done), exported, tested, pushed
        return finish(run, state, splits, last_eval_step)


# ------------------------------------------------------------------------------------------------
# The pieces of train(), in the order it uses them


def resolve_config(config: TrainConfig | dict | str) -> TrainConfig:
    """A config (object, dict or YAML path) with the stage's defaults filled in and its two directories checked."""
    if not isinstance(config, TrainConfig):
        config = load_config(config)
    config = config.resolved()
    for key, path in (("output_dir", Path(config.output_dir)), ("export_dir", Path(config.export_dir))):
        if path.exists() and not path.is_dir():
            raise ValueError(f"{key} {path} is a file: expected a directory (or a path that does not exist yet)")
    return config


@contextlib.contextmanager
def run_directory(config: TrainConfig):
    """Yields (accelerator, checkpoint to resume from or None) while this process holds the run directory: one run
    per output directory (a second one stops, naming the first), its log in train.log, its config in
    training_config.yaml. Whatever way the run ends, the lock, the log file and Accelerate's global state go."""
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration

    output_dir = Path(config.output_dir)
    checkpoint_dir = output_dir / "checkpoints"
    accelerator = Accelerator(
        cpu=not _has_accelerator_device(),  # several CPU processes (gloo) only form a group with cpu=True
        gradient_accumulation_steps=config.training.gradient_accumulation_steps,
        mixed_precision=_mixed_precision(config.training.mixed_precision),
        log_with=_trackers(config.logging.report_to),
        project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(output_dir / "runs")),
    )
    with contextlib.ExitStack() as cleanup:
        if accelerator.is_main_process:
            cleanup.enter_context(
                directory_lock(output_dir, f"flallm train (stage {config.stage}, config {config.output_dir})")
            )
            output_dir.mkdir(parents=True, exist_ok=True)
            checkpointing.remove_incomplete(checkpoint_dir)
            cleanup.enter_context(_log_file(output_dir / "train.log"))
        accelerator.wait_for_everyone()
        cleanup.callback(_release_accelerate_state)
        cleanup.callback(accelerator.end_training)
        resume_from = _resume_checkpoint(config, checkpoint_dir)
        if accelerator.is_main_process:
            if resume_from is not None:
                _warn_about_changes(output_dir / "training_config.yaml", config)
            write_text_atomic(output_dir / "training_config.yaml", config.to_yaml())
        logger.info(
            "Stage %d on %s (%d process(es), mixed precision %s), output %s",
            config.stage,
            accelerator.device,
            accelerator.num_processes,
            accelerator.mixed_precision,
            output_dir,
        )
        yield accelerator, resume_from


def _use_feature_cache(config: TrainConfig, model) -> bool:
    """Stage 2 trains on cached encoder features when asked and the encoder is frozen."""
    use_cache = config.feature_cache.enabled and model.config.freeze == "visual_encoder"
    if config.feature_cache.enabled and not use_cache:
        logger.warning(
            "feature_cache.enabled ignored: the visual encoder is not frozen (freeze=%s)", model.config.freeze
        )
    return use_cache


def training_length(training, num_examples: int, accelerator) -> tuple[int, int]:
    """(batches per epoch, total optimizer steps) of one process, from the `training` section."""
    batches_per_epoch = math.ceil(math.ceil(num_examples / training.batch_size) / accelerator.num_processes)
    total_steps = math.ceil(batches_per_epoch / training.gradient_accumulation_steps) * training.epochs
    if training.max_steps:
        total_steps = min(total_steps, training.max_steps)
    return batches_per_epoch, total_steps


def resume_state(accelerator, config: TrainConfig, resume_from: Path | None) -> TrainerState:
    """The trainer state (step, epoch, best score, history) of the checkpoint, or a fresh one."""
    if resume_from is None:
        return TrainerState()
    state = checkpointing.load_checkpoint(accelerator, resume_from)
    if state.best_step is not None and not (Path(config.export_dir) / "config.json").is_file():
        logger.warning(
            "The best model of this run (step %d) is missing from %s: the next evaluation exports again",
            state.best_step,
            config.export_dir,
        )
        state.best_metric = state.best_step = None
    return state


def _every(interval: int | None, count: int) -> bool:
    return bool(interval) and count % interval == 0


@dataclass
class StageRun:
    """What the loop's steps share: the prepared model, processor, optimizer and schedule of one stage."""

    accelerator: object
    model: torch.nn.Module
    processor: object
    optimizer: torch.optim.Optimizer
    scheduler: object
    config: TrainConfig
    dev_rows: object  # the validation split, or None
    # check_loader's totals since the first logging window
    waited_seconds: float = 0.0
    timed_seconds: float = 0.0
    timed_steps: int = 0
    loader_warned: bool = False

    @property
    def output_dir(self) -> Path:
        return Path(self.config.output_dir)

    def validate_and_export(self, state: TrainerState) -> int:
        """Dev evaluation; a new best dev score is exported right away. Returns the step it evaluated."""
        accelerator, config = self.accelerator, self.config
        sync_batchnorm_statistics(accelerator, self.model)
        if self.dev_rows is None:
            return state.global_step
        record = evaluate(
            accelerator, self.model, self.processor, self.dev_rows, config, "validation", state, self.output_dir
        )
        state.history.append(record)
        accelerator.log(
            {f"validation/{k}": v for k, v in record.items() if isinstance(v, (int, float))}, step=state.global_step
        )
        if accelerator.is_main_process:
            draw_curves(self.output_dir, state.history, config.evaluation.metric)
        score = record[config.evaluation.metric]
        if state.best_metric is None or score > state.best_metric:
            state.best_metric, state.best_step = score, state.global_step
            export(accelerator, self.model, self.processor, config, {"validation": record})
        return state.global_step

    def check_loader(self, window: LogWindow, steps: int) -> None:
        """Once per run, after LOADER_CHECK_STEPS optimizer steps (start-up excluded): say so when the steps waited
        for batches for more than LOADER_BOTTLENECK of the time."""
        if self.loader_warned:
            return
        self.waited_seconds += window.data_seconds
        self.timed_seconds += time.perf_counter() - window.start
        self.timed_steps += steps
        if self.timed_steps >= LOADER_CHECK_STEPS and self.waited_seconds > LOADER_BOTTLENECK * self.timed_seconds:
            self.loader_warned = True
            logger.warning(
                "the input pipeline is the bottleneck: %.0f%% of %d optimizer steps was spent waiting for batches "
                "(data.num_workers=%d, %d CPUs). Raise data.num_workers, train on a `flallm prepare`d copy of the "
                "corpus, or (stage 2) use the feature cache; bench/bench_loader.py measures the loader.",
                100 * self.waited_seconds / self.timed_seconds,
                self.timed_steps,
                self.config.data.num_workers,
                os.cpu_count() or 1,
            )

    def save_checkpoint(self, state: TrainerState) -> None:
        sync_batchnorm_statistics(self.accelerator, self.model)
        checkpointing.save_checkpoint(
            self.accelerator, self.output_dir / "checkpoints", state, self.config.checkpointing.keep_last
        )


LOADER_BOTTLENECK = 0.25  # the share of step time spent waiting for batches above which `flallm train` warns
LOADER_CHECK_STEPS = 10  # ... measured over at least this many optimizer steps


@dataclass
class LogWindow:
    """Loss, frames and time waiting for batches since the last logging step (the running loss of the whole run is
    in the state)."""

    loss: float = 0.0  # summed over optimizer steps
    frames: int = 0
    data_seconds: float = 0.0
    start: float = field(default_factory=time.perf_counter)
    windows: int = 0  # logging steps so far in this run

    def timed(self, batches):
        """Yields the batches, adding the time spent waiting for each to `data_seconds`."""
        iterator = iter(batches)
        while True:
            start = time.perf_counter()
            try:
                batch = next(iterator)
            except StopIteration:
                return
            self.data_seconds += time.perf_counter() - start
            yield batch

    def reset(self) -> None:
        self.loss, self.frames, self.data_seconds, self.start = 0.0, 0, 0.0, time.perf_counter()
        self.windows += 1

    def add(self, losses: torch.Tensor, batch, state: TrainerState, num_processes: int, accumulation: int) -> None:
        loss = losses.mean().item()
        self.loss += loss / accumulation
        state.loss_sum += loss
        state.loss_count += 1
        mask = batch["visual_mask"] if "visual_mask" in batch else batch["pixel_mask"]
        self.frames += int(mask.sum()) * num_processes

    def logs(self, steps: int, epoch: float) -> dict:
        elapsed = time.perf_counter() - self.start
        return {
            "train/loss": self.loss / steps,
            "train/frames_per_second": self.frames / elapsed,
            "train/data_wait": self.data_seconds / elapsed,  # the share of the time spent waiting for batches
            "train/epoch": epoch,
        }


def finish(run: StageRun, state: TrainerState, splits: dict, last_eval_step: int | None) -> TrainResult:
    """After the loop: the last model validated (unless just done) and exported if best, the exported model scored
    on the test split, and pushed to the Hub when the config says so."""
    accelerator, config = run.accelerator, run.config
    if last_eval_step != state.global_step:
        run.validate_and_export(state)
        run.save_checkpoint(state)
    if run.dev_rows is None:
        sync_batchnorm_statistics(accelerator, run.model)
        export(accelerator, run.model, run.processor, config, {})
    metrics = final_metrics(accelerator, config, splits, state, run.output_dir)
    if accelerator.is_main_process and config.hub.push_to_hub:
        from .hub import push_stage_to_hub

        info = push_stage_to_hub(config.export_dir, config.hub.push_to_hub, private=config.hub.private)
        logger.info("Pushed %s to %s", config.export_dir, info.commit_url)
    accelerator.wait_for_everyone()
    return TrainResult(
        output_dir=run.output_dir,
        export_dir=Path(config.export_dir),
        metrics=metrics,
        best_metric=state.best_metric,
        best_step=state.best_step,
        global_step=state.global_step,
        history=state.history,
    )


def training_batches(accelerator, model, processor, rows, config: TrainConfig, use_cache: bool):
    """(loader, sampler, collate) of the training split: augmented videos, or (stage 2, the encoder frozen) the
    features of the frozen encoder, computed once (`train.feature_cache`). The sampler and collate are seeded per
    epoch (`train.sampling`); the caller sets their epoch."""
    from .feature_cache import FeatureCollator, default_cache_dir, load_or_compute

    if use_cache:
        rows = load_or_compute(
            accelerator.unwrap_model(model),
            processor.video_processor,
            rows,
            "train",
            sign_collator(processor, training=False, config=config),
            config.feature_cache.dir or default_cache_dir(),
            config.feature_cache.batch_size,
            accelerator.device,
            accelerator,
            config.data.num_workers,
        )
        train_collate = FeatureCollator(processor, config.data.max_target_length)
    else:
        # On a GPU, uint8 frames from the workers (a quarter of the bytes), normalised by the step on the device; on
        # the CPU the workers normalise, since the training process has no time to spare (bench/bench_loader.py).
        on_cpu = accelerator.device.type == "cpu"
        train_collate = sign_collator(processor, training=True, config=config, normalize=on_cpu)
    sampler = EpochShuffleSampler(len(rows), config.seed)
    collate = SeededCollator(train_collate, config.seed)
    loader = accelerator.prepare(
        DataLoader(
            rows,
            batch_size=config.training.batch_size,
            sampler=sampler,
            collate_fn=collate,
            num_workers=config.data.num_workers,
            pin_memory=accelerator.device.type == "cuda",
        )
    )
    return loader, sampler, collate


def training_step(run: StageRun, trainable: list, batch, state: TrainerState) -> torch.Tensor:
    """Forward, backward and (at the end of an accumulation window) the optimizer step of one batch; returns the
    loss of every process. A NaN/inf loss or gradient norm stops training before the weights change."""
    accelerator, model, optimizer, config, output_dir = (
        run.accelerator,
        run.model,
        run.optimizer,
        run.config,
        run.output_dir,
    )
    checkpoint_dir = output_dir / "checkpoints"
    if "pixel_values" in batch and batch["pixel_values"].dtype == torch.uint8:
        batch["pixel_values"] = run.processor.video_processor.normalize(batch["pixel_values"], batch["pixel_mask"])
    with accelerator.accumulate(model):
        loss = model(**batch).loss
        losses = accelerator.gather(loss.detach().float().reshape(1))
        if not torch.isfinite(losses).all():
            raise NonFiniteLossError(_nonfinite_message("loss", losses, state, checkpoint_dir))
        accelerator.backward(loss)
        every = config.logging.grad_norms_every_steps
        if every and accelerator.sync_gradients and (state.global_step + 1) % every == 0:
            log_grad_norms(accelerator, model, state.global_step + 1, output_dir)
        if accelerator.sync_gradients and accelerator.scaler is None:
            # The norm is needed anyway to catch inf gradients before they reach the weights.
            grad_norm = accelerator.clip_grad_norm_(trainable, config.training.max_grad_norm or math.inf)
            if grad_norm is not None and not torch.isfinite(torch.as_tensor(grad_norm)):  # DeepSpeed: may be None
                raise NonFiniteLossError(_nonfinite_message("gradient norm", grad_norm, state, checkpoint_dir))
        elif accelerator.sync_gradients and config.training.max_grad_norm:
            accelerator.clip_grad_norm_(trainable, config.training.max_grad_norm)  # fp16: the scaler skips inf steps
        optimizer.step()
        run.scheduler.step()
        optimizer.zero_grad()
    return losses


def log_training(run: StageRun, progress, state: TrainerState, logs: dict) -> None:
    """A logging step: the trackers (with each parameter group's rate), train_log.jsonl and the progress bar."""
    accelerator, optimizer, output_dir = run.accelerator, run.optimizer, run.output_dir
    logs = {**logs, **{f"train/lr_{group['name']}": group["lr"] for group in optimizer.param_groups}}
    accelerator.log(logs, step=state.global_step)
    lr = optimizer.param_groups[-1]["lr"]
    if accelerator.is_main_process:
        with open(output_dir / "train_log.jsonl", "a", encoding="utf-8") as file:
            record = {
                "step": state.global_step,
                "loss": logs["train/loss"],
                "lr": lr,
                "data_wait": logs["train/data_wait"],
            }
            file.write(json.dumps(record) + "\n")
    progress.set_postfix(
        refresh=False, loss=f"{logs['train/loss']:.3f}", lr=f"{lr:.2e}", fps=f"{logs['train/frames_per_second']:.0f}"
    )
    logger.debug("step %d %s", state.global_step, logs)


def draw_curves(output_dir: Path, history: list[dict], metric: str) -> None:
    """`curves.png`: training loss and learning rate (train_log.jsonl) and the dev metric over steps. A picture that
    cannot be drawn (no matplotlib backend, a full disk) is logged, never fatal to the run."""
    from .plots import plot_training_curves

    path = output_dir / "train_log.jsonl"
    records = {}
    if path.is_file():
        with open(path, encoding="utf-8") as file:
            for line in file:
                if line.strip():
                    record = json.loads(line)
                    records[record["step"]] = record  # a resumed run logs some steps again: the last one counts
    try:
        plot_training_curves([records[step] for step in sorted(records)], history, metric, output_dir / "curves.png")
    except Exception as error:  # noqa: BLE001
        logger.warning("could not draw %s: %s", output_dir / "curves.png", error)


def log_grad_norms(accelerator, model, step: int, output_dir: Path) -> None:
    """Per-module gradient norms (before clipping) to the trackers, train.log and grad_norms.jsonl."""
    norms = module_grad_norms(accelerator.unwrap_model(model))
    accelerator.log({f"grad_norm/{module}": value for module, value in norms.items()}, step=step)
    if accelerator.is_main_process:
        logger.info("gradient norms at step %d: %s", step, ", ".join(f"{k} {v:.3g}" for k, v in norms.items()))
        with open(output_dir / "grad_norms.jsonl", "a", encoding="utf-8") as file:
            file.write(json.dumps({"step": step, **norms}) + "\n")


def _release_accelerate_state() -> None:
    """Accelerate keeps one global state per process, so a second `train()` in the same process (stage 1
    then stage 2, as the demo does) could not pick another mixed precision or accumulation. Clear it
    (transformers' TrainingArguments does the same); the process group (PartialState) is kept."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=False)
    GradientState._reset_state()


@contextlib.contextmanager
def _log_file(path: Path):
    """Everything logged while inside also goes to `path`; our packages log at INFO at least."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    for name in ("train", "modeling_flallm", "data_builders"):
        package_logger = logging.getLogger(name)
        if package_logger.level == logging.NOTSET:
            package_logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()


def _nonfinite_message(what: str, values, state: TrainerState, checkpoint_dir: Path) -> str:
    latest = checkpointing.latest_checkpoint(checkpoint_dir)
    where = (
        f"the last good checkpoint is {latest} (resume with --resume, e.g. with a lower optimizer.lr or training.max_grad_norm)"
        if latest
        else "no checkpoint was written yet"
    )
    return (
        f"{what} is not finite ({values.flatten().tolist()}) at epoch {state.epoch}, batch {state.batches_in_epoch} "
        f"of the epoch, optimizer step {state.global_step}: training stopped before updating the weights; {where}."
    )


# ------------------------------------------------------------------------------------------------
# Command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="YAML training config (see train/configs/).")
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="Config overrides with dotted keys and YAML values, e.g. optimizer.lr=0.01 training.epochs=3.",
    )
    parser.add_argument("--output-dir", help="Run directory (same as output_dir=...).")
    parser.add_argument(
        "--stage1",
        metavar="DIR",
        help="Stage 2: the stage-1 run directory (its best/ export) or an export (same as model.stage1=...).",
    )
    resume = parser.add_mutually_exclusive_group()
    resume.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=None,
        metavar="CHECKPOINT",
        help="Continue from the latest checkpoint of the run (or from CHECKPOINT); fail if there is none.",
    )
    resume.add_argument(
        "--no-resume", action="store_true", help="Start fresh; fail if the run already has checkpoints."
    )
    parser.add_argument(
        "--push-to-hub", metavar="REPO_ID", help="Push the exported best model to this Hub repo at the end."
    )
    parser.add_argument("--print-config", action="store_true", help="Print the resolved config and exit.")


def run(args: argparse.Namespace) -> int:
    overrides = list(args.overrides)
    if args.output_dir:
        overrides.append(f"output_dir={args.output_dir}")
    if args.stage1:
        overrides.append(f"model.stage1={stage1_export(args.stage1)}")
    try:
        config = load_config(args.config, overrides)
    except (ValueError, FileNotFoundError) as error:
        raise SystemExit(f"flallm train: {error}") from None
    if args.resume is not None:
        config.checkpointing.resume = args.resume
    elif args.no_resume:
        config.checkpointing.resume = False
    if args.push_to_hub:
        config.hub.push_to_hub = args.push_to_hub
    if args.print_config:
        print(config.resolved().to_yaml(), end="")
        return 0
    main_process = int(os.environ.get("RANK", "0")) == 0  # set by accelerate launch / torchrun
    if not main_process:
        logging.getLogger().setLevel(logging.WARNING)  # one copy of the INFO log, from the main process
    try:
        result = train(config)
    except (NonFiniteLossError, checkpointing.CheckpointError) as error:
        logger.error("%s", error)
        return 1
    except (OSError, ValueError, DirectoryInUseError) as error:  # the message names the key, file or folder
        logger.debug("flallm train failed", exc_info=True)
        raise SystemExit(f"flallm train: {error}") from None
    summary = {
        split: {k: record[k] for k in ("bleu1", "bleu2", "bleu3", "bleu4", "rougeL") if k in record}
        for split, record in result.metrics.items()
        if isinstance(record, dict)
    }
    if main_process:
        print(json.dumps({"export_dir": str(result.export_dir), "best_step": result.best_step, **summary}, indent=2))
    return 0
