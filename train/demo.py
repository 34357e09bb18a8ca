"""`flallm demo`: the whole FLa-LLM recipe on the embedded synthetic sign language, offline, on a CPU.

    flallm demo                                # ./flallm-demo (see BENCHMARKS.md for its time and scores)
    flallm demo --output-dir DIR --quick       # a tiny smoke run of every step (seconds; learns nothing)
    flallm demo --llm facebook/mbart-large-cc25 --target-language en_XX   # a real LLM, where the Hub is reachable
    flallm demo stage1.training.epochs=30 stage2.optimizer.lr=3e-4 lm.training.epochs=4 data.num_train=2000

Steps:
1. the synthetic corpus: `data_builders.load_sign_dataset("synthetic", **data.options)` with the options of
   train/configs/demo_stage1.yaml (both stages train and test on this one corpus);
2. unless `--llm` is given: a byte-level BPE tokenizer and a small mBART-shaped seq2seq LM pre-trained with
   mBART's denoising objective (`train.lm_pretraining`) on text of the synthetic language, standing in for
   mbart-large-cc25, which cannot be downloaded here. The text is `data_builders.synthetic_text(split="train")`
   plus the corpus's train sentences: never a validation or test sentence. Settings: `LM_DEFAULTS` below;
3. stage 1 (train/configs/demo_stage1.yaml): visual encoder + VL-adapter + Light-T, trained end to end; Light-T
   uses the LM's tokenizer trimmed to the train texts, as the paper's Light-T uses the LLM's. The tokenizer is
   trained first; the LM pre-trains in a second process while stage 1 trains (each keeps one core busy);
4. stage 2 (train/configs/demo_stage2.yaml): the frozen stage-1 visual encoder, a fresh LLM-adapter and the LM,
   trained from cached visual features;
5. the trainer scores each exported model on the test split; the demo adds a constant-output baseline (one
   training sentence for every clip), prints a table and a few translations, and writes DIR/metrics.json.

Output directory (other tools rely on it):
    DIR/stage1/, DIR/stage2/   save_pretrained exports (model + processor): from_pretrained and the pipeline
    DIR/metrics.json           {"stage1": {bleu1, bleu2, bleu3, bleu4, rougeL, ...}, "stage2": {...}, "baseline": {...},
                                "examples": [...], "seconds": {...}, ...}
    DIR/lm/                    the pre-trained LM and its tokenizer (absent with --llm)
    DIR/tokenizer/             that tokenizer, written before the LM for stage 1 (absent with --llm)
    DIR/runs/stage1, stage2    the trainer's run directories (train.log, predictions, checkpoints)
    DIR/cache/                 the synthetic corpus and the stage-2 feature cache (content-keyed, reused)
A new run replaces these paths (nothing else in DIR); `--resume` continues an interrupted demo instead.

Overrides: `stage1.KEY=V` / `stage2.KEY=V` (dotted `flallm train` config keys), `lm.SECTION.KEY=V` (keys of
`LM_DEFAULTS`), `data.OPTION=V` (a synthetic-corpus option, for both stages).

Threads: PyTorch runs with one intra-op thread (`--threads`) in the training process and in the LM's, and clips
are decoded in one DataLoader worker (`data.num_workers: 1` in the configs; rendering a 32 px clip costs a few
percent of a training step), so two cores are busy without oversubscription. The models are tiny:
a second intra-op thread gains little, and where the cores are shared with other jobs, OpenMP threads waiting
for each other made training steps 5-10x slower in our measurements.
"""

from __future__ import annotations

import argparse
import collections
import copy
import json
import logging
import shutil
import time
from pathlib import Path

from .metrics import SCORE_NAMES

logger = logging.getLogger(__name__)

DEFAULT_OUTPUT_DIR = "flallm-demo"
CONFIG_FILES = {"stage1": "demo_stage1.yaml", "stage2": "demo_stage2.yaml"}
METRIC_KEYS = ("bleu1", "bleu2", "bleu3", "bleu4", "rougeL")
OWNED_PATHS = ("stage1", "stage2", "lm", "tokenizer", "runs", "examples", "metrics.json", "ceiling.json")
EXAMPLE_SCALE = 4  # example clips are written 4x larger (nearest neighbour) than the 32-px corpus: big enough to watch

