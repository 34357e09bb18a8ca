"""Translation metrics for FLa-LLM: load the packaged `slt_metric` evaluate module offline.

`evaluate.load("sacrebleu")` needs the Hub; the metric here ships inside the package and loads by
path, so evaluation works on an air-gapped cluster. See `train/slt_metric/slt_metric.py` for what is
computed (BLEU-1..4, ROUGE-L, chrF, signatures) and why.
"""

from pathlib import Path

METRIC_DIR = Path(__file__).resolve().parent / "slt_metric"

#: Keys `compute` returns that are scores (0-100), in the order tables show them, and their display names.
SCORE_NAMES = {
    "bleu1": "BLEU-1",
    "bleu2": "BLEU-2",
    "bleu3": "BLEU-3",
    "bleu4": "BLEU-4",
    "rougeL": "ROUGE-L",
    "chrf": "chrF",
}
SCORE_KEYS = tuple(SCORE_NAMES)


def load_metric(**kwargs):
    """The `slt_metric` evaluate module, loaded from the package folder (no network)."""
    import evaluate

    return evaluate.load(str(METRIC_DIR), **kwargs)


def compute_metrics(predictions, references, language: str = "de") -> dict:
    """One-shot convenience: `load_metric().compute(...)`."""
    return load_metric().compute(predictions=list(predictions), references=list(references), language=language)
