"""`flallm study TABLE`: every row of one of the paper's ablation tables, over seeds, beside the paper's numbers.

    flallm study factorization                              # synthetic corpus at the demo's sizes, seeds 0 1 2
    flallm study adapter-input --seeds 0 1 --quick          # a smoke run of every row (seconds; learns nothing)
    flallm study factorization --dataset phoenix14t data.data_dir=/data/PHOENIX-2014-T    # the paper configs

Tables (`TABLES`): factorization, adapter-input, freezing, llm-init. A row is one training run per seed; rows share
runs (the factorized FLa-LLM run is a row of every table, and its stage 1 is the "stage 1 only" row), and tables
run with the same `--runs-dir` share them: `flallm study adapter-input` after `flallm study factorization` trains
only its two new rows.

On the synthetic corpus (default) the runs are the demo's (train/configs/demo_stage{1,2}.yaml, the LM pre-trained
once as `flallm demo` does, standing in for the pre-trained mBART); with `--dataset NAME_OR_DIR` they are the
PHOENIX-2014T paper configs of train/configs/ and train/configs/ablations/, so the same command is the reproduction on
real data. Overrides: `stage1.KEY=V` / `stage2.KEY=V` (every run of that stage), `data.KEY=V` (a synthetic-corpus
option; with --dataset, a data.* key of every run), `lm.SECTION.KEY=V` (the synthetic LM).

Output (DIR = --output-dir, default ./flallm-study/TABLE):
    DIR/results.md     a table of the rows (mean +- std over seeds, the paper's BLEU-4), whether the paper's ordering
                       holds, every run; DIR/results.json the same with every run's scores, config, commit, time
    DIR/results.png    bars with error bars, one per row; DIR/gradients.png (factorization): per-module gradient
                       norms of the joint run and of the factorized run's stage 1 (the paper's analysis)
    RUNS/runs/RUN/seedN  one `flallm train` run directory each (RUNS = --runs-dir, default DIR); a run is finished
                       when its study_result.json exists: a study started again skips finished runs and resumes
                       unfinished ones from their checkpoints. RUNS/lm, RUNS/tokenizer, RUNS/cache: the synthetic LM
                       and the corpus / feature caches.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import logging
import os
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from .metrics import SCORE_NAMES

logger = logging.getLogger(__name__)

METRICS = tuple((key, SCORE_NAMES[key]) for key in ("bleu1", "bleu4", "rougeL"))
RESULT_FILE = "study_result.json"


# ------------------------------------------------------------------------------------------------
# Runs and tables


def _untrained_encoder(stage1: dict, run: dict, freeze: str) -> None:
    """No stage 1: stage 1's visual encoder (architecture and frame processing), randomly initialised."""
    model = run["model"]
    model.update(stage1=None, vision_model=None, video_processor=dict(stage1["model"]["video_processor"]))
    model["config"] = {
        **model["config"],
        "freeze": freeze,
        **{
            key: stage1["model"]["config"][key]
            for key in ("vision_config", "frame_sample_rate", "temporal_kernel_size", "temporal_hidden_size")
            if key in stage1["model"]["config"]
        },
    }
    run["feature_cache"]["enabled"] = False  # the encoder (or its temporal module) trains: nothing to cache


def _adapter_lr(run: dict) -> float:
    return (run["optimizer"].get("module_lr") or {}).get("adapter", run["optimizer"]["lr"])


def _joint(stage1: dict, run: dict) -> None:
    """Joint end-to-end: the untrained encoder trained with the LM, with stage 1's budget and encoder rate."""
    _untrained_encoder(stage1, run, freeze="none")
    run["training"].update(epochs=stage1["training"]["epochs"], batch_size=stage1["training"]["batch_size"])
    run["evaluation"]["every_epochs"] = stage1["evaluation"]["every_epochs"]
    run["optimizer"]["module_lr"] = {"adapter": _adapter_lr(run), "visual_encoder": stage1["optimizer"]["lr"]}


