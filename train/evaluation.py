"""Translate a dataset split with a FLa-LLM checkpoint and score it: `flallm evaluate`.

```
flallm evaluate --model runs/phoenix/stage2 --dataset phoenix14t --data-dir /data/PHOENIX-2014-T-release-v3 --split test
```
writes `predictions_<split>.jsonl` (id, hypothesis, reference) and `metrics_<split>.json` (the
`train.metrics` scores plus dataset/split/language/decoding settings) into `--output-dir` (by
default the model directory, where `flallm push` picks the metrics up for the model card), and
prints a table.

`evaluate_model(model, processor, dataset, ...)` is the library entry point, also usable for
per-epoch validation: frames are decoded by `data_builders.SignTranslationCollator` (only the
frames the processor's sampling keeps); with an Accelerate `accelerator`, every process translates
a contiguous shard and all get the full result.
"""

import argparse
import json
import logging
from pathlib import Path

import torch

from .metrics import SCORE_NAMES

logger = logging.getLogger(__name__)


class _CollateWithReferences:
    """The dataset collator (ids, pixels) plus the reference texts, so streaming splits work too."""

    def __init__(self, processor):
        from data_builders import SignTranslationCollator

        self.collator = SignTranslationCollator(processor, training=False, with_labels=False, return_ids=True)

    def __call__(self, examples):
        batch = self.collator(examples)
        batch["references"] = [str(example["text"]) for example in examples]
        return batch


def _shard(dataset, accelerator):
    if accelerator is None or accelerator.num_processes == 1:
        return dataset
    if hasattr(dataset, "shard") and hasattr(dataset, "__len__"):
        return dataset.shard(num_shards=accelerator.num_processes, index=accelerator.process_index, contiguous=True)
    from datasets.distributed import split_dataset_by_node

    return split_dataset_by_node(dataset, rank=accelerator.process_index, world_size=accelerator.num_processes)


@torch.no_grad()
def evaluate_model(
    model,
    processor,
    dataset,
    *,
    language: str = "de",
    batch_size: int = 8,
    num_workers: int = 0,
    generate_kwargs: dict | None = None,
    accelerator=None,
    progress: bool = True,
):
    """Translate every example of a split (columns id, text, num_frames, video) and score the result.

    Returns `(metrics, predictions)`: metrics as `train.metrics` computes them plus `num_examples`
    and `language`; predictions a list of `{"id", "hypothesis", "reference"}` in dataset order.
    `generate_kwargs` (num_beams, max_new_tokens, ...) go to `model.generate`; unset ones come from
    the model's generation config.
    """
    from accelerate.utils import gather_object
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    from .metrics import load_metric

    loader = DataLoader(
        _shard(dataset, accelerator),
        batch_size=batch_size,
        collate_fn=_CollateWithReferences(processor),
        num_workers=num_workers,
    )
    unwrapped = accelerator.unwrap_model(model) if accelerator is not None else model
    device = accelerator.device if accelerator is not None else next(unwrapped.parameters()).device
    was_training = unwrapped.training
    unwrapped.eval()
    show = progress and (accelerator is None or accelerator.is_local_main_process)
    predictions = []
    try:
        for batch in tqdm(loader, desc="translating", disable=not show, leave=False):
            ids = unwrapped.generate(
                pixel_values=batch["pixel_values"].to(device, unwrapped.dtype),
                pixel_mask=batch["pixel_mask"].to(device),
                **(generate_kwargs or {}),
            )
            hypotheses = processor.batch_decode(ids, skip_special_tokens=True)
            predictions += [
                {"id": str(i), "hypothesis": h, "reference": r}
                for i, h, r in zip(batch["ids"], hypotheses, batch["references"])
            ]
    finally:
        unwrapped.train(was_training)
    if accelerator is not None and accelerator.num_processes > 1:
        predictions = gather_object(predictions)
    if not predictions:
        raise ValueError("The dataset split is empty: nothing to evaluate.")
    scores = load_metric().compute(
        predictions=[p["hypothesis"] for p in predictions],
        references=[p["reference"] for p in predictions],
        language=language,
    )
    return {"num_examples": len(predictions), "language": language, **scores}, predictions


def format_table(metrics: dict, title: str = "") -> str:
    """A plain-text table of the scores and the signatures, for the terminal."""
    lines = [title] if title else []
    lines += [f"  {name:<8} {metrics[key]:6.2f}" for key, name in SCORE_NAMES.items() if key in metrics]
    for key in ("signature", "rouge_signature", "chrf_signature"):
        if metrics.get(key):
            lines.append(f"  {key}: {metrics[key]}")
    return "\n".join(lines)


