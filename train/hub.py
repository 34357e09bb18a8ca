"""`flallm push`: share a finished FLa-LLM stage on the Hugging Face Hub, with its model card (train/model_card.py).

`flallm push --model RUN_DIR --repo-id USER/NAME` uploads, in one commit, the model files of a stage's
`save_pretrained` directory (an allow-list: weights, configs, processor and tokenizer, remote code, metrics, training
config) and a `README.md` card. When the directory lacks the pipeline's code, the push adds it (and
`custom_pipelines` to the uploaded config.json), so the repository works with `pipeline(model=repo,
trust_remote_code=True)` where flallm is not installed. Only `huggingface_hub` and `yaml` are imported here.
"""

import argparse
import fnmatch
import json
import logging
import os
from pathlib import Path

from .model_card import (
    STAGE_NAMES,
    TRAINING_CONFIG_FILE,
    RunInfo,
    read_run_dir,
    render_card,
    render_model_card,
    resolve_stage,
)

logger = logging.getLogger(__name__)

# The pipeline's remote code and its config entry, as SignLanguageTranslationPipeline.save_pretrained writes them.
PIPELINE_SOURCE_DIR = Path(__file__).resolve().parent.parent / "modeling_flallm"
PIPELINE_FILES = ("pipeline_flallm.py", "video_io.py")
PIPELINE_TASK = "sign-language-translation"
PIPELINE_ENTRY = {"impl": "pipeline_flallm.SignLanguageTranslationPipeline", "pt": ["AutoModel"], "type": "multimodal"}

# What a push uploads: an allow-list, so that a stray `.env`, key, optimizer state or log in the folder is never
# published. Weights as safetensors only (a pickle is code); the remote-code modules are the package's own files.
UPLOAD_PATTERNS = (
    "*.safetensors",
    "*.safetensors.index.json",  # weights
    "config.json",
    "generation_config.json",
    "processor_config.json",
    "preprocessor_config.json",
    "video_preprocessor_config.json",  # configs
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "sentencepiece.bpe.model",
    "spiece.model",
    "tokenizer.model",
    "chat_template.jinja",  # tokenizer
    "metrics.json",
    "metrics_*.json",
    TRAINING_CONFIG_FILE,  # what the card reports
)
REMOTE_CODE_FILES = tuple(sorted(path.name for path in PIPELINE_SOURCE_DIR.glob("*.py") if path.name != "__init__.py"))


def select_files(model_dir) -> tuple[list[str], list[str]]:
    """(files to upload, files skipped): relative paths. Only top-level files on the allow-list (`UPLOAD_PATTERNS`,
    the remote-code modules) are uploaded; subfolders (checkpoints, logs) and everything else are skipped, as is an old
    README.md (the card replaces it)."""
    model_dir = Path(model_dir)
    upload, skipped = [], []
    for root, dirs, files in os.walk(model_dir):
        dirs.sort()
        for name in sorted(files):
            relative = (Path(root) / name).relative_to(model_dir).as_posix()
            allowed = root == str(model_dir) and (
                name in REMOTE_CODE_FILES or any(fnmatch.fnmatch(name, p) for p in UPLOAD_PATTERNS)
            )
            (upload if allowed else skipped).append(relative)
    return upload, [path for path in skipped if path != "README.md"]


def files_to_upload(model_dir) -> list[str]:
    """Relative paths of the files a push uploads (see `select_files`)."""
    return select_files(model_dir)[0]


def _pipeline_additions(info: RunInfo, paths: list[str]) -> dict:
    """What makes `pipeline(model=repo, trust_remote_code=True)` work without flallm installed.

    A training export holds the model's remote code (auto_map) but not the pipeline's: add
    `custom_pipelines` to the uploaded config.json (the local file is left alone) and the pipeline
    modules, as `SignLanguageTranslationPipeline.save_pretrained` would have written them.
    """
    if info.config.get("custom_pipelines") or "auto_map" not in info.config:
        return {}
    extra = {}
    for name in PIPELINE_FILES:
        if name not in paths:
            extra[name] = (PIPELINE_SOURCE_DIR / name).read_bytes()
    config = {**info.config, "custom_pipelines": {PIPELINE_TASK: dict(PIPELINE_ENTRY)}}
    extra["config.json"] = (json.dumps(config, indent=2, sort_keys=True) + "\n").encode("utf-8")
    return extra