# The offline stand-in for mbart-large-cc25 (train/lm_pretraining.py). Override with lm.SECTION.KEY=VALUE.
LM_DEFAULTS = {
    # synthetic_text(num_texts, seed, split="train"), plus the corpus's own train sentences
    "texts": {"num_texts": 20000, "seed": 1, "include_train_split": True},
    # kwargs of modeling_flallm.tokenization_flallm.train_tokenizer. Byte-level BPE: the Unigram trainer of the
    # `tokenizers` library stops at ~235 pieces on this corpus and splits its short words into letters.
    "tokenizer": {"vocab_size": 600, "model_type": "bpe"},
    # MBartConfig fields over train.lm_pretraining.SMALL_MBART (2+2 layers, d_model 256)
    "model": {},
    # kwargs of train.lm_pretraining.pretrain_denoising_lm
    "training": {"epochs": 3, "batch_size": 64, "lr": 1.0e-3},
}

# --quick: every step on a tiny corpus and tiny models, a few optimizer steps each (a smoke run).
TINY_VISION = {"embedding_size": 8, "hidden_sizes": [8, 16], "depths": [1, 1], "layer_type": "basic"}
TINY_MBART = {
    "encoder_layers": 1,
    "decoder_layers": 1,
    "d_model": 32,
    "encoder_attention_heads": 2,
    "decoder_attention_heads": 2,
    "encoder_ffn_dim": 64,
    "decoder_ffn_dim": 64,
    "max_position_embeddings": 128,
}
QUICK_OVERRIDES = {
    "data": ["num_train=16", "num_validation=4", "num_test=4", "resolution=16", "fps=8.0"],
    "lm": [
        "texts.num_texts=200",
        "tokenizer.vocab_size=300",
        f"model={json.dumps(TINY_MBART)}",
        "training.epochs=1",
        "training.batch_size=32",
    ],
    "stage1": [
        f"model.light_t={json.dumps(TINY_MBART)}",
        f"model.config.vision_config={json.dumps(TINY_VISION)}",
        "model.config.temporal_hidden_size=16",
        "model.config.adapter_hidden_size=16",
        "model.video_processor={size: 16, crop_size: 16}",
        "training.epochs=1",
        "training.batch_size=8",
        "evaluation.num_beams=1",
        "evaluation.max_new_tokens=8",
        "data.num_workers=0",
    ],
    "stage2": [
        "model.config.adapter_hidden_size=16",
        "training.epochs=1",
        "training.batch_size=8",
        "evaluation.num_beams=1",
        "evaluation.max_new_tokens=8",
        "data.num_workers=0",
    ],
}


# ------------------------------------------------------------------------------------------------
# Configs


def split_overrides(overrides) -> dict[str, list[str]]:
    """`stage1.KEY=V`, `stage2.KEY=V`, `lm.KEY=V`, `data.KEY=V` (a corpus option, for both stages)."""
    groups: dict[str, list[str]] = {"stage1": [], "stage2": [], "lm": [], "data": []}
    for override in overrides:
        prefix, _, rest = override.partition(".")
        if prefix not in groups or "=" not in rest or rest.startswith("="):
            raise ValueError(
                f"override {override!r} is invalid: expected stage1.KEY=VALUE, stage2.KEY=VALUE, lm.KEY=VALUE "
                "or data.OPTION=VALUE (e.g. stage1.training.epochs=30, data.num_train=2000)"
            )
        groups[prefix].append(rest)
    return groups


