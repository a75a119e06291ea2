"""Push a finished model folder to the Hugging Face Hub in one commit.

Everything a user of the model needs travels together: weights (safetensors), `config.json` with `auto_map`, the
self-contained modeling and configuration code, the tokenizer, `generation_config.json`, training metrics and
plots, and the model card (rendered here when it is missing or stale). All local checks run before anything is
created on the Hub, and the upload is a single `create_commit`, so a failure leaves nothing half-pushed.

The token comes from `--token`, `HF_TOKEN` or the stored login (`hf auth login`). It only ever travels in the
Authorization header: it is never printed or logged, and every uploaded file is checked not to contain it.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from huggingface_hub import CommitInfo, CommitOperationAdd, HfApi, ModelCard, constants, get_token
from huggingface_hub.errors import HfHubHTTPError, HFValidationError, OfflineModeIsEnabled, RepositoryNotFoundError
from huggingface_hub.utils import validate_repo_id

from hf_textgen.errors import UserError, first_line
from hf_textgen.hub.model_card import CARD_MARKER, render_model_card

try:  # huggingface_hub 2.x speaks HTTP through httpx2, 1.x through httpx
    import httpx2 as _http
except ImportError:  # pragma: no cover - depends on the installed huggingface_hub
    import httpx as _http

# Not uploaded: pickles (unsafe to load, and `training_args.bin` can hold a `--hub_token`), checkpoints, caches and
# hidden or private files, as the Trainer's own push skips `_*` and `checkpoint-*`.
EXCLUDED_PATTERNS = ("*.bin", "*.pt", "*.pth", "*.pkl", "*.pyc", ".*", "_*", "checkpoint-*", "__pycache__")
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model")

_AUTO_CLASSES = (
    ("ForSequenceClassification", "AutoModelForSequenceClassification"),
    ("ForConditionalGeneration", "AutoModelForSeq2SeqLM"),
)


@dataclass
class PushResult:
    """What `push_model_folder` uploaded and where."""

    repo_url: str
    commit: CommitInfo
    files: list[str]
    card_rendered: bool
    auto_class: str  # the Auto class that loads it, for the user's next step


def _excluded(relative: Path) -> bool:
    return any(fnmatch.fnmatch(part, pattern) for part in relative.parts for pattern in EXCLUDED_PATTERNS)


def check_repo_id(repo_id: str) -> str:
    """Raise a `UserError` unless `repo_id` is a valid `namespace/name` Hub id."""
    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise UserError(f"--repo_id {repo_id!r} is not a valid Hub repository id ({error}); use USER/NAME") from None
    if repo_id.count("/") != 1:
        raise UserError(f"--repo_id {repo_id!r} must name a namespace and a model, as USER/NAME")
    return repo_id


def check_model_folder(model_path: str | os.PathLike) -> dict:
    """Check that a folder holds a complete, shareable model; return its config.

    Raises:
        UserError: A missing folder, no `config.json`, no safetensors weights, no tokenizer, or an hf_textgen
            model whose `auto_map` code files are not in the folder (it would not load with `trust_remote_code`).
    """
    folder = Path(model_path)
    if not folder.is_dir():
        problem = "is not a folder" if folder.exists() else "does not exist"
        raise UserError(f"model folder {folder} {problem}; pass the --output_dir of a training run")
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        if (folder / "adapter_config.json").is_file():
            raise UserError(
                f"{folder} holds a LoRA adapter (finetune --use_peft), and push uploads complete models only: "
                "fine-tune with --merge_adapter for a complete folder, or upload the adapter with PEFT's push_to_hub"
            ) from None
        raise UserError(
            f"{folder} has no config.json, so it is not a model folder; pass a folder written by "
            "save_pretrained (the --output_dir of pretrain / finetune)"
        ) from None
    except (OSError, ValueError) as error:
        raise UserError(f"{folder / 'config.json'} is not readable JSON ({error})") from None
    if not isinstance(config, dict) or not isinstance(config.get("model_type"), str):
        raise UserError(f"{folder / 'config.json'} has no model_type; re-save the model with save_pretrained")
    if not any((folder / name).is_file() for name in WEIGHT_FILES):
        raise UserError(
            f"{folder} has no safetensors weights (model.safetensors); re-save the model with "
            "save_pretrained(..., safe_serialization=True)"
        )
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise UserError(f"{folder} has no tokenizer; save it beside the model with tokenizer.save_pretrained")
    if config["model_type"].startswith("hf_textgen_"):
        auto_map = config.get("auto_map") or {}
        if not auto_map:
            raise UserError(
                f"{folder / 'config.json'} has no auto_map, so the model would not load without hf_textgen; "
                "re-save it with save_pretrained after `import hf_textgen`"
            )
        for reference in auto_map.values():
            module = str(reference).split("--")[-1].rsplit(".", 1)[0]
            if not (folder / f"{module}.py").is_file():
                raise UserError(
                    f"{folder} lacks {module}.py named in config.json's auto_map; re-save the model with "
                    "save_pretrained after `import hf_textgen` so the modeling code is copied beside the weights"
                )
    return config


def _card_text(folder: Path, repo_id: str, card_fields: dict[str, Any]) -> tuple[str | None, bool]:
    """The README to upload, and whether we rendered it. A hand-written card is kept as it is."""
    readme = folder / "README.md"
    try:
        existing = readme.read_text(encoding="utf-8") if readme.is_file() else None
    except UnicodeDecodeError:
        raise UserError(f"{readme} is not UTF-8 text; save the model card as UTF-8 or remove it") from None
    ours = existing is None or CARD_MARKER in existing or "generated_from_trainer" in existing
    if not ours:
        return existing, False
    try:
        card = str(render_model_card(folder, repo_id=repo_id, **card_fields))
    except ValueError as error:
        raise UserError(f"could not render the model card for {folder}: {error}") from None
    return card, card != existing


def _collect_files(folder: Path) -> list[Path]:
    files = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if path.is_file() and not _excluded(relative) and relative.as_posix() != "README.md":
            files.append(relative)
    return files


def _hub_error(error: Exception, repo_id: str) -> UserError:
    endpoint = constants.ENDPOINT
    if isinstance(error, _http.TransportError):
        return UserError(
            f"cannot reach the Hub at {endpoint} ({type(error).__name__}); check the network or HF_ENDPOINT"
        )
    if isinstance(error, HfHubHTTPError):
        status = error.response.status_code if error.response is not None else None
        if status == 401:
            return UserError(
                "the Hub rejected the token (401); set a valid write token in HF_TOKEN or `hf auth login`"
            )
        if status == 403:
            return UserError(f"the token may not write to {repo_id} (403); use a write token for that namespace")
        if isinstance(error, RepositoryNotFoundError):
            return UserError(f"repository {repo_id} not found or not yours; check --repo_id")
        return UserError(f"the Hub refused the push to {repo_id}: {first_line(error)}")
    return UserError(f"push to {repo_id} failed: {error}")


def _validation_messages(answer: str) -> str:
    try:
        errors = json.loads(answer).get("errors") or []
    except (ValueError, AttributeError):
        return " ".join(answer.split())
    return "; ".join(str(error.get("message", error)) for error in errors) or answer


def _check_token_and_card(api: HfApi, card: str | None) -> None:
    """Ask the Hub whether the token is valid and the card's metadata acceptable, before creating anything.

    Only a definite "no" stops the push: a Hub-compatible server without these two routes (404) is not a reason to
    refuse, since `create_repo` and `create_commit` check the same things again.
    """
    try:
        api.whoami()
    except HfHubHTTPError as error:
        if error.response is None or error.response.status_code != 404:
            raise
    if card is None:
        return
    try:
        ModelCard(card).validate()
    except ValueError as error:  # what `validate` raises for the Hub's 400 answer: plain text or JSON errors
        raise UserError(f"the Hub rejected the model card metadata: {_validation_messages(str(error))}") from None
    except HfHubHTTPError as error:
        if error.response is None or error.response.status_code != 404:
            raise


def push_model_folder(
    model_path: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    token: str | None = None,
    **card_fields: Any,
) -> PushResult:
    """Upload a finished model folder to `repo_id` on the Hub as one commit.

    Args:
        model_path: The model folder (`save_pretrained` output with tokenizer, e.g. a training `--output_dir`).
        repo_id: `namespace/name`; the repository is created (private if asked) when it does not exist.
        private: Create the repository private.
        revision: Branch to commit to (created from `main` when missing); default `main`.
        commit_message: The commit title.
        token: A Hub token; by default `HF_TOKEN` or the stored login.
        **card_fields: `base_model`, `datasets`, `task`, `language`, `license` for the rendered card (see
            `render_model_card`); unset ones keep what an earlier card recorded.

    Returns:
        A `PushResult` with the repository URL, the commit and the uploaded paths.

    Raises:
        UserError: For a bad folder, repo id or token, an unreachable Hub, or a push the Hub refuses.
    """
    folder = Path(model_path)
    check_repo_id(repo_id)
    config = check_model_folder(folder)
    token = token or get_token()
    if not token:
        raise UserError("no Hugging Face token: set HF_TOKEN or run `hf auth login` with a write token")

    card, card_rendered = _card_text(folder, repo_id, card_fields)
    if card is not None:
        try:
            ModelCard(card)  # the metadata must parse before anything reaches the Hub
        except ValueError as error:
            raise UserError(f"{folder / 'README.md'} has invalid metadata: {error}") from None
    relative_paths = _collect_files(folder)
    contents = {path.as_posix(): (folder / path).read_bytes() for path in relative_paths}
    if card is not None:
        contents["README.md"] = card.encode("utf-8")
    # The token must never be uploaded, not even inside a saved file (an argument dump, a log).
    for name, data in contents.items():
        if token.encode() in data:
            raise UserError(f"{folder / name} contains your Hub token; remove it from the file before pushing")

    api = HfApi(token=token)
    try:
        _check_token_and_card(api, card)
        existed = api.repo_exists(repo_id)
        repo_url = api.create_repo(repo_id, private=private, exist_ok=True)
        try:
            if revision and revision != constants.DEFAULT_REVISION:
                api.create_branch(repo_id, branch=revision, exist_ok=True)
            operations = [
                CommitOperationAdd(path_in_repo=name, path_or_fileobj=data) for name, data in contents.items()
            ]
            commit = api.create_commit(
                repo_id,
                operations=operations,
                commit_message=commit_message or f"Upload {folder.name} with hf-textgen push",
                revision=revision,
            )
        except Exception:
            if not existed:  # leave no empty repository behind a failed first push
                with contextlib.suppress(Exception):
                    api.delete_repo(repo_id, missing_ok=True)
            raise
    except OfflineModeIsEnabled:
        raise UserError("HF_HUB_OFFLINE is set, so nothing can be pushed; unset it and run push again") from None
    except (HfHubHTTPError, _http.HTTPError) as error:
        raise _hub_error(error, repo_id) from None
    architecture = (config.get("architectures") or [""])[0]
    auto_class = next(
        (auto for suffix, auto in _AUTO_CLASSES if architecture.endswith(suffix)), "AutoModelForCausalLM"
    )
    return PushResult(str(repo_url), commit, sorted(contents), card_rendered, auto_class)


def push_training_output(trainer, commit_message: str = "End of training") -> PushResult:
    """Push a Trainer's finished `output_dir` with its Hub settings, as one commit carrying our model card.

    Call it instead of `trainer.push_to_hub()` once the folder is complete (model, tokenizer, trainer state,
    metrics, plot and README written): the Trainer's own push would replace the card with its generic one and
    upload the pickled `training_args.bin`. It reads `--hub_model_id` (a bare name goes to the token owner's
    namespace, as the Trainer does), `--hub_private_repo`, `--hub_revision` and `--hub_token`.

    Args:
        trainer: A `transformers.Trainer` whose `args.output_dir` holds the finished model.
        commit_message: The commit title.

    Returns:
        The `PushResult` of `push_model_folder`.
    """
    args = trainer.args
    # The Trainer's background pushes (hub_strategy="every_save") must land before the final commit, not after it.
    finish_current_push = getattr(trainer, "_finish_current_push", None)
    if callable(finish_current_push):
        finish_current_push()
    repo_id = getattr(trainer, "hub_model_id", None) or args.hub_model_id or Path(args.output_dir).resolve().name
    token = args.hub_token or get_token()
    if "/" not in repo_id and token:
        try:
            repo_id = f"{HfApi(token=token).whoami()['name']}/{repo_id}"
        except (HfHubHTTPError, _http.HTTPError, OfflineModeIsEnabled) as error:
            raise _hub_error(error, repo_id) from None
    return push_model_folder(
        args.output_dir,
        repo_id,
        private=bool(args.hub_private_repo),
        revision=args.hub_revision,
        commit_message=commit_message,
        token=token,
    )
