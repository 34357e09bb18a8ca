"""Resumable checkpoints, written so that a crash at any moment never leaves one that looks valid.

A checkpoint is `checkpoints/step-XXXXXXXX/`: Accelerate's `save_state` (model, optimizer, scheduler,
RNG states of every process) plus `trainer_state.json` (epoch, batches done in the epoch, optimizer
step, best dev score). It is written into `checkpoints/.tmp-step-XXXXXXXX/`, every file and the folder
are fsync'ed, `trainer_state.json` is written last, and only then is the folder renamed to its final
name (a rename is atomic on POSIX file systems). A folder without the `.tmp-` prefix therefore always
holds a complete checkpoint; leftovers of a crash are removed at the next start.
Multi-machine runs need `output_dir` on a shared file system (as Accelerate's own checkpointing does).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from data_builders.common import fsync_dir

logger = logging.getLogger(__name__)


class _TiedWeightsNotice(logging.Filter):
    """Drops Accelerate's "Removed shared tensor ... while saving" warning (one per checkpoint).

    The tensors it names are tied copies of the LM's embedding matrix; loading re-ties them, which the
    resume test verifies (a resumed run ends bit-identical to an uninterrupted one).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "Removed shared tensor" not in record.getMessage()


logging.getLogger("accelerate.utils.other").addFilter(_TiedWeightsNotice())

STATE_FILE = "trainer_state.json"
_NAME = re.compile(r"^step-(\d{8})$")


@dataclass
class TrainerState:
    """Where training stands: enough to continue exactly where a checkpoint was taken."""

    epoch: int = 0  # the epoch in progress (or the next one, when batches_in_epoch == 0)
    batches_in_epoch: int = 0  # batches of `epoch` already trained on (per process)
    global_step: int = 0  # optimizer steps taken
    best_metric: float | None = None
    best_step: int | None = None
    loss_sum: float = 0.0  # training loss summed since the last evaluation (reported with it)
    loss_count: int = 0
    history: list = field(default_factory=list)  # one record per evaluation

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TrainerState:
        return cls(**json.loads(text))


def fsync_tree(path: Path) -> None:
    """Flush every file under `path`, then the folders, to disk."""
    for root, _dirs, files in os.walk(path):
        for name in files:
            with open(os.path.join(root, name), "rb") as handle:
                os.fsync(handle.fileno())
        fsync_dir(Path(root))


def replace_dir(tmp: Path, final: Path) -> None:
    """Move a finished (fsync'ed) folder `tmp` to `final`, replacing an existing `final`."""
    old = None
    if final.exists():
        old = final.with_name(f".old-{final.name}")
        if old.exists():
            shutil.rmtree(old)
        os.rename(final, old)
    os.rename(tmp, final)
    fsync_dir(final.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


class CheckpointError(RuntimeError):
    """A checkpoint could not be written (e.g. a full disk); the message says which earlier one is intact."""


def checkpoint_name(global_step: int) -> str:
    return f"step-{global_step:08d}"


def list_checkpoints(checkpoint_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first (by optimizer step)."""
    checkpoint_dir = Path(checkpoint_dir)
    if not checkpoint_dir.is_dir():
        return []
    found = [p for p in checkpoint_dir.iterdir() if p.is_dir() and _NAME.match(p.name) and (p / STATE_FILE).is_file()]
    return sorted(found, key=lambda p: int(_NAME.match(p.name).group(1)))


def latest_checkpoint(checkpoint_dir: Path) -> Path | None:
    found = list_checkpoints(checkpoint_dir)
    return found[-1] if found else None


def remove_incomplete(checkpoint_dir: Path) -> None:
    """Delete what an interrupted save left behind (`.tmp-*`, `.old-*` folders)."""
    checkpoint_dir = Path(checkpoint_dir)
    if not checkpoint_dir.is_dir():
        return
    for path in checkpoint_dir.iterdir():
        if path.name.startswith((".tmp-", ".old-")):
            logger.warning("Removing %s, left by an interrupted checkpoint save", path)
            shutil.rmtree(path, ignore_errors=True)


def read_state(checkpoint: Path) -> TrainerState:
    path = Path(checkpoint) / STATE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{checkpoint} is not a complete checkpoint: {STATE_FILE} is missing")
    return TrainerState.from_json(path.read_text(encoding="utf-8"))


def save_checkpoint(accelerator, checkpoint_dir: Path, state: TrainerState, keep_last: int) -> Path:
    """Write a checkpoint atomically (all processes call this), then keep only the newest `keep_last`."""
    checkpoint_dir = Path(checkpoint_dir)
    final = checkpoint_dir / checkpoint_name(state.global_step)
    tmp = checkpoint_dir / f".tmp-{final.name}"
    if accelerator.is_main_process:
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            shutil.rmtree(tmp)
    accelerator.wait_for_everyone()
    try:
        accelerator.save_state(str(tmp))
        # save_state does not synchronize: another process may still be writing its RNG state.
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            (tmp / STATE_FILE).write_text(state.to_json(), encoding="utf-8")
            fsync_tree(tmp)
            replace_dir(tmp, final)
    except Exception as error:  # a full disk: OSError, SafetensorError, or torch's "unexpected pos ..." RuntimeError
        shutil.rmtree(tmp, ignore_errors=True)
        latest = latest_checkpoint(checkpoint_dir)
        intact = (
            f"the previous checkpoint {latest} is intact (resume from it)" if latest else "no earlier checkpoint exists"
        )
        raise CheckpointError(
            f"saving the checkpoint of step {state.global_step} into {checkpoint_dir} failed "
            f"({type(error).__name__}: {error}); is the disk full? The partial folder was removed; "
            f"{intact}."
        ) from error
    if accelerator.is_main_process:
        for old in list_checkpoints(checkpoint_dir)[:-keep_last]:
            shutil.rmtree(old, ignore_errors=True)
        logger.info("Saved checkpoint %s", final)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator, checkpoint: Path) -> TrainerState:
    """Restore model, optimizer, scheduler and RNG states; return the trainer state."""
    state = read_state(checkpoint)
    accelerator.load_state(str(checkpoint))
    logger.info(
        "Resumed from %s (epoch %d, batch %d, step %d)",
        checkpoint,
        state.epoch,
        state.batches_in_epoch,
        state.global_step,
    )
    return state