def push_stage_to_hub(
    model_dir,
    repo_id: str,
    *,
    stage=None,
    private: bool | None = None,
    create_pr: bool = False,
    commit_message: str | None = None,
    token: str | None = None,
    revision: str | None = None,
    dataset=None,
    language=None,
    license=None,
    base_model=None,
):
    """Create `repo_id` if needed and upload a stage's directory plus its model card in one commit.

    Returns the `huggingface_hub.CommitInfo` (`.commit_url`, `.pr_url` when `create_pr`). The endpoint
    and token come from `HF_ENDPOINT`/`HF_TOKEN` or the saved login, as everywhere in huggingface_hub.
    """
    from huggingface_hub import CommitOperationAdd, HfApi

    model_dir = Path(model_dir)
    info = read_run_dir(model_dir)
    stage = resolve_stage(info, stage)
    card = render_card(info, repo_id, stage, dataset, language, license, base_model)
    if "auto_map" not in info.config:
        logger.warning(
            "%s/config.json has no auto_map: the model will load only where flallm is installed "
            "(not with trust_remote_code alone).",
            model_dir,
        )
    paths, skipped = select_files(model_dir)
    if skipped:
        logger.info("Not uploading %d file(s) that are not model files: %s", len(skipped), ", ".join(skipped))
    extra = _pipeline_additions(info, paths)
    operations = [
        CommitOperationAdd(path_in_repo=p, path_or_fileobj=str(model_dir / p)) for p in paths if p not in extra
    ]
    operations += [CommitOperationAdd(path_in_repo=p, path_or_fileobj=content) for p, content in extra.items()]
    operations.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=str(card).encode("utf-8")))

    if commit_message is None:
        commit_message = f"Upload FLa-LLM stage {stage} ({STAGE_NAMES[stage]})"
    description = "\n".join(
        f"{r.get('dataset', '')} {r.get('split', '')}: BLEU-4 {float(r['bleu4']):.2f}".strip() for r in info.evaluations
    )
    api = HfApi(token=token)
    repo_url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    logger.info("Pushing %d files from %s to %s", len(operations), model_dir, repo_url)
    return api.create_commit(
        repo_id=repo_url.repo_id,
        operations=operations,
        commit_message=commit_message,
        commit_description=description or None,
        revision=revision,
        create_pr=create_pr,
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="Run directory of a finished stage (save_pretrained output).")
    parser.add_argument("--repo-id", required=True, help="Target model repository, USER/NAME or ORG/NAME.")
    parser.add_argument("--private", action="store_true", help="Create the repository as private.")
    parser.add_argument("--create-pr", action="store_true", help="Open a pull request instead of committing to main.")
    parser.add_argument(
        "--commit-message", default=None, help="Commit title (default: 'Upload FLa-LLM stage N (...)')."
    )
    parser.add_argument("--revision", default=None, help="Existing branch to commit to (default: main).")
    parser.add_argument("--stage", default=None, help="1 or 2; by default read from the run directory.")
    parser.add_argument("--dataset", default=None, help="Corpus name for the card (default: from the run directory).")
    parser.add_argument("--language", default=None, help="Target language code for the card.")
    parser.add_argument("--license", default=None, help="Licence of the weights (default: the corpus' licence).")
    parser.add_argument("--base-model", action="append", default=None, help="Base model repo id (repeatable).")
    parser.add_argument("--token", default=None, help="Hub token (default: HF_TOKEN or the saved login).")
    parser.add_argument("--dry-run", action="store_true", help="Print the model card and the file list; push nothing.")


def run(args: argparse.Namespace) -> int:
    card_options = {
        "stage": args.stage,
        "dataset": args.dataset,
        "language": args.language,
        "license": args.license,
        "base_model": args.base_model,
    }
    if args.dry_run:
        print(render_model_card(args.model, args.repo_id, **card_options))
        upload, skipped = select_files(args.model)
        print("\nFiles:", *upload, "README.md (the card above)", sep="\n  ")
        if skipped:
            print("\nSkipped (not model files; never uploaded):", *skipped, sep="\n  ")
        return 0
    info = push_stage_to_hub(
        args.model,
        args.repo_id,
        private=args.private or None,
        create_pr=args.create_pr,
        commit_message=args.commit_message,
        token=args.token,
        revision=args.revision,
        **card_options,
    )
    print(info.pr_url or info.commit_url)
    return 0
