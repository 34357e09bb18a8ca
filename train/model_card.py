"""The model card of a finished FLa-LLM stage: what its run directory says, rendered from `model_cards/stage1.md` or
`stage2.md` (YAML metadata: model-index results, datasets, languages, license, base models, pipeline tag, tags; prose
on the stage, intended use, limitations and how to reproduce). `flallm push` (train/hub.py) uploads it as README.md.

Besides `save_pretrained` output, the run directory may hold `training_config.yaml` (the config the stage was trained
with), `metrics.json` and `metrics_<split>.json` (evaluation records, as `flallm evaluate` writes them). Everything is
optional except `config.json`; the stage comes from the `stage` argument, the training config or `config.json`'s
`stage` field. Only `huggingface_hub` and `yaml` are imported, so a card renders without torch loaded.
"""

import json
import logging
import struct
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .metrics import SCORE_NAMES

logger = logging.getLogger(__name__)

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "model_cards"
TRAINING_CONFIG_FILE = "training_config.yaml"

STAGE_NAMES = {1: "visual_initialing", 2: "llm_fine_tuning"}
_STAGE_ALIASES = {
    "1": 1,
    "stage1": 1,
    "visual_initialing": 1,
    "visual_initializing": 1,
    "visual_initialization": 1,
    "2": 2,
    "stage2": 2,
    "llm_fine_tuning": 2,
    "llm_finetuning": 2,
}


def corpus_facts(name: str | None) -> dict:
    """What a card says about a corpus `load_sign_dataset` knows (its builder class holds the facts); {} for others."""
    from data_builders.loading import BUILDERS

    builder = BUILDERS.get(name or "")
    if builder is None:
        return {}
    return {
        "pretty": builder.PRETTY_NAME,
        "language": builder.LANGUAGE,
        "spoken_language": builder.SPOKEN_LANGUAGE,
        "sign_language": builder.SIGN_LANGUAGE,
        "sign_code": builder.SIGN_LANGUAGE_CODE,
        "license": builder.LICENSE,
        "domain": builder.DOMAIN,
        "limitations": builder.LIMITATIONS,
    }


# FLa-LLM's test-set results (paper, Table 1/2): what a stage-2 card is compared with.
PAPER_RESULTS = {
    "phoenix14t": {"rougeL": 45.27, "bleu1": 46.29, "bleu2": 35.33, "bleu3": 28.03, "bleu4": 23.09},
    "csl_daily": {"rougeL": 37.25, "bleu1": 37.13, "bleu2": 25.12, "bleu3": 18.38, "bleu4": 14.20},
    "how2sign": {"rougeL": 27.81, "bleu1": 29.81, "bleu2": 18.99, "bleu3": 13.27, "bleu4": 9.66},
}

METRICS = tuple(  # record key, model-index type, display name
    (key, "rouge" if key == "rougeL" else "chrf" if key == "chrf" else "bleu", name)
    for key, name in SCORE_NAMES.items()
)
METRICS_NOTE = (
    "BLEU-n: sacrebleu corpus BLEU with n-gram order n (character-level for Chinese). ROUGE-L: "
    "sentence-level LCS F-measure with beta 1.2 averaged over sentences (the MS-COCO/nlg-eval "
    "formula used by earlier SLT papers), computed with rouge-score. chrF: sacrebleu chrF2."
)


@dataclass
class RunInfo:
    """What a run directory says about the stage it holds."""

    model_dir: Path
    config: dict
    training_config: dict = field(default_factory=dict)
    training_config_text: str | None = None
    evaluations: list = field(default_factory=list)


def normalize_stage(value) -> int:
    """1 or 2 from any of the spellings in use (1, "stage2", "llm_fine_tuning", ...)."""
    key = str(value).strip().lower().replace("-", "_").replace(" ", "_")
    key = key.replace("stage_", "stage")
    if key not in _STAGE_ALIASES:
        raise ValueError(
            f"stage={value!r} is not a FLa-LLM stage: expected 1, 2, 'visual_initialing' or 'llm_fine_tuning'."
        )
    return _STAGE_ALIASES[key]


def find_key(mapping: dict, *names):
    """The first of `names` in a config mapping or in one of its sections (sub-dicts), else None."""
    for name in names:
        if mapping.get(name) not in (None, ""):
            return mapping[name]
    for value in mapping.values():
        if isinstance(value, dict):
            found = find_key(value, *names)
            if found is not None:
                return found
    return None


def _evaluation_records(data, source: Path) -> list[dict]:
    """Normalize the accepted metrics-file shapes to a list of records with a `bleu4` score."""
    if isinstance(data, list):
        records = data
    elif isinstance(data, dict) and "bleu4" in data:
        records = [data]
    elif isinstance(data, dict):
        records = [
            {"split": split, **value} for split, value in data.items() if isinstance(value, dict) and "bleu4" in value
        ]
    else:
        records = []
    if not records or not all(isinstance(r, dict) and "bleu4" in r for r in records):
        raise ValueError(
            f"{source}: expected an evaluation record with bleu1..bleu4/rougeL/chrf, a list of them, or "
            "{split: record}, as `flallm evaluate` writes them."
        )
    return records