def lm_settings(overrides=()) -> dict:
    """`LM_DEFAULTS` with `SECTION.KEY=V` overrides; unknown sections are errors."""
    from .config import apply_override

    settings = copy.deepcopy(LM_DEFAULTS)
    for override in overrides:
        apply_override(settings, override)
    unknown = sorted(set(settings) - set(LM_DEFAULTS))
    if unknown:
        raise ValueError(f"lm overrides: unknown section(s) {unknown}; expected one of {sorted(LM_DEFAULTS)}")
    for section, value in settings.items():
        if not isinstance(value, dict):
            raise ValueError(f"lm.{section} must be a mapping, got {value!r}")
    extra = set(settings["texts"]) - set(LM_DEFAULTS["texts"])
    if extra:
        raise ValueError(f"lm.texts: unknown key(s) {sorted(extra)}; expected some of {sorted(LM_DEFAULTS['texts'])}")
    # Checked here, not minutes later in the LM's process: the keyword arguments each section feeds.
    import inspect

    from modeling_flallm.tokenization_flallm import train_tokenizer

    from .lm_pretraining import pretrain_denoising_lm

    fixed = {
        "tokenizer": {"texts"},
        "training": {"texts", "tokenizer", "output_dir", "model_config", "validation_texts", "progress"},
    }
    for section, function in (("tokenizer", train_tokenizer), ("training", pretrain_denoising_lm)):
        accepted = set(inspect.signature(function).parameters) - fixed[section]
        extra = set(settings[section]) - accepted
        if extra:
            raise ValueError(f"lm.{section}: unknown key(s) {sorted(extra)}; expected some of {sorted(accepted)}")
    return settings


def build_configs(
    output_dir: Path,
    quick: bool = False,
    overrides=(),
    llm: str | None = None,
    target_language: str | None = None,
    config_files: dict | None = None,
    resume: bool = False,
):
    """(LM settings, stage-1 TrainConfig, stage-2 TrainConfig) with the demo's paths filled in."""
    from .config import SHIPPED_CONFIGS, TrainConfig, apply_override, read_yaml

    files = {
        stage: Path((config_files or {}).get(stage) or SHIPPED_CONFIGS / name) for stage, name in CONFIG_FILES.items()
    }
    groups = split_overrides(overrides)
    if quick:
        groups = {key: QUICK_OVERRIDES[key] + values for key, values in groups.items()}
    lm = lm_settings(groups["lm"])
    language_model = llm or str(output_dir / "lm")
    stages, options = {}, None
    for stage in ("stage1", "stage2"):
        data = read_yaml(files[stage])
        for override in groups[stage]:
            apply_override(data, override)
        section = data.setdefault("data", {})
        if options is None:
            options = dict(section.get("options") or {})
            for override in groups["data"]:
                apply_override(options, override)
        # Both stages train and test on the corpus stage 1 describes (each run's training_config.yaml records it).
        section.update(
            dataset="synthetic", data_dir=None, options=options, cache_dir=str(output_dir / "cache" / "datasets")
        )
        data["output_dir"] = str(output_dir / "runs" / stage)
        data["export_dir"] = str(output_dir / stage)
        model = data.setdefault("model", {})
        if target_language is not None:
            model["target_language"] = target_language
        if stage == "stage1":
            # Light-T uses the LLM's tokenizer, trimmed to the corpus (paper); the demo's LM is saved with the same one.
            model["tokenizer"] = llm or str(output_dir / "tokenizer")
            model["train_tokenizer"] = None
        else:
            model["stage1"] = str(output_dir / "stage1")
            model["language_model"] = language_model
            data.setdefault("feature_cache", {})["dir"] = str(output_dir / "cache" / "features")
        data.setdefault("checkpointing", {})["resume"] = "auto" if resume else False
        stages[stage] = TrainConfig.from_dict(data, source=str(files[stage]))
    return lm, stages["stage1"], stages["stage2"], files


# ------------------------------------------------------------------------------------------------
# Steps


def build_corpus(config):
    from data_builders import load_sign_dataset

    return load_sign_dataset("synthetic", cache_dir=config.data.cache_dir, **config.data.options)


