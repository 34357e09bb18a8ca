"""Run `train.trainer.train` on the tiny corpus in its own process (killed / resumed / launched on 2 ranks by tests).

usage: python tests/_train_worker.py CONFIG_JSON DATA_CACHE_DIR [WEIGHTS_DIR]
With WEIGHTS_DIR, every process writes the weights it holds at each checkpoint to
WEIGHTS_DIR/weights-rank<N>.pt (the last write is the final state), so ranks can be compared.
"""

import json
import logging
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))

from _train_fixtures import tiny_corpus  # noqa: E402

from train import checkpointing, trainer  # noqa: E402


def main() -> None:
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("train").setLevel(logging.INFO)
    config = json.loads(sys.argv[1])
    if len(sys.argv) > 3:
        weights_dir = sys.argv[3]
        save_checkpoint = checkpointing.save_checkpoint

        def save_and_dump(accelerator, *args, **kwargs):
            path = save_checkpoint(accelerator, *args, **kwargs)
            model = accelerator.unwrap_model(accelerator._models[0])
            state = {key: value.detach().clone() for key, value in model.state_dict().items()}
            torch.save(state, os.path.join(weights_dir, f"weights-rank{accelerator.process_index}.pt"))
            return path

        checkpointing.save_checkpoint = save_and_dump
    result = trainer.train(config, datasets=tiny_corpus(sys.argv[2]))
    summary = json.dumps({"global_step": result.global_step, "best_step": result.best_step})
    if len(sys.argv) > 3:
        # One file per rank: two ranks printing to one pipe can interleave their lines.
        rank = os.environ.get("RANK", "0")
        with open(os.path.join(sys.argv[3], f"result-rank{rank}.json"), "w", encoding="utf-8") as handle:
            handle.write(summary)
    print("RESULT", summary)


if __name__ == "__main__":
    main()