def read_run_dir(model_dir) -> RunInfo:
    """Read config.json, training_config.yaml and the metrics files of a run directory."""
    model_dir = Path(model_dir)
    config_path = model_dir / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(
            f"{config_path} not found: --model must be a save_pretrained directory of a FLa-LLM stage."
        )
    config = json.loads(config_path.read_text(encoding="utf-8"))
    if config.get("model_type") != "flallm":
        raise ValueError(f"{config_path} has model_type={config.get('model_type')!r}: expected 'flallm'.")
    info = RunInfo(model_dir=model_dir, config=config)
    training_config_path = model_dir / TRAINING_CONFIG_FILE
    if training_config_path.is_file():
        info.training_config_text = training_config_path.read_text(encoding="utf-8")
        info.training_config = yaml.safe_load(info.training_config_text) or {}
        if not isinstance(info.training_config, dict):
            raise ValueError(f"{training_config_path}: expected a YAML mapping.")
    latest = {}  # (dataset, split) -> record: a later file (metrics_<split>.json) replaces metrics.json's
    for path in [model_dir / "metrics.json", *sorted(model_dir.glob("metrics_*.json"))]:
        if path.is_file():
            records = _evaluation_records(json.loads(path.read_text(encoding="utf-8")), path)
            default_split = path.stem[len("metrics_") :] if path.stem.startswith("metrics_") else "test"
            for record in records:
                record = {"split": default_split, **record}
                latest[(record.get("dataset"), record["split"])] = record
    info.evaluations = list(latest.values())
    return info


def resolve_stage(info: RunInfo, stage=None) -> int:
    """The stage: explicit argument, else the training config, else config.json, else the metrics."""
    candidates = [
        (stage, "the stage argument"),
        (find_key(info.training_config, "stage"), f"{TRAINING_CONFIG_FILE}: stage"),
        (info.config.get("stage") or info.config.get("flallm_stage"), "config.json: stage"),
        (next((r["stage"] for r in info.evaluations if r.get("stage")), None), "metrics: stage"),
    ]
    for value, source in candidates:
        if value not in (None, ""):
            logger.info("Stage %s (from %s)", value, source)
            return normalize_stage(value)
    raise ValueError(
        f"{info.model_dir}: cannot tell which stage this is. Pass --stage 1|2, or record `stage` in "
        f"config.json or {TRAINING_CONFIG_FILE}."
    )


def is_repo_id(value) -> bool:
    """A Hub repo id (`owner/name`, no local path of that name), not a local path: Hub metadata wants repo ids, and
    a missing local folder must not be looked up on the Hub."""
    if not isinstance(value, str) or value.count("/") != 1 or value.startswith((".", "/", "~")):
        return False
    return not Path(value).exists()


def _dataset_name(dataset) -> str | None:
    if isinstance(dataset, dict):
        dataset = dataset.get("name") or dataset.get("path")
    return str(dataset) if dataset else None


def _count_parameters(model_dir: Path) -> int | None:
    """Sum of tensor sizes from the safetensors headers (no weights loaded)."""
    total, found = 0, False
    for path in model_dir.glob("*.safetensors"):
        with open(path, "rb") as handle:
            (header_size,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(header_size))
        for name, tensor in header.items():
            if name != "__metadata__":
                count = 1
                for dim in tensor["shape"]:
                    count *= dim
                total += count
                found = True
    return total if found else None


def _describe_text_model(text_config: dict, stage: int) -> str:
    kind = text_config.get("model_type", "seq2seq")
    layers = (text_config.get("encoder_layers"), text_config.get("decoder_layers"))
    width = text_config.get("d_model") or text_config.get("hidden_size")
    shape = f"{kind}, {layers[0]}+{layers[1]} layers, hidden {width}" if all(layers) else f"{kind}, hidden {width}"
    if stage == 1:
        return shape  # Light-T: always trained from scratch, so its shape is what describes it
    return text_config.get("_name_or_path") or shape


def _describe_backbone(vision_config: dict) -> str:
    name = vision_config.get("_name_or_path")
    if name:
        return name
    if vision_config.get("hidden_sizes") == [64, 128, 256, 512] and vision_config.get("depths") == [2, 2, 2, 2]:
        return "ResNet-18"
    return f"ResNet (hidden sizes {vision_config.get('hidden_sizes')})"


def _human(count: int | None) -> str | None:
    if count is None:
        return None
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if count >= size:
            return f"{count / size:.1f}{unit}"
    return str(count)


def render_model_card(
    model_dir, repo_id: str | None = None, *, stage=None, dataset=None, language=None, license=None, base_model=None
):
    """The `huggingface_hub.ModelCard` for a run directory, from `model_cards/stage{1,2}.md`."""
    info = read_run_dir(model_dir)
    return render_card(info, repo_id, resolve_stage(info, stage), dataset, language, license, base_model)