def lm_texts(settings: dict, corpus, vocabulary_size=None) -> list[str]:
    """Sentences to pre-train the LM on: `synthetic_text(split="train")` (never a validation/test sentence of any
    synthetic corpus) and, unless `include_train_split` is false, the corpus's train sentences; duplicates dropped."""
    from data_builders import synthetic_text

    texts = synthetic_text(
        int(settings["num_texts"]), seed=int(settings["seed"]), split="train", vocabulary_size=vocabulary_size
    )
    if settings.get("include_train_split", True):
        texts = list(corpus["train"]["text"]) + texts
    return list(dict.fromkeys(texts))


def train_lm_tokenizer(lm: dict, texts: list[str], output_dir: Path) -> Path:
    """The LM's tokenizer (with the `<mask>` token of its pre-training), saved first: Light-T uses it too."""
    from modeling_flallm.tokenization_flallm import train_tokenizer

    from .lm_pretraining import add_mask_token

    tokenizer = train_tokenizer(texts, **lm["tokenizer"])
    add_mask_token(tokenizer)
    tokenizer.save_pretrained(output_dir)
    return output_dir


def pretrain_lm(
    lm: dict,
    texts: list[str],
    tokenizer_dir: Path,
    validation_texts: list[str],
    output_dir: Path,
    seed: int,
    threads: int | None = None,
    progress: bool = True,
) -> Path:
    """Pre-train the demo's LM (`train.lm_pretraining`) over the tokenizer in `tokenizer_dir`."""
    import torch
    from transformers import AutoTokenizer

    from .lm_pretraining import pretrain_denoising_lm

    if threads:
        torch.set_num_threads(threads)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    training = {"seed": seed, **lm["training"]}
    return pretrain_denoising_lm(
        texts,
        tokenizer,
        output_dir,
        model_config=lm["model"],
        validation_texts=validation_texts,
        progress=progress,
        **training,
    )


def ceiling_settings(stage2) -> dict:
    """Stage 2's budget, for the gloss-to-text ceiling (`train.gloss_to_text`): same epochs, batch, rate, decoding."""
    from modeling_flallm import FlaLlmConfig

    config = stage2.resolved()
    return {
        "epochs": config.training.epochs,
        "batch_size": config.training.batch_size,
        "lr": config.optimizer.lr,
        "warmup_ratio": config.scheduler.warmup_ratio,
        "weight_decay": config.optimizer.weight_decay,
        "label_smoothing": config.model.config.get("label_smoothing", FlaLlmConfig().label_smoothing),
        "num_beams": config.evaluation.num_beams,
        "max_new_tokens": config.evaluation.max_new_tokens,
        "language": config.data.language,
        "seed": config.seed,
    }