def _stage2_only(stage1: dict, run: dict) -> None:
    """Stage 2 only: the untrained backbone frozen; the temporal module trains at the adapter's rate (as the paper
    config, whose backbone is ImageNet's)."""
    _untrained_encoder(stage1, run, freeze="backbone")
    run["optimizer"]["module_lr"] = {"adapter": _adapter_lr(run), "visual_encoder.temporal": _adapter_lr(run)}


def _freeze_backbone(stage1: dict, run: dict) -> None:
    run["model"]["config"]["freeze"] = "backbone"
    run["optimizer"]["module_lr"] = {"adapter": _adapter_lr(run), "visual_encoder.temporal": _adapter_lr(run)}
    run["feature_cache"]["enabled"] = False


def _freeze_none(stage1: dict, run: dict) -> None:
    run["model"]["config"]["freeze"] = "none"
    run["optimizer"]["module_lr"] = {
        "adapter": _adapter_lr(run),
        "visual_encoder": 1.0e-4,
    }  # as freeze_none_stage2.yaml
    run["feature_cache"]["enabled"] = False


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One training run of a study. `synthetic` adapts the demo's stage config (given the stage-1 config) on the
    synthetic corpus; `paper_config` is the config under train/configs for real corpora."""

    stage: str  # stage1 | stage2
    paper_config: str
    after_stage1: bool = False  # stage 2 on this seed's `stage1` run
    synthetic: Callable[[dict, dict], None] | None = None
    overrides: tuple = ()  # KEY=VALUE on both corpora


RUNS = {
    "stage1": RunSpec("stage1", "phoenix14t_stage1.yaml"),
    "factorized": RunSpec("stage2", "phoenix14t_stage2.yaml", after_stage1=True),
    "joint": RunSpec("stage2", "ablations/joint_end_to_end.yaml", synthetic=_joint),
    "stage2_only": RunSpec("stage2", "ablations/stage2_only_imagenet.yaml", synthetic=_stage2_only),
    "adapter_frame": RunSpec(
        "stage2",
        "ablations/adapter_input_frame_stage2.yaml",
        after_stage1=True,
        overrides=("model.config.adapter_input=frame",),
    ),
    "adapter_light_t": RunSpec(
        "stage2",
        "ablations/adapter_input_light_t_stage2.yaml",
        after_stage1=True,
        overrides=("model.config.adapter_input=light_t",),
    ),
    "freeze_backbone": RunSpec(
        "stage2", "ablations/freeze_backbone_stage2.yaml", after_stage1=True, synthetic=_freeze_backbone
    ),
    "freeze_none": RunSpec("stage2", "ablations/freeze_none_stage2.yaml", after_stage1=True, synthetic=_freeze_none),
    "random_lm": RunSpec(
        "stage2",
        "ablations/llm_mbart_random_stage2.yaml",
        after_stage1=True,
        overrides=("model.language_model_init=random",),
    ),
}


@dataclasses.dataclass(frozen=True)
class Row:
    label: str
    run: str  # a key of RUNS; its test scores are the row's
    paper_bleu4: float  # PHOENIX-2014T test BLEU-4 in the paper


@dataclasses.dataclass(frozen=True)
class Table:
    title: str
    rows: tuple
    note: str = ""


TABLES = {
    "factorization": Table(
        "Factorized training against joint end-to-end training with the LLM",
        (
            Row("joint end-to-end", "joint", 12.90),
            Row("stage 2 only (frozen encoder)", "stage2_only", 5.62),
            Row("stage 1 only (Light-T)", "stage1", 17.69),
            Row("factorized (FLa-LLM)", "factorized", 23.09),
        ),
        "Stage 2 only: the paper's frozen encoder is ImageNet's (no ImageNet weights offline: on the synthetic "
        "corpus it is stage 1's architecture, untrained, its temporal module trained with the adapter). Joint: "
        "on the synthetic corpus, stage 1's budget (epochs, batch) and encoder rate.",
    ),
    "adapter-input": Table(
        "What the LLM-adapter reads",
        (
            Row("frame-wise (backbone)", "adapter_frame", 20.30),
            Row("sign-wise (temporal module)", "factorized", 23.09),
            Row("Light-T encoder states", "adapter_light_t", 22.60),
        ),
    ),
    "freezing": Table(
        "What stage 2 freezes",
        (
            Row("nothing", "freeze_none", 17.86),
            Row("backbone", "freeze_backbone", 20.40),
            Row("backbone + temporal", "factorized", 23.09),
        ),
    ),
    "llm-init": Table(
        "Pre-trained against randomly initialised LLM",
        (Row("random-init LLM", "random_lm", 16.19), Row("pre-trained LLM", "factorized", 23.09)),
    ),
}

QUICK_REAL_OVERRIDES = (
    "training.max_steps=2",
    "data.max_train_samples=16",
    "data.max_eval_samples=4",
    "evaluation.num_beams=1",
    "evaluation.max_new_tokens=8",
)
# --quick on every corpus: gradient norms at every step, so that a smoke run draws gradients.png too.
QUICK_OVERRIDES = ("logging.grad_norms_every_steps=1",)


def runs_of(table: Table) -> list[str]:
    """The runs a table needs, each once, stage 1 first (stage-2 runs may start from it)."""
    names = {row.run for row in table.rows}
    names |= {"stage1" for name in names if RUNS[name].after_stage1}
    return sorted(names, key=lambda name: (RUNS[name].stage, name))


def run_dir(runs_dir: Path, name: str, seed: int) -> Path:
    return runs_dir / "runs" / name / f"seed{seed}"


# ------------------------------------------------------------------------------------------------
# Configs


def build_run_configs(
    table: Table, seeds, runs_dir: Path, dataset: str = "synthetic", quick: bool = False, overrides=()
) -> tuple[dict, dict | None]:
    """{(run, seed): TrainConfig} for every run of `table`, and the synthetic LM's settings (None on real data)."""
    from .config import SHIPPED_CONFIGS, TrainConfig, apply_override, read_yaml
    from .demo import build_configs, split_overrides

    groups = split_overrides(overrides)
    if dataset == "synthetic":
        quick_overrides = [f"{stage}.{o}" for stage in ("stage1", "stage2") for o in QUICK_OVERRIDES] if quick else []
        lm, stage1, stage2, _ = build_configs(
            runs_dir, quick=quick, overrides=[*quick_overrides, *overrides], resume=True
        )
        bases = {"stage1": stage1.to_dict(), "stage2": stage2.to_dict()}
    else:
        if groups["lm"]:
            raise ValueError(
                f"lm.* overrides ({groups['lm']}) set the synthetic corpus's LM; with --dataset {dataset} "
                "choose the LLM with stage2.model.language_model=ID_OR_DIR"
            )
        lm, bases = None, None
    configs = {}
    for name in runs_of(table):
        spec = RUNS[name]
        for seed in seeds:
            if bases is not None:
                data = copy.deepcopy(bases[spec.stage])
                if spec.synthetic is not None:
                    spec.synthetic(bases["stage1"], data)
            else:
                data = read_yaml(SHIPPED_CONFIGS / spec.paper_config)
                data.setdefault("data", {})["dataset"] = dataset
                for override in (*((*QUICK_REAL_OVERRIDES, *QUICK_OVERRIDES) if quick else ()), *groups[spec.stage]):
                    apply_override(data, override)
                for override in groups["data"]:
                    apply_override(data["data"], override)
            for override in spec.overrides:
                apply_override(data, override)
            data.update(seed=seed, output_dir=str(run_dir(runs_dir, name, seed)), export_dir=None)
            if spec.after_stage1:
                data["model"]["stage1"] = str(run_dir(runs_dir, "stage1", seed) / "best")
            data.setdefault("checkpointing", {})["resume"] = "auto"
            configs[name, seed] = TrainConfig.from_dict(data, source=f"study run {name} (seed {seed})")
    return configs, lm


