"""The `flallm` command line: one sub-command per job.

Each sub-command lives in its own module, which defines `add_arguments(parser)` and
`run(args) -> int`. Only the module of the command being run is imported, so `flallm --help`
stays fast.
"""

import argparse
import importlib
import logging
import os
import sys

COMMANDS = {
    "prepare": ("data_builders.prepare", "Prepare a corpus once into Hub-ready parquet shards."),
    "train": ("train.trainer", "Train one stage from a YAML config (stage 1 or stage 2)."),
    "demo": ("train.demo", "Synthetic corpus -> stage 1 -> stage 2 -> metrics, offline."),
    "pretrain-lm": ("train.pretrain_lm", "Train a tokenizer and pre-train a small mBART on a corpus's text, offline."),
    "study": ("train.study", "Run one of the paper's ablation tables over seeds, beside the paper's numbers."),
    "evaluate": ("train.evaluation", "Translate a split and score it (BLEU-1..4, ROUGE-L, chrF)."),
    "translate": ("train.translate", "Translate video files or frame folders."),
    "app": ("train.app", "A local Gradio page to try a model on videos (needs the app extra)."),
    "push": ("train.hub", "Push an exported stage directory to the Hub with a model card."),
}


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (a beam size, batch size or token count)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value}")
    return value


def model_argument(text: str) -> str:
    """argparse type of --model: a model directory (with config.json) or a Hub repo id (USER/NAME)."""
    from pathlib import Path

    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise argparse.ArgumentTypeError(
                f"{text} is a folder without config.json: expected a model directory "
                "(save_pretrained output, e.g. a run's best/)"
            )
        return str(path)
    if path.exists():
        raise argparse.ArgumentTypeError(f"{text} is a file: expected a model directory or a Hub repo id")
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(text)
    except HFValidationError:
        raise argparse.ArgumentTypeError(
            f"{text}: no such model directory (and not a Hub repo id, USER/NAME)"
        ) from None
    return text


DTYPES = {"fp32": "float32", "bf16": "bfloat16"}


def add_dtype_argument(parser: argparse.ArgumentParser) -> None:
    """`--dtype fp32|bf16`, the same for every command that runs a model."""
    parser.add_argument(
        "--dtype",
        choices=sorted(DTYPES),
        default="fp32",
        help="bf16: run under bfloat16 autocast (fp32 weights; faster on GPUs and on CPUs with "
        "AMX/AVX512-BF16, BENCHMARKS.md 'bf16 inference'); fp32 (default).",
    )


def inference_precision(name: str, device):
    """The context the model runs in for `--dtype`: bf16 autocast on `device`'s type, or nothing for fp32. Autocast
    rather than bf16 weights: on the demo's stage 2 it kept test BLEU-4 within 0.2 of fp32, bf16 weights lost 0.6."""
    import contextlib

    import torch

    if name == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=getattr(torch, DTYPES[name]))


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flallm", description="FLa-LLM sign language translation.")
    parser.add_argument("--log-level", default="INFO", help="Python logging level (default: INFO).")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        subparser = subparsers.add_parser(name, help=help_text, description=help_text)
        if name == command:
            importlib.import_module(module_name).add_arguments(subparser)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not sys.stderr.isatty():  # a log file or CI: a progress bar line every 10 s at most, not one per step
        os.environ.setdefault("TQDM_MININTERVAL", "10")  # before any module imports tqdm (it reads this then)
    command = next((arg for arg in argv if arg in COMMANDS), None)
    parser = build_parser(command)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if logging.getLogger().level > logging.DEBUG:  # Accelerate's per-file "... saved in ..." lines, every checkpoint
        logging.getLogger("accelerate").setLevel(logging.WARNING)
    module = importlib.import_module(COMMANDS[args.command][0])
    return int(module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
