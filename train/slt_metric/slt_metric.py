"""Sign language translation metrics as a local `evaluate` module: BLEU-1..4, ROUGE-L, chrF.

Loaded by path (`evaluate.load(".../slt_metric")`), so it works offline; `train.metrics.load_metric()`
does that for you.

What is computed, and why this way:
- BLEU-1..4: sacrebleu corpus BLEU with `max_ngram_order=n` (cumulative BLEU-n: geometric mean of the
  1..n-gram precisions times the brevity penalty), default 13a tokenization, cased, one reference.
  Chinese (`language="zh"`) uses sacrebleu's `zh` tokenizer, which splits every CJK character off:
  the character-level BLEU the CSL-Daily literature reports. `signature` is the BLEU-4 signature.
- ROUGE-L: the sentence-level LCS F-measure with beta = 1.2, averaged over sentences, x100. That is
  the MS-COCO caption-eval formula that nlg-eval (used by GFSLT-VLP) and SignJoey compute, i.e. the
  number the FLa-LLM paper's ROUGE column is comparable with. LCS precision/recall come from
  Google's `rouge-score` (`rouge_scorer`, "rougeL"), fed with the same tokens BLEU counts (its own
  tokenizer drops every non-ASCII letter, which would ruin German and Chinese). `rougeL_f1` is the
  same with beta = 1 (rouge-score's own F-measure). `rouge_signature` names all of this.
- chrF: sacrebleu chrF2 (character 6-grams, beta 2), `chrf_signature` is its signature.
"""

import datasets
import evaluate
import rouge_score
from rouge_score import rouge_scorer
from sacrebleu.metrics import BLEU, CHRF

try:
    from importlib.metadata import version as _version

    _ROUGE_SCORE_VERSION = _version("rouge-score")
except Exception:  # pragma: no cover - metadata missing in odd installs
    _ROUGE_SCORE_VERSION = getattr(rouge_score, "__version__", "unknown")

_CITATION = """\
@inproceedings{post-2018-call,
  title = "A Call for Clarity in Reporting {BLEU} Scores",
  author = "Post, Matt",
  booktitle = "Proceedings of the Third Conference on Machine Translation: Research Papers",
  year = "2018",
  pages = "186--191",
}
@inproceedings{lin-2004-rouge,
  title = "{ROUGE}: A Package for Automatic Evaluation of Summaries",
  author = "Lin, Chin-Yew",
  booktitle = "Text Summarization Branches Out",
  year = "2004",
  pages = "74--81",
}
@inproceedings{popovic-2015-chrf,
  title = "chr{F}: character n-gram {F}-score for automatic {MT} evaluation",
  author = "Popovi{\\'c}, Maja",
  booktitle = "Proceedings of the Tenth Workshop on Statistical Machine Translation",
  year = "2015",
  pages = "392--395",
}
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of translated sentences (str).
    references: list of reference sentences (str), one per prediction.
    language: target language code ("de", "en", "zh", ...); "zh*" selects character-level tokens.
    tokenize: optional sacrebleu tokenizer name that overrides the one `language` selects.
Returns:
    bleu1, bleu2, bleu3, bleu4, rougeL, rougeL_f1, chrf (floats, 0-100),
    signature (sacrebleu BLEU signature), chrf_signature, rouge_signature (str).
Example:
    >>> metric = evaluate.load("train/slt_metric")
    >>> metric.compute(predictions=["am tag regen"], references=["am tag regen"], language="de")["bleu4"]
    100.00000000000004
"""

ROUGE_BETA = 1.2


def tokenizer_for(language: str | None) -> str:
    """The sacrebleu tokenizer a target language is scored with: `zh` for Chinese, else `13a`."""
    lang = (language or "").lower().replace("_", "-")
    if lang.startswith("zh") or lang in {"chinese", "zho", "cmn", "csl", "csl-daily", "csl_daily"}:
        return "zh"
    return "13a"


def lcs_f_measure(precision: float, recall: float, beta: float) -> float:
    """F-beta as the MS-COCO ROUGE-L computes it (0 when either side is 0)."""
    if precision == 0 or recall == 0:
        return 0.0
    return (1 + beta**2) * precision * recall / (recall + beta**2 * precision)


class _TokenList:
    """Adapter giving rouge-score the sacrebleu tokens instead of its ASCII-only tokenizer."""

    def __init__(self, sacrebleu_tokenizer):
        self._tokenize = sacrebleu_tokenizer

    def tokenize(self, text: str) -> list[str]:
        return self._tokenize(text.strip()).split()


@evaluate.utils.file_utils.add_start_docstrings(__doc__, _KWARGS_DESCRIPTION)
class SltMetric(evaluate.Metric):
    """BLEU-1..4 + ROUGE-L + chrF for sign language translation, in one call."""

    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
            reference_urls=[
                "https://github.com/mjpost/sacrebleu",
                "https://github.com/google-research/google-research/tree/master/rouge",
            ],
        )

    def _compute(self, predictions, references, language="de", tokenize=None):
        if len(predictions) == 0:
            raise ValueError("slt_metric: `predictions` is empty; nothing to score.")
        tokenize = tokenize or tokenizer_for(language)
        refs = [list(references)]
        result = {}
        bleu = None
        for n in range(1, 5):
            bleu = BLEU(tokenize=tokenize, max_ngram_order=n)
            result[f"bleu{n}"] = bleu.corpus_score(predictions, refs).score
        result["signature"] = str(bleu.get_signature())

        chrf = CHRF()
        result["chrf"] = chrf.corpus_score(predictions, refs).score
        result["chrf_signature"] = str(chrf.get_signature())

        scorer = rouge_scorer.RougeScorer(["rougeL"], tokenizer=_TokenList(bleu.tokenizer))
        coco, f1 = 0.0, 0.0
        for prediction, reference in zip(predictions, references):
            score = scorer.score(reference, prediction)["rougeL"]
            coco += lcs_f_measure(score.precision, score.recall, ROUGE_BETA)
            f1 += score.fmeasure
        result["rougeL"] = 100 * coco / len(predictions)
        result["rougeL_f1"] = 100 * f1 / len(predictions)
        result["rouge_signature"] = (
            f"rougeL|lcs-f-beta:{ROUGE_BETA}|avg:sentence|tok:{tokenize}|rouge-score:{_ROUGE_SCORE_VERSION}"
        )
        return result