# ------------------------------------------------------------------------------------------------
# Running


def git_commit() -> str | None:
    """The package checkout's commit (`+dirty` with uncommitted changes to tracked files), if it is a git checkout."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD"], cwd=root, capture_output=True).returncode != 0
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+dirty" if dirty else "")


def _comparable(config_dict: dict) -> dict:
    return json.loads(json.dumps(config_dict))


def finished_result(config) -> dict | None:
    """The study_result.json of a finished run, or None; a finished run made with another config is an error."""
    path = Path(config.output_dir) / RESULT_FILE
    if not path.is_file():
        return None
    result = json.loads(path.read_text(encoding="utf-8"))
    new = _comparable(config.to_dict())
    if result.get("config") != new:
        changed = sorted(
            key for key in set(new) | set(result.get("config", {})) if new.get(key) != result.get("config", {}).get(key)
        )
        raise ValueError(
            f"{path.parent} is a finished run made with another config (it differs in {changed}): use "
            "another --runs-dir, or delete that run directory to train it again"
        )
    return result


def train_run(config, commit: str | None) -> dict:
    """One `flallm train` run; its study_result.json (written last, atomically) marks it finished."""
    from data_builders.common import write_text_atomic

    from .trainer import train

    started = time.perf_counter()
    result = train(config)
    record = {
        "test": result.metrics.get("test"),
        "validation": result.metrics.get("validation"),
        "global_step": result.global_step,
        "seconds": round(time.perf_counter() - started, 1),
        "commit": commit,
        "config": _comparable(config.to_dict()),
    }
    write_text_atomic(Path(config.output_dir) / RESULT_FILE, json.dumps(record, indent=2, ensure_ascii=False))
    return record


def _job_process(log_path: str, log_level: int, threads: int | None, function, *args) -> None:
    """Entry point of a job's process. Its output (log lines at INFO, progress bars, an error) goes to `log_path`, so
    that the runs side by side leave the study's console to the study's own lines."""
    os.environ.setdefault("TQDM_MININTERVAL", "30")  # progress bars in a log file: a line every 30 s, not every step
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "a", encoding="utf-8")  # noqa: SIM115 (stdout/stderr for the rest of the process)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    logging.getLogger("accelerate").setLevel(logging.WARNING)
    if threads:
        import torch

        torch.set_num_threads(threads)
    function(*args)


@dataclasses.dataclass
class Job:
    name: str
    function: Callable
    args: tuple
    needs: tuple = ()
    done: Callable[[], bool] = lambda: True  # whether the job's output is complete (read after it ran)
    log: Path | None = None  # where its process writes (parallel runs)


def run_jobs(jobs: list[Job], parallel: int = 1, threads: int | None = None) -> dict[str, str]:
    """Run the jobs, each after those it needs, up to `parallel` at a time (1: in this process, in order).

    A failed job's dependents are skipped; the others go on. Returns {job name: error} of what did not finish.
    """
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    pending, running, done, failed = list(jobs), {}, set(), {}
    try:
        while pending or running:
            for job in list(pending):
                if len(running) >= max(1, parallel):
                    break
                missing = [need for need in job.needs if need in failed]
                if missing:
                    failed[job.name] = f"skipped: {missing[0]} did not finish"
                    pending.remove(job)
                elif all(need in done for need in job.needs):
                    pending.remove(job)
                    logger.info("study: starting %s", job.name)
                    if parallel <= 1:
                        started = time.perf_counter()
                        try:
                            job.function(*job.args)
                        except Exception as error:  # noqa: BLE001 (one failed run must not stop the study)
                            logger.debug("%s", traceback.format_exc())
                            failed[job.name] = f"{type(error).__name__}: {error}"
                            logger.error("study: %s failed: %s", job.name, failed[job.name])
                        else:
                            if job.done():
                                done.add(job.name)
                                logger.info("study: %s finished in %.0f s", job.name, time.perf_counter() - started)
                            else:
                                failed[job.name] = "it ended without writing its result"
                                logger.error("study: %s failed: %s", job.name, failed[job.name])
                    else:
                        process = context.Process(
                            target=_job_process,
                            name=job.name,
                            args=(
                                str(job.log),
                                logging.getLogger().getEffectiveLevel(),
                                threads,
                                job.function,
                                *job.args,
                            ),
                        )
                        process.start()
                        running[job.name] = (job, process, time.perf_counter())
            for name, (job, process, started) in list(running.items()):
                if process.is_alive():
                    continue
                process.join()
                del running[name]
                if process.exitcode == 0 and job.done():
                    done.add(name)
                    logger.info("study: %s finished in %.0f s", name, time.perf_counter() - started)
                else:
                    failed[name] = f"its process exited with status {process.exitcode}: see {job.log}"
                    logger.error("study: %s failed: %s", name, failed[name])
            if running:
                time.sleep(0.5)
            elif pending and not any(all(n in done or n in failed for n in job.needs) for job in pending):
                raise RuntimeError(f"study jobs wait for each other: {[job.name for job in pending]}")
    finally:
        for _, process, _ in running.values():  # interrupted: stop the runs (their checkpoints resume them)
            process.terminate()
            process.join()
    return failed


def _lm_jobs(lm: dict, configs: dict, runs_dir: Path) -> list[Job]:
    """The synthetic LM (as `flallm demo` makes it): the tokenizer now (stage 1 uses it), the LM as a job."""
    from .demo import build_corpus, lm_texts, pretrain_lm, train_lm_tokenizer

    config = next(iter(configs.values()))  # every run reads the same corpus
    corpus = build_corpus(config)  # built once here: the runs then read it from the cache
    lm_dir, tokenizer_dir = runs_dir / "lm", runs_dir / "tokenizer"
    if (lm_dir / "pretraining.json").is_file():
        return []
    texts = lm_texts(lm["texts"], corpus, config.data.options.get("vocabulary_size"))
    if not (tokenizer_dir / "tokenizer_config.json").is_file():
        train_lm_tokenizer(lm, texts, tokenizer_dir)
    # One LM for every run and seed, as the paper's pre-trained mBART is one model (its seed: lm.training.seed).
    args = (lm, texts, tokenizer_dir, list(corpus["validation"]["text"]), lm_dir, 0, None, False)
    return [
        Job(
            "lm",
            pretrain_lm,
            args,
            done=lambda: (lm_dir / "pretraining.json").is_file(),
            log=runs_dir / "lm-pretraining.log",
        )
    ]


def run_study(
    table_name: str,
    seeds=(0, 1, 2),
    output_dir: str | Path | None = None,
    runs_dir: str | Path | None = None,
    dataset: str = "synthetic",
    quick: bool = False,
    overrides=(),
    jobs: int | None = None,
    threads: int | None = None,
    command: str | None = None,
) -> dict:
    """Train every missing run of the table, then write DIR/results.{md,json,png}; returns what results.json holds."""
    if table_name not in TABLES:
        raise ValueError(f"unknown study table {table_name!r}: expected one of {sorted(TABLES)}")
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds must be distinct training seeds, got {list(seeds)}")
    table = TABLES[table_name]
    output_dir = Path(output_dir or Path("flallm-study") / table_name).resolve()
    runs_dir = Path(runs_dir).resolve() if runs_dir else output_dir
    synthetic = dataset == "synthetic"
    if jobs is None:
        jobs = min(2, os.cpu_count() or 1) if synthetic else 1
    if threads is None and synthetic:
        threads = 1
    output_dir.mkdir(parents=True, exist_ok=True)
    configs, lm = build_run_configs(table, seeds, runs_dir, dataset, quick, overrides)
    commit = git_commit()

    pending = {key: config for key, config in configs.items() if finished_result(config) is None}
    logger.info(
        "study %s: %d runs, %d finished before, %d to train (%d at a time)",
        table_name,
        len(configs),
        len(configs) - len(pending),
        len(pending),
        jobs,
    )
    job_list = _lm_jobs(lm, configs, runs_dir) if synthetic and pending else []
    needs_lm = bool(job_list)
    # Longest first: the stage-1 runs (the others wait for them), then the runs that do not.
    order = sorted(pending, key=lambda key: (RUNS[key[0]].stage, RUNS[key[0]].after_stage1, key[1], key[0]))
    for name, seed in order:
        config = pending[name, seed]
        needs = []
        if RUNS[name].after_stage1 and ("stage1", seed) in pending:
            needs.append(f"stage1/seed{seed}")
        if RUNS[name].stage == "stage2" and needs_lm:
            needs.append("lm")
        result_path = Path(config.output_dir) / RESULT_FILE
        job_list.append(
            Job(
                f"{name}/seed{seed}",
                train_run,
                (config, commit),
                tuple(needs),
                done=result_path.is_file,
                log=result_path.with_name("study.log"),
            )
        )
    previous_threads = None
    if threads and jobs <= 1:
        import torch

        previous_threads = torch.get_num_threads()
        torch.set_num_threads(threads)
    try:
        failed = run_jobs(job_list, parallel=jobs, threads=threads)
    finally:
        if previous_threads:
            import torch

            torch.set_num_threads(previous_threads)

    results = summarise(table_name, configs, seeds, dataset, quick, commit, command, failed)
    write_results(results, output_dir, runs_dir)
    return results


# ------------------------------------------------------------------------------------------------
# Results


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    return (statistics.mean(values), statistics.pstdev(values)) if values else (None, None)


def ordering(rows: list[dict]) -> dict:
    """Does the paper's order of the rows (by BLEU-4) hold for the means here? Lists every pair out of order, and
    every pair in order by less than the larger std (not resolved by these seeds)."""
    import itertools

    paper = sorted(rows, key=lambda row: -row["paper_bleu4"])
    inversions, close = [], []
    for better, worse in itertools.combinations(paper, 2):
        a, b = better["mean"].get("bleu4"), worse["mean"].get("bleu4")
        if a is None or b is None:
            continue
        if a <= b:
            inversions.append((better["label"], worse["label"]))
        if abs(a - b) < max(better["std"]["bleu4"], worse["std"]["bleu4"]):
            close.append((better["label"], worse["label"]))
    measured = all(row["mean"].get("bleu4") is not None for row in rows)
    return {
        "paper": [row["label"] for row in paper],
        "here": [row["label"] for row in sorted(rows, key=lambda r: -(r["mean"].get("bleu4") or -1))],
        "holds": measured and not inversions,
        "complete": measured,
        "inversions": inversions,
        "within_std": close,
    }


def summarise(
    table_name: str,
    configs: dict,
    seeds,
    dataset: str,
    quick: bool,
    commit: str | None,
    command: str | None,
    failed: dict,
) -> dict:
    table = TABLES[table_name]
    runs, rows = [], []
    for row in table.rows:
        values = {key: [] for key, _ in METRICS}
        for seed in seeds:
            config = configs[row.run, seed]
            path = Path(config.output_dir) / RESULT_FILE
            result = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
            test = (result or {}).get("test") or {}
            runs.append(
                {
                    "row": row.label,
                    "run": row.run,
                    "seed": seed,
                    "output_dir": config.output_dir,
                    "scores": {key: test.get(key) for key in ("bleu1", "bleu2", "bleu3", "bleu4", "rougeL", "chrf")},
                    "signature": test.get("signature"),
                    "validation": {key: ((result or {}).get("validation") or {}).get(key) for key, _ in METRICS},
                    "global_step": (result or {}).get("global_step"),
                    "seconds": (result or {}).get("seconds"),
                    "commit": (result or {}).get("commit"),
                    "config": (result or {}).get("config"),
                    "error": None if result else failed.get(f"{row.run}/seed{seed}", "not run"),
                }
            )
            for key, _ in METRICS:
                if test.get(key) is not None:
                    values[key].append(test[key])
        stats = {key: _mean_std(vals) for key, vals in values.items()}
        rows.append(
            {
                "label": row.label,
                "run": row.run,
                "paper_bleu4": row.paper_bleu4,
                "values": values,
                "mean": {key: mean for key, (mean, _) in stats.items() if mean is not None},
                "std": {key: std for key, (_, std) in stats.items() if std is not None},
                "num_seeds": len(values["bleu4"]),
            }
        )
    return {
        "table": table_name,
        "title": table.title,
        "note": table.note,
        "dataset": dataset,
        "quick": quick,
        "seeds": list(seeds),
        "commit": commit,
        "command": command,
        "rows": rows,
        "ordering": ordering(rows),
        "runs": runs,
        "failed": failed,
    }


def ordering_sentence(order: dict) -> str:
    paper = " > ".join(order["paper"])
    if not order["complete"]:
        return f"The paper's ordering (BLEU-4: {paper}) cannot be checked: some rows have no finished run."
    if order["holds"]:
        text = f"The paper's ordering (BLEU-4: {paper}) **holds** here"
        if order["within_std"]:
            text += " (by less than one std for " + "; ".join(f"{a} > {b}" for a, b in order["within_std"]) + ")"
        return text + "."
    swapped = "; ".join(
        f"{a} is not above {b}"
        + (" (by less than one std: not resolved by these seeds)" if (a, b) in order["within_std"] else "")
        for a, b in order["inversions"]
    )
    return (
        f"The paper's ordering (BLEU-4: {paper}) **does not hold** here: {swapped} (here: {' > '.join(order['here'])})."
    )


def _cell(row: dict, key: str) -> str:
    if key not in row["mean"]:
        return "-"
    return f"{row['mean'][key]:.2f} +- {row['std'][key]:.2f}"


def format_results(results: dict) -> str:
    corpus = (
        "synthetic corpus, the demo's sizes"
        if results["dataset"] == "synthetic"
        else f"{results['dataset']}, the paper configs"
    )
    lines = [
        f"# flallm study {results['table']}: {results['title']}",
        "",
        f"{corpus}; seeds {' '.join(map(str, results['seeds']))}; test split; mean +- std (population) over the "
        "seeds. The paper's numbers are PHOENIX-2014T test BLEU-4."
        + (" **--quick: a smoke run, not a result.**" if results["quick"] else ""),
        "",
    ]
    lines += [
        "| row | " + " | ".join(name for _, name in METRICS) + " | paper BLEU-4 | seeds |",
        "|---|" + "---|" * (len(METRICS) + 2),
    ]
    for row in results["rows"]:
        lines.append(
            f"| {row['label']} | "
            + " | ".join(_cell(row, key) for key, _ in METRICS)
            + f" | {row['paper_bleu4']:.2f} | {row['num_seeds']} |"
        )
    lines += ["", ordering_sentence(results["ordering"])]
    if results["note"]:
        lines += ["", results["note"]]
    if results.get("gradients"):
        lines += ["", results["gradients"]]
    lines += [
        "",
        "## Every run",
        "",
        "| row | seed | " + " | ".join(name for _, name in METRICS) + " | steps | seconds | run directory |",
        "|---|---|" + "---|" * (len(METRICS) + 3),
    ]
    for run in results["runs"]:
        scores = " | ".join(
            "-" if run["scores"].get(key) is None else f"{run['scores'][key]:.2f}" for key, _ in METRICS
        )
        where = run["output_dir"] if not run["error"] else f"{run['output_dir']} ({run['error']})"
        lines.append(
            f"| {run['row']} | {run['seed']} | {scores} | {run['global_step'] or '-'} | "
            f"{run['seconds'] or '-'} | {where} |"
        )
    signature = next((run["signature"] for run in results["runs"] if run.get("signature")), None)
    lines += [""] + ([f"BLEU: {signature}"] if signature else [])
    lines += [
        f"Command: `{results['command']}`" if results["command"] else "",
        f"Commit: {results['commit'] or 'unknown (not a git checkout)'}",
    ]
    return "\n".join(line for line in lines if line is not None) + "\n"


def read_grad_norms(run_output_dir: str | Path) -> list[dict]:
    path = Path(run_output_dir) / "grad_norms.jsonl"
    if not path.is_file():
        return []
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def gradient_summary(panels: list[dict]) -> str:
    """The paper's measure in one line per run: the visual encoder's gradient norm against the decoder's."""
    parts = []
    for panel in panels:
        ratios = [
            (r.get("backbone", 0.0) ** 2 + r.get("temporal", 0.0) ** 2) ** 0.5 / r["lm_decoder"]
            for r in panel["records"]
            if r.get("lm_decoder")
        ]
        if ratios:
            parts.append(f"{panel['title']}: median {statistics.median(ratios):.3g} over {len(ratios)} logged steps")
    if not parts:
        return ""
    return (
        "Gradient norm of the visual encoder (backbone + temporal) over that of the language model's decoder "
        "(gradients.png): " + "; ".join(parts) + "."
    )