def default_language(dataset_name: str, model_dir: Path | None) -> str | None:
    """Target language: the corpus' own, else the one in the model's training_config.yaml."""
    from .model_card import TRAINING_CONFIG_FILE, corpus_facts, find_key

    if corpus_facts(dataset_name):
        return corpus_facts(dataset_name)["language"]
    config_path = model_dir / TRAINING_CONFIG_FILE if model_dir is not None else None
    if config_path is not None and config_path.is_file():
        import yaml

        return find_key(yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}, "language")
    return None


def _parse_option(text: str):
    import yaml

    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ValueError(f"--option {text!r}: expected KEY=VALUE, e.g. num_test=20")
    return key, yaml.safe_load(value)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from .cli import add_dtype_argument, model_argument, positive_int

    parser.add_argument(
        "--model", required=True, type=model_argument, help="Model directory (save_pretrained output) or Hub id."
    )
    parser.add_argument(
        "--dataset",
        default="synthetic",
        help="phoenix14t, csl_daily, how2sign, synthetic, or a prepared dataset folder / Hub id.",
    )
    parser.add_argument("--split", default="test", choices=["train", "validation", "test"])
    parser.add_argument("--data-dir", default=None, help="Raw corpus release folder (raw corpora only).")
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Corpus option, repeatable (e.g. skip_bad_samples=true, or num_test=20 for synthetic).",
    )
    parser.add_argument(
        "--output-dir",
        default=None,
        help="Where predictions_<split>.jsonl and metrics_<split>.json go (default: the model directory, "
        "or ./flallm-eval for a Hub id).",
    )
    parser.add_argument("--cache-dir", default=None, help="datasets cache for building raw/synthetic corpora.")
    parser.add_argument(
        "--language", default=None, help="Target language (default: the corpus'); zh scores characters."
    )
    parser.add_argument("--batch-size", type=positive_int, default=8)
    parser.add_argument("--num-beams", type=positive_int, default=None, help="Beam size (default: the model's, 5).")
    parser.add_argument("--max-new-tokens", type=positive_int, default=None)
    parser.add_argument("--num-workers", type=int, default=0, help="DataLoader processes decoding videos.")
    parser.add_argument("--limit", type=int, default=None, help="Evaluate only the first N examples.")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda if available).")
    add_dtype_argument(parser)


def run(args: argparse.Namespace) -> int:
    from data_builders import load_sign_dataset
    from modeling_flallm import FlaLlmForSignTranslation, FlaLlmProcessor

    from .cli import inference_precision

    model_dir = Path(args.model) if Path(args.model).is_dir() else None
    language = args.language or default_language(args.dataset, model_dir)
    if not language:
        raise ValueError(f"Cannot tell the target language of {args.dataset!r}: pass --language (e.g. de, en, zh).")
    output_dir = Path(args.output_dir) if args.output_dir else (model_dir or Path("flallm-eval"))

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    try:
        model = FlaLlmForSignTranslation.from_pretrained(args.model).to(device)
        processor = FlaLlmProcessor.from_pretrained(args.model)
    except OSError as error:
        raise SystemExit(f"flallm evaluate: --model {args.model}: {error}") from None
    options = dict(_parse_option(text) for text in args.option)
    try:
        split = load_sign_dataset(args.dataset, data_dir=args.data_dir, cache_dir=args.cache_dir, **options)[args.split]
    except (
        ValueError,
        FileNotFoundError,
    ) as error:  # an incomplete prepared folder, a bad release: named in the message
        raise SystemExit(f"flallm evaluate: {error}") from None
    if args.limit is not None:
        split = split.select(range(min(args.limit, len(split))))
    generate_kwargs = {
        key: value
        for key, value in (("num_beams", args.num_beams), ("max_new_tokens", args.max_new_tokens))
        if value is not None
    }

    logger.info("Translating %d examples of %s/%s on %s", len(split), args.dataset, args.split, device)
    with inference_precision(args.dtype, device):
        metrics, predictions = evaluate_model(
            model,
            processor,
            split,
            language=language,
            batch_size=args.batch_size,
            num_workers=args.num_workers,
            generate_kwargs=generate_kwargs,
        )
    record = {
        "dataset": args.dataset,
        "split": args.split,
        "model": str(args.model),
        "num_beams": args.num_beams or model.generation_config.num_beams,
        "dtype": args.dtype,
        **metrics,
    }

    output_dir.mkdir(parents=True, exist_ok=True)
    predictions_path = output_dir / f"predictions_{args.split}.jsonl"
    with open(predictions_path, "w", encoding="utf-8") as handle:
        for prediction in predictions:
            handle.write(json.dumps(prediction, ensure_ascii=False) + "\n")
    metrics_path = output_dir / f"metrics_{args.split}.json"
    metrics_path.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    print(format_table(record, f"{args.dataset} {args.split} ({record['num_examples']} examples)"))
    print(f"predictions: {predictions_path}\nmetrics: {metrics_path}")
    return 0