def run_ceiling(lm_dir: Path, pairs: dict, settings: dict, output_path: Path) -> dict:
    """The gloss-to-text ceiling of the LM in `lm_dir`, written to `output_path` (JSON)."""
    from .gloss_to_text import gloss_to_text_ceiling

    scores = gloss_to_text_ceiling(lm_dir, pairs, **settings)
    tmp = output_path.with_name(f".{output_path.name}.tmp")
    tmp.write_text(json.dumps({"settings": settings, **scores}, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(output_path)
    return scores


def _pretrain_lm_process(log_level: int, ceiling: tuple | None, *args) -> None:
    """Entry point of the process that pre-trains the LM while stage 1 trains (see `start_lm_pretraining`),
    then (`ceiling`: pairs, settings, output path) measures the gloss-to-text ceiling on that LM."""
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    lm_dir = pretrain_lm(*args, progress=False)
    if ceiling is not None:
        run_ceiling(lm_dir, *ceiling)


def start_lm_pretraining(ceiling, *args):
    """Pre-train the LM in a second process, so that it runs on the core stage 1 leaves idle.

    Stage 1 needs only the LM's tokenizer, and each step of these small models keeps one core busy (a second
    intra-op thread gains little): on a 2-core CPU the two run side by side in about the time of stage 1 alone.
    Its progress shows as log lines (one progress bar on the terminal: stage 1's). `ceiling`: see `_pretrain_lm_process`.
    """
    import multiprocessing

    process = multiprocessing.get_context("spawn").Process(
        target=_pretrain_lm_process,
        args=(logging.getLogger().getEffectiveLevel(), ceiling, *args),
        name="lm-pretraining",
    )
    process.start()
    return process


def wait_for_lm(process, lm_dir: Path) -> None:
    """Until the LM is saved (its process then goes on with the gloss-to-text ceiling; stage 2 need not wait)."""
    while process.is_alive() and not (lm_dir / "pretraining.json").is_file():
        time.sleep(0.2)
    if not (lm_dir / "pretraining.json").is_file():
        process.join()
        raise RuntimeError(
            f"LM pre-training failed (process exit code {process.exitcode}; its error is printed above). "
            f"Stage 1 is kept: `flallm demo --resume --output-dir {lm_dir.parent}` retries the LM and goes on."
        )


def constant_baseline(
    train_texts, test_texts, language: str = "en", candidates: int = 50, references: int = 1000
) -> dict:
    """Scores of predicting one training sentence for every test clip: the most frequent training sentence.

    The synthetic train split holds distinct sentences (every count is 1). Ties are broken without looking at
    the test set: among the `candidates` tied sentences made of the most frequent words, the one with the highest
    corpus BLEU-4 against the first `references` training sentences (the strongest constant a model can learn;
    all 4000 demo sentences pick the same one as the first 1000, in a quarter of the time).
    """
    import sacrebleu

    from .metrics import load_metric

    counts = collections.Counter(train_texts)
    top = max(counts.values())
    tied = [text for text, count in counts.items() if count == top]
    if len(tied) > 1:
        words = collections.Counter(word for text in train_texts for word in set(text.split()))
        tied.sort(key=lambda text: -sum(words[w] for w in text.split()) / max(1, len(text.split())))
        sample = list(train_texts)[:references]
        tied = [max(tied[:candidates], key=lambda text: sacrebleu.corpus_bleu([text] * len(sample), [sample]).score)]
    sentence = tied[0]
    scores = load_metric().compute(
        predictions=[sentence] * len(test_texts), references=list(test_texts), language=language
    )
    return {
        "sentence": sentence,
        "train_count": top,
        **{k: v for k, v in scores.items() if not k.endswith("signature")},
    }


def test_predictions(run_dir: Path) -> dict[str, dict]:
    """id -> {hypothesis, reference} of the test predictions the trainer wrote for the exported model."""
    files = sorted((Path(run_dir) / "predictions").glob("test-step*.jsonl"))
    if not files:
        return {}
    with open(files[-1], encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    return {row["id"]: row for row in rows}


def write_example_clips(rows, directory: Path, scale: int = EXAMPLE_SCALE) -> list[dict]:
    """Test clips as mp4 files a new user can watch and feed to `flallm translate` or the app, with
    `examples.jsonl` ({"file", "id", "signs", "reference"}) beside them."""
    import numpy as np

    from data_builders import decode_video
    from data_builders.testing import write_video

    directory.mkdir(parents=True, exist_ok=True)
    listed = []
    for row in rows:
        frames = decode_video(row["video"])
        frames = np.repeat(np.repeat(frames, scale, axis=1), scale, axis=2)
        frames = frames[:, : frames.shape[1] // 2 * 2, : frames.shape[2] // 2 * 2]  # H.264 wants even sizes
        path = directory / f"{row['id']}.mp4"
        write_video(path, frames, fps=round(row["fps"]), crf=12)
        listed.append({"file": path.name, "id": row["id"], "signs": row["gloss"], "reference": row["text"]})
    text = "".join(json.dumps(entry, ensure_ascii=False) + "\n" for entry in listed)
    (directory / "examples.jsonl").write_text(text, encoding="utf-8")
    return listed


def _scores(record: dict) -> dict:
    keep = METRIC_KEYS + ("chrf", "num_examples", "signature", "rouge_signature", "chrf_signature", "step", "epoch")
    return {k: record[k] for k in keep if k in record}


def _prepare_output_dir(output_dir: Path, resume: bool) -> None:
    """A fresh run removes the demo's own outputs in DIR (the content-keyed caches stay)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    if resume:
        return
    for name in OWNED_PATHS:
        path = output_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def run_demo(
    output_dir: str | Path = DEFAULT_OUTPUT_DIR,
    quick: bool = False,
    llm: str | None = None,
    target_language: str | None = None,
    overrides=(),
    threads: int | None = 1,
    resume: bool = False,
    config_files: dict | None = None,
    num_examples: int = 5,
) -> dict:
    """Run every step; returns what DIR/metrics.json holds."""
    import torch

    from .trainer import train

    started = time.perf_counter()
    output_dir = Path(output_dir).resolve()
    lm, stage1, stage2, files = build_configs(output_dir, quick, overrides, llm, target_language, config_files, resume)
    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    timings, lm_process = {}, None
    try:
        _prepare_output_dir(output_dir, resume)
        tick = time.perf_counter()
        corpus = build_corpus(stage1)
        timings["corpus"] = time.perf_counter() - tick
        logger.info("Synthetic corpus: %s clips", {split: len(rows) for split, rows in corpus.items()})

        ceiling_scores = None
        lm_summary, lm_dir, ceiling_path = None, output_dir / "lm", output_dir / "ceiling.json"
        # The gloss-to-text ceiling: the LM fine-tuned on the gold signs with stage 2's budget (train/gloss_to_text.py).
        pairs = {
            split: {"gloss": list(corpus[split]["gloss"]), "text": list(corpus[split]["text"])}
            for split in ("train", "test")
        }
        ceiling = (pairs, ceiling_settings(stage2), ceiling_path) if llm is None else None
        if llm is None and resume and (lm_dir / "pretraining.json").is_file():
            logger.info("Reusing the pre-trained LM in %s", lm_dir)
        elif llm is None:
            texts = lm_texts(lm["texts"], corpus, stage1.data.options.get("vocabulary_size"))
            if not (
                resume and (output_dir / "tokenizer" / "tokenizer_config.json").is_file()
            ):  # stage 1 may resume on it
                train_lm_tokenizer(lm, texts, output_dir / "tokenizer")
            logger.info(
                "Pre-training a small seq2seq LM on %d sentences of the synthetic language (mBART text infilling), "
                "in a second process alongside stage 1",
                len(texts),
            )
            lm_process = start_lm_pretraining(
                ceiling,
                lm,
                texts,
                output_dir / "tokenizer",
                list(corpus["validation"]["text"]),
                lm_dir,
                stage1.seed,
                threads,
            )

        tick = time.perf_counter()
        logger.info("Stage 1: visual encoder + VL-adapter + Light-T")
        result1 = train(stage1, datasets=corpus)
        timings["stage1"] = time.perf_counter() - tick
        if lm_process is not None:
            tick = time.perf_counter()
            wait_for_lm(lm_process, lm_dir)
            timings["waiting_for_lm"] = time.perf_counter() - tick
        if llm is None:
            lm_summary = json.loads((lm_dir / "pretraining.json").read_text(encoding="utf-8"))
            timings["lm_pretraining"] = lm_summary["seconds"]
        tick = time.perf_counter()
        logger.info("Stage 2: frozen visual encoder + LLM-adapter + the LM")
        result2 = train(stage2, datasets=corpus)
        timings["stage2"] = time.perf_counter() - tick
        if llm is None:
            if lm_process is not None:  # the LM's process may still be measuring the ceiling
                tick = time.perf_counter()
                lm_process.join()
                lm_process = None
                timings["waiting_for_ceiling"] = time.perf_counter() - tick
            if not ceiling_path.is_file():  # a resumed demo whose LM was reused, or a failed ceiling
                run_ceiling(lm_dir, *ceiling[:2], ceiling_path)
            ceiling_scores = json.loads(ceiling_path.read_text(encoding="utf-8"))
            timings["ceiling"] = ceiling_scores["seconds"]

        language = stage1.resolved().data.language
        baseline = constant_baseline(list(corpus["train"]["text"]), list(corpus["test"]["text"]), language)
        predictions1, predictions2 = test_predictions(result1.output_dir), test_predictions(result2.output_dir)
        examples = []
        for row in corpus["test"].select(range(min(num_examples, len(corpus["test"])))):
            examples.append(
                {
                    "id": row["id"],
                    "signs": row["gloss"],
                    "reference": row["text"],
                    "stage1": predictions1.get(row["id"], {}).get("hypothesis"),
                    "stage2": predictions2.get(row["id"], {}).get("hypothesis"),
                    "gloss_to_text": ceiling_scores["predictions"][len(examples)] if ceiling_scores else None,
                }
            )
        write_example_clips(
            corpus["test"].select(range(min(num_examples, len(corpus["test"])))), output_dir / "examples"
        )
        timings["total"] = time.perf_counter() - started
        metrics = {
            "stage1": _scores(result1.metrics["test"]),
            "stage2": _scores(result2.metrics["test"]),
            "baseline": baseline,
            "gloss_to_text": ceiling_scores
            and {k: v for k, v in ceiling_scores.items() if k in METRIC_KEYS + ("steps", "seconds", "signature")},
            "validation": {
                "stage1": _scores(result1.metrics.get("validation", {})),
                "stage2": _scores(result2.metrics.get("validation", {})),
            },
            "examples": examples,
            "language_model": llm or str(output_dir / "lm"),
            "lm_pretraining": lm_summary
            and {
                k: lm_summary.get(k)
                for k in (
                    "num_texts",
                    "num_parameters",
                    "vocab_size",
                    "steps",
                    "validation_loss_before",
                    "validation_loss_after",
                    "seconds",
                )
            },
            "corpus": {"options": dict(stage1.data.options), **{split: len(rows) for split, rows in corpus.items()}},
            "configs": {name: str(path) for name, path in files.items()},
            "overrides": list(overrides),
            "quick": quick,
            "threads": threads or torch.get_num_threads(),
            "seconds": {k: round(v, 1) for k, v in timings.items()},
        }
        tmp = output_dir / ".metrics.json.tmp"
        tmp.write_text(json.dumps(metrics, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        tmp.replace(output_dir / "metrics.json")
        return metrics
    finally:
        torch.set_num_threads(previous_threads)
        if lm_process is not None and lm_process.is_alive():  # stage 1 failed or was interrupted
            lm_process.terminate()
            lm_process.join()


# ------------------------------------------------------------------------------------------------
# Report


def format_report(metrics: dict, output_dir: Path) -> str:
    rows = [
        ("constant baseline", metrics["baseline"]),
        ("stage 1 (Light-T)", metrics["stage1"]),
        ("stage 2 (LM)", metrics["stage2"]),
    ]
    if metrics.get("gloss_to_text"):
        rows.append(("gloss-to-text", metrics["gloss_to_text"]))
    num = metrics["stage1"].get("num_examples", metrics["corpus"].get("test"))
    lines = [f"FLa-LLM demo: synthetic sign language -> English, test split ({num} clips of unseen sentences)", ""]
    lines.append(f"  {'':<19}" + "".join(f"{SCORE_NAMES[k]:>9}" for k in METRIC_KEYS))
    for name, scores in rows:
        lines.append(f"  {name:<19}" + "".join(f"{scores[k]:9.2f}" for k in METRIC_KEYS))
    lines += ["", f'  constant baseline: "{metrics["baseline"]["sentence"]}" for every clip']
    if metrics.get("gloss_to_text"):
        lines.append(
            "  gloss-to-text: the same LM fine-tuned on the gold signs with stage 2's budget (the ceiling of "
            "perfect recognition)"
        )
    for key, name in (("signature", "BLEU"), ("rouge_signature", "ROUGE-L")):
        if metrics["stage1"].get(key):
            lines.append(f"  {name}: {metrics['stage1'][key]}")
    lines += ["", "Translations of test clips:"]
    for example in metrics["examples"]:
        lines += [
            f"  [{example['id']}] signs: {example['signs']}",
            f"    reference: {example['reference']}",
            f"    stage 1:   {example['stage1']}",
            f"    stage 2:   {example['stage2']}",
        ]
        if example.get("gloss_to_text") is not None:
            lines.append(f"    gloss->text: {example['gloss_to_text']}")
    seconds = metrics["seconds"]
    names = {
        "corpus": "corpus",
        "stage1": "stage 1",
        "lm_pretraining": "LM pre-training alongside stage 1",
        "waiting_for_lm": "waiting for the LM",
        "stage2": "stage 2",
        "ceiling": "gloss-to-text ceiling (in the LM's process, after it)",
        "waiting_for_ceiling": "waiting for the ceiling",
    }
    parts = ", ".join(f"{names.get(k, k)} {v:.0f} s" for k, v in seconds.items() if k != "total")
    lines += [
        "",
        f"Wall time {seconds['total']:.0f} s ({parts}).",
        f"Models (from_pretrained / pipeline): {output_dir / 'stage1'}  {output_dir / 'stage2'}",
        f"Metrics: {output_dir / 'metrics.json'}",
        f"Curves (loss, learning rate, dev BLEU-4): {output_dir / 'runs' / 'stage1' / 'curves.png'}  "
        f"{output_dir / 'runs' / 'stage2' / 'curves.png'}",
        f"Test clips to watch and translate: {output_dir / 'examples'} "
        f"(flallm translate --model {output_dir / 'stage2'} {output_dir / 'examples'})",
        f"Try the model on a page: flallm app --model {output_dir / 'stage2'}",
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------
# Command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="stage1.KEY=V / stage2.KEY=V (flallm train config keys), lm.SECTION.KEY=V (LM pre-training: "
        "texts, tokenizer, model, training), data.OPTION=V (synthetic corpus option, both stages).",
    )
    parser.add_argument(
        "--output-dir",
        default=DEFAULT_OUTPUT_DIR,
        help=f"Where the exports, runs and metrics.json go (default: ./{DEFAULT_OUTPUT_DIR}).",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="Tiny corpus and models, one epoch each: a smoke run of every step (it cannot learn).",
    )
    parser.add_argument(
        "--llm",
        metavar="ID_OR_DIR",
        help="Stage 2's LLM (Hub id or folder with model + tokenizer) instead of pre-training a small one "
        "offline, e.g. facebook/mbart-large-cc25 where the Hub is reachable.",
    )
    parser.add_argument(
        "--target-language",
        metavar="CODE",
        help="Language code token of the LLM's tokenizer for the targets (en_XX for mbart-large-cc25).",
    )
    parser.add_argument("--stage1-epochs", type=int, help="Same as stage1.training.epochs=N.")
    parser.add_argument("--stage2-epochs", type=int, help="Same as stage2.training.epochs=N.")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="PyTorch intra-op threads (default 1, clips are decoded in a separate worker; 0: PyTorch's choice).",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="Continue an interrupted demo in --output-dir (reuse its LM, resume the stages' checkpoints).",
    )
    parser.add_argument("--num-examples", type=int, default=5, help="Test translations to print (default 5).")
    parser.add_argument("--stage1-config", metavar="YAML", help="Instead of train/configs/demo_stage1.yaml.")
    parser.add_argument("--stage2-config", metavar="YAML", help="Instead of train/configs/demo_stage2.yaml.")


def run(args: argparse.Namespace) -> int:
    overrides = list(args.overrides)
    for stage in ("stage1", "stage2"):
        epochs = getattr(args, f"{stage}_epochs", None)
        if epochs:
            overrides.append(f"{stage}.training.epochs={epochs}")
    config_files = {
        stage: getattr(args, f"{stage}_config")
        for stage in ("stage1", "stage2")
        if getattr(args, f"{stage}_config", None)
    }
    output_dir = Path(args.output_dir).resolve()
    metrics = run_demo(
        output_dir,
        quick=args.quick,
        llm=args.llm,
        target_language=args.target_language,
        overrides=overrides,
        threads=args.threads or None,
        resume=args.resume,
        config_files=config_files,
        num_examples=args.num_examples,
    )
    print(format_report(metrics, output_dir))
    return 0