def write_results(results: dict, output_dir: Path, runs_dir: Path) -> None:
    from data_builders.common import write_text_atomic

    from .plots import plot_gradient_norms, plot_study

    seed = results["seeds"][0]
    if results["table"] == "factorization":
        panels = [
            {"title": f"joint end-to-end (seed {seed})", "records": read_grad_norms(run_dir(runs_dir, "joint", seed))},
            {
                "title": f"factorized, stage 1 (seed {seed})",
                "records": read_grad_norms(run_dir(runs_dir, "stage1", seed)),
            },
        ]
        panels = [panel for panel in panels if panel["records"]]
        if panels:
            plot_gradient_norms(panels, output_dir / "gradients.png")
            results["gradients"] = gradient_summary(panels)
    bars = [
        {"label": row["label"], "values": row["values"]["bleu4"], "paper": row["paper_bleu4"]}
        for row in results["rows"]
    ]
    plot_study(
        f"flallm study {results['table']} ({'synthetic' if results['dataset'] == 'synthetic' else results['dataset']}, "
        f"{len(results['seeds'])} seeds)",
        bars,
        output_dir / "results.png",
    )
    write_text_atomic(output_dir / "results.json", json.dumps(results, indent=2, ensure_ascii=False))
    write_text_atomic(output_dir / "results.md", format_results(results))