def render_card(info: RunInfo, repo_id, stage: int, dataset, language, license, base_model):
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    template = TEMPLATE_DIR / f"stage{stage}.md"
    if not template.is_file():
        raise FileNotFoundError(
            f"Model card template {template} is missing: reinstall flallm (model_cards/ ships with it)."
        )
    tc, config = info.training_config, info.config
    text_config, vision_config = config.get("text_config") or {}, config.get("vision_config") or {}

    dataset = _dataset_name(
        dataset
        or find_key(tc, "dataset", "dataset_name")
        or next((r.get("dataset") for r in info.evaluations if r.get("dataset")), None)
    )
    corpus = corpus_facts(dataset)
    language = (
        language
        or next((r.get("language") for r in info.evaluations if r.get("language")), None)
        or find_key(tc, "language")
        or corpus.get("language")
    )
    license = license or find_key(tc, "license") or corpus.get("license") or "apache-2.0"
    model_name = (repo_id or info.model_dir.resolve().name).split("/")[-1]

    base_models = [base_model] if isinstance(base_model, str) else list(base_model or [])
    stage1_model = find_key(tc, "stage1_model", "stage1", "init_from")
    for value in (
        stage1_model if stage == 2 else None,
        find_key(tc, "language_model") if stage == 2 else None,
        find_key(tc, "base_model"),
        find_key(tc, "backbone", "vision_model"),
        vision_config.get("_name_or_path"),
        text_config.get("_name_or_path") if stage == 2 else None,
    ):
        if is_repo_id(value) and value not in base_models:
            base_models.append(value)

    results, eval_results = [], []
    for record in info.evaluations:
        record_dataset = record.get("dataset") or dataset or "unknown"
        pretty = corpus_facts(record_dataset).get("pretty", record_dataset)
        row = {
            "dataset_pretty": pretty,
            "split": record.get("split", "test"),
            "signature": record.get("signature"),
            "rouge_signature": record.get("rouge_signature"),
            "chrf_signature": record.get("chrf_signature"),
        }
        for key, metric_type, metric_name in METRICS:
            if record.get(key) is None:
                row[key] = ""
                continue
            value = round(float(record[key]), 2)
            row[key] = f"{value:.2f}"
            config_text = {"rouge": record.get("rouge_signature"), "chrf": record.get("chrf_signature")}.get(
                metric_type, record.get("signature")
            )
            eval_results.append(
                EvalResult(
                    task_type="translation",
                    task_name="Sign Language Translation",
                    dataset_type=record_dataset,
                    dataset_name=pretty,
                    dataset_split=row["split"],
                    metric_type=metric_type,
                    metric_name=metric_name,
                    metric_value=value,
                    metric_config=config_text,
                    metric_args={"max_ngram_order": int(key[-1])} if metric_type == "bleu" else None,
                )
            )
        results.append(row)

    languages = [language] if language else []
    if corpus.get("sign_code"):
        languages.append(corpus["sign_code"])
    datasets = sorted(
        {
            d
            for d in [dataset, *(r.get("dataset") for r in info.evaluations)]
            if d and (corpus_facts(d) or is_repo_id(d))
        }
    )
    card_data = ModelCardData(
        language=languages or None,
        license=license,
        library_name="transformers",
        pipeline_tag="translation",
        tags=["sign-language-translation", "sign-language", "gloss-free", "video", "flallm", f"flallm-stage-{stage}"],
        datasets=datasets or None,
        base_model=base_models or None,
        metrics=["bleu", "rouge", "chrf"] if eval_results else None,
        model_name=model_name,
        eval_results=eval_results or None,
    )
    return ModelCard.from_template(
        card_data,
        template_path=str(template),
        model_name=model_name,
        repo_id=repo_id or str(info.model_dir),
        dataset_name=dataset,
        dataset_pretty=corpus.get("pretty", dataset),
        domain=corpus.get("domain", "its training data"),
        limitations=corpus.get("limitations"),
        sign_language=corpus.get("sign_language"),
        spoken_language=corpus.get("spoken_language", language),
        vision_backbone=_describe_backbone(vision_config),
        language_model=_describe_text_model(text_config, stage),
        stage1_model=stage1_model,
        frame_sample_rate=config.get("frame_sample_rate", 4),
        adapter_input=config.get("adapter_input", "sign"),
        freeze=config.get("freeze", "visual_encoder"),
        use_lora=config.get("use_lora", False),
        label_smoothing=config.get("label_smoothing", 0.2),
        num_parameters=_human(_count_parameters(info.model_dir)),
        results=results,
        metrics_note=METRICS_NOTE,
        paper=PAPER_RESULTS.get(dataset),
        training_config=(info.training_config_text or "").strip() or None,
        training_config_file=TRAINING_CONFIG_FILE,
    )