# ------------------------------------------------------------------------------------------------
# Command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("table", choices=sorted(TABLES), help="The paper's table to run.")
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="stage1.KEY=V / stage2.KEY=V (every run of that stage), data.KEY=V (synthetic-corpus option; "
        "with --dataset, a data key of every run), lm.SECTION.KEY=V (the synthetic LM).",
    )
    parser.add_argument(
        "--dataset",
        default="synthetic",
        metavar="NAME_OR_DIR",
        help="synthetic (default: the demo's sizes), or a corpus name / prepared folder: the paper configs.",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="Training seeds (default 0 1 2).")
    parser.add_argument("--output-dir", help="Where results.md/json/png go (default ./flallm-study/TABLE).")
    parser.add_argument(
        "--runs-dir",
        help="Where the runs go (default: --output-dir); tables run with the same --runs-dir share their common runs.",
    )
    parser.add_argument("--quick", action="store_true", help="Every row for a few steps: a smoke run of the set-up.")
    parser.add_argument("--jobs", type=int, help="Runs at a time (default: 2 on the synthetic corpus, else 1).")
    parser.add_argument("--threads", type=int, help="PyTorch threads per run (default: 1 on the synthetic corpus).")


def run(args: argparse.Namespace) -> int:
    command = "flallm study " + " ".join(sys.argv[sys.argv.index("study") + 1 :]) if "study" in sys.argv else None
    results = run_study(
        args.table,
        seeds=args.seeds,
        output_dir=args.output_dir,
        runs_dir=args.runs_dir,
        dataset=args.dataset,
        quick=args.quick,
        overrides=args.overrides,
        jobs=args.jobs,
        threads=args.threads,
        command=command,
    )
    output_dir = Path(args.output_dir or Path("flallm-study") / args.table).resolve()
    print(format_results(results))
    print(
        f"Written: {output_dir / 'results.md'}, results.json, results.png"
        + (", gradients.png" if results.get("gradients") else "")
    )
    return 1 if results["failed"] else 0
