"""The glue `pretrain` and `finetune` share: output folder and resume logic, tokenizer, model config, checks.

Everything here runs BEFORE the Trainer touches the output folder, so a user's mistake ends as one `UserError`
and leaves nothing half-written behind.
"""

from __future__ import annotations

import copy
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from transformers import AutoConfig, AutoTokenizer, PretrainedConfig, PreTrainedTokenizerBase
from transformers.models.auto.configuration_auto import CONFIG_MAPPING
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint, sort_checkpoints

from hf_textgen.errors import UserError, first_line
from hf_textgen.training.arguments import MODEL_TYPE_ALIASES, ModelArguments

logger = logging.getLogger(__name__)

# What a model trained from scratch starts from before `--config_overrides`: small enough to train in minutes on
# a laptop's CPU (the families' own defaults describe full-size models).
SMALL_PRESETS: dict[str, dict[str, Any]] = {
    "hf_textgen_transformer": {
        "hidden_size": 256,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "intermediate_size": 704,  # SwiGLU: about 8/3 of hidden_size, rounded to a multiple of 64
        "max_position_embeddings": 512,
    },
    "hf_textgen_rnn": {"hidden_size": 256, "num_hidden_layers": 2},
    "hf_textgen_seq2seq": {
        "hidden_size": 256,
        "num_attention_heads": 4,
        "intermediate_size": 1024,
        "encoder_layers": 2,
        "decoder_layers": 2,
        "max_position_embeddings": 512,
    },
}
DEFAULT_MODEL_TYPE = "hf_textgen_transformer"
# A checkpoint is complete once the Trainer has written its state file: `_save_checkpoint` writes it last.
_CHECKPOINT_COMPLETE_MARKER = "trainer_state.json"


# ---------------------------------------------------------------------------------------------------------------
# Output folder and resume
# ---------------------------------------------------------------------------------------------------------------


def is_complete_checkpoint(path: str | os.PathLike) -> bool:
    """Whether a checkpoint folder was fully written (a process killed mid-save leaves it without its state)."""
    path = Path(path)
    has_weights = any(path.glob("*.safetensors")) or any(path.glob("pytorch_model*.bin"))
    return path.is_dir() and has_weights and (path / _CHECKPOINT_COMPLETE_MARKER).is_file()


def missing_checkpoint_files(path: str | os.PathLike) -> list[str]:
    """What a checkpoint folder lacks to be resumed from: its weights and/or the trainer state written last."""
    path = Path(path)
    missing = []
    if not (any(path.glob("*.safetensors")) or any(path.glob("pytorch_model*.bin"))):
        missing.append("model weights (model.safetensors)")
    if not (path / _CHECKPOINT_COMPLETE_MARKER).is_file():
        missing.append(_CHECKPOINT_COMPLETE_MARKER)
    return missing


def last_complete_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """The highest-step complete `checkpoint-N` folder in `output_dir`, or None when there is none.

    `transformers.trainer_utils.get_last_checkpoint` finds the newest one; a process killed while saving leaves that
    one incomplete, and then the newest complete one of `sort_checkpoints` is taken instead.
    """
    if not Path(output_dir).is_dir():
        return None
    last = get_last_checkpoint(str(output_dir))
    if last is None or is_complete_checkpoint(last):
        return last
    for checkpoint in reversed(sort_checkpoints(str(output_dir))):
        if is_complete_checkpoint(checkpoint):
            return checkpoint
        logger.warning("ignoring %s: it was not completely written (interrupted save?)", checkpoint)
    return None


def resolve_resume_checkpoint(training_args) -> str | None:
    """Decide where training resumes from, as `run_clm.py` does, and refuse to clobber a foreign folder.

    - `--resume_from_checkpoint PATH`: that checkpoint (it must be complete).
    - an existing `--output_dir` with checkpoints: the last complete one.
    - an existing non-empty `--output_dir` without checkpoints: `UserError` unless `--overwrite_output_dir`.
    - `--overwrite_output_dir`: start afresh (the folder is emptied once every check has passed).

    Returns:
        The checkpoint folder to resume from, or None to start from step 0.
    """
    requested = training_args.resume_from_checkpoint
    if requested not in (None, "", False):
        if str(requested).lower() == "true":
            checkpoint = last_complete_checkpoint(training_args.output_dir)
            if checkpoint is None:
                raise UserError(f"--resume_from_checkpoint: no complete checkpoint in {training_args.output_dir}")
            return checkpoint
        path = Path(requested)
        if not path.exists():
            raise UserError(
                f"--resume_from_checkpoint {requested} does not exist; check the path "
                f"(checkpoints are the {PREFIX_CHECKPOINT_DIR}-N folders inside --output_dir)"
            )
        if not path.is_dir():
            raise UserError(f"--resume_from_checkpoint {requested} is a file; name a {PREFIX_CHECKPOINT_DIR}-N folder")
        if not is_complete_checkpoint(path):
            missing = missing_checkpoint_files(path)
            raise UserError(
                f"--resume_from_checkpoint {requested} is an incomplete checkpoint (missing: {', '.join(missing)}; "
                "was its save interrupted?); resume from an earlier checkpoint, or pass "
                "--resume_from_checkpoint true for the last complete one"
            )
        return str(requested)
    output_dir = Path(training_args.output_dir)
    if getattr(training_args, "overwrite_output_dir", False) or not output_dir.is_dir():
        return None
    if not any(output_dir.iterdir()):
        return None
    checkpoint = last_complete_checkpoint(output_dir)
    if checkpoint is None:
        raise UserError(
            f"output folder {output_dir} already holds files but no complete checkpoint to resume from; "
            "choose another --output_dir or pass --overwrite_output_dir"
        )
    logger.info("resuming from %s (pass --overwrite_output_dir to start afresh)", checkpoint)
    return checkpoint


def prepare_output_dir(training_args, resume_from: str | None) -> None:
    """Empty the output folder for `--overwrite_output_dir`; call only after every check has passed."""
    output_dir = Path(training_args.output_dir)
    overwrite = getattr(training_args, "overwrite_output_dir", False)
    # Only the main process deletes; resume keeps the folder as it is.
    if overwrite and resume_from is None and output_dir.is_dir() and int(os.environ.get("RANK", "0")) == 0:
        shutil.rmtree(output_dir)


def load_model(auto_class, config: PretrainedConfig, model_args: ModelArguments, from_pretrained: bool):
    """Build the model from `config` (or load `--model_name_or_path`), before the output folder is touched.

    A model class may refuse a config that the config class accepts (e.g. a bidirectional RNN as a causal LM);
    that is a user mistake, reported as one line.
    """
    try:
        if from_pretrained:
            return auto_class.from_pretrained(
                model_args.model_name_or_path,
                config=config,
                cache_dir=model_args.cache_dir,
                revision=model_args.model_revision,
                token=model_args.token,
                trust_remote_code=model_args.trust_remote_code,
            )
        return auto_class.from_config(config, trust_remote_code=model_args.trust_remote_code)
    except ValueError as error:
        reason = first_line(error)
        raise UserError(f"invalid model config: {reason}") from None


def check_training_args(training_args, streaming: bool = False) -> None:
    """Catch what the Trainer would only refuse with a traceback once the output folder exists."""
    from transformers.integrations import get_reporting_integration_callbacks, is_tensorboard_available

    try:
        get_reporting_integration_callbacks(training_args.report_to)
    except ValueError as error:
        raise UserError(f"--report_to: {error}") from None
    report_to = training_args.report_to if isinstance(training_args.report_to, list) else [training_args.report_to]
    if "tensorboard" in report_to and not is_tensorboard_available():
        raise UserError('--report_to tensorboard needs TensorBoard: pip install "hf_textgen[tensorboard]"')
    if streaming and training_args.do_train and training_args.max_steps <= 0:
        raise UserError("--streaming data has no known length: pass --max_steps to say how long to train")


# ---------------------------------------------------------------------------------------------------------------
# Model type and config
# ---------------------------------------------------------------------------------------------------------------


def resolve_model_type(model_type: str | None, default: str | None = DEFAULT_MODEL_TYPE) -> str:
    """Expand `rnn` / `transformer` / `seq2seq` and check that the model_type is registered."""
    if model_type is None:
        if default is None:
            raise UserError("say which model to train: --model_name_or_path, --config_name or --model_type")
        return default
    full = MODEL_TYPE_ALIASES.get(model_type, model_type)
    if full not in CONFIG_MAPPING:
        raise UserError(
            f"unknown --model_type {model_type!r}; use {', '.join(MODEL_TYPE_ALIASES)} or a transformers "
            "model_type such as llama or gpt2"
        )
    return full


def _guess_value(text: str) -> Any:
    """A `--config_overrides` value for a field that holds None, so has no type to follow: int, float, bool, None
    or the text itself."""
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    return None if lowered == "none" else text


def parse_config_overrides(overrides: str | None, base: PretrainedConfig) -> dict[str, Any]:
    """Parse `"hidden_size=64,cell_type=gru"` into values of the types of `base`'s fields.

    Each value goes through `PretrainedConfig.update_from_string` on a copy of `base` (bool, int, float or string,
    as the field holds); a field whose value is None has no type to follow and takes the likeliest reading.

    Raises:
        UserError: An item not of the form name=value, a field the config does not have, or a value that does not
            fit the field's type.
    """
    if not overrides:
        return {}
    probe = copy.deepcopy(base)
    values = {}
    for item in overrides.split(","):
        item = item.strip()
        if not item:
            continue
        if "=" not in item:
            raise UserError(f"--config_overrides: {item!r} is not of the form name=value")
        key, text = (part.strip() for part in item.split("=", 1))
        if not hasattr(base, key):
            raise UserError(
                f"--config_overrides: {base.model_type} configs have no field {key!r}; "
                f"fields: {', '.join(sorted(k for k in base.to_dict() if not k.startswith('_')))}"
            )
        if getattr(base, key) is None:
            values[key] = _guess_value(text)
            continue
        try:
            probe.update_from_string(f"{key}={text}")
        except (ValueError, TypeError) as error:
            raise UserError(f"--config_overrides: {key}={text}: {first_line(error)}") from None
        values[key] = getattr(probe, key)
    return values


def _instantiate(config_class: type, kwargs: dict[str, Any]) -> PretrainedConfig:
    try:
        return config_class(**kwargs)
    except (ValueError, TypeError) as error:
        raise UserError(f"invalid model config: {error}") from None


def build_config(
    model_args: ModelArguments, default_model_type: str | None = DEFAULT_MODEL_TYPE, **from_scratch: Any
) -> tuple[PretrainedConfig, bool]:
    """The model config: loaded (`--model_name_or_path` / `--config_name`) or built from scratch.

    From scratch, the family's small preset is applied first, then `from_scratch` (vocab size and special ids
    from the tokenizer), then `--config_overrides`, and the config class validates the result.

    Returns:
        `(config, is_pretrained)`: whether weights come from `--model_name_or_path`.
    """
    hub_kwargs = {
        "cache_dir": model_args.cache_dir,
        "revision": model_args.model_revision,
        "token": model_args.token,
        "trust_remote_code": model_args.trust_remote_code,
    }
    source = model_args.model_name_or_path or model_args.config_name
    if source:
        check_local_path(source, "model" if model_args.model_name_or_path else "config")
        try:
            config = AutoConfig.from_pretrained(source, **hub_kwargs)
        except (OSError, ValueError) as error:
            raise UserError(f"cannot load the model config from {source}: {first_line(error)}") from None
        if model_args.model_type is not None:
            wanted = resolve_model_type(model_args.model_type)
            if wanted != config.model_type:
                raise UserError(
                    f"--model_type {model_args.model_type} does not match {source}, a {config.model_type} model; "
                    "drop --model_type"
                )
        if model_args.config_name and not model_args.model_name_or_path:
            # A config alone trains from scratch: its vocabulary follows the tokenizer.
            for key, value in from_scratch.items():
                setattr(config, key, value)
            config = _instantiate(type(config), config.to_dict())
        return config, bool(model_args.model_name_or_path)

    model_type = resolve_model_type(model_args.model_type, default_model_type)
    config_class = CONFIG_MAPPING[model_type]
    base = config_class()
    kwargs = {key: value for key, value in SMALL_PRESETS.get(model_type, {}).items() if hasattr(base, key)}
    kwargs.update(from_scratch)
    kwargs.update(parse_config_overrides(model_args.config_overrides, base))
    return _instantiate(config_class, kwargs), False


def special_token_ids(tokenizer: PreTrainedTokenizerBase) -> dict[str, Any]:
    """The config fields a model trained from scratch takes from its tokenizer."""
    return {
        "vocab_size": len(tokenizer),
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }


# ---------------------------------------------------------------------------------------------------------------
# Tokenizer
# ---------------------------------------------------------------------------------------------------------------


def check_local_path(name_or_path: str, what: str) -> None:
    """A name written as a path (`/x`, `./x`, `~/x`) must exist; otherwise the Hub would be asked for it."""
    if name_or_path.startswith(("/", ".", "~")) and not Path(name_or_path).expanduser().exists():
        raise UserError(f"{what} {name_or_path} does not exist; give an existing folder or a Hub id")


def load_tokenizer(name_or_path: str, model_args: ModelArguments) -> PreTrainedTokenizerBase:
    """Load a tokenizer folder or Hub id; give it a padding token if it has none (batches need one)."""
    check_local_path(name_or_path, "tokenizer")
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            name_or_path,
            cache_dir=model_args.cache_dir,
            revision=model_args.model_revision,
            token=model_args.token,
            trust_remote_code=model_args.trust_remote_code,
        )
    except (OSError, ValueError) as error:
        raise UserError(f"cannot load a tokenizer from {name_or_path}: {first_line(error)}") from None
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def train_tokenizer_on(texts: Iterator[str], model_args: ModelArguments) -> PreTrainedTokenizerBase:
    """Train the `--tokenizer_type` tokenizer on the training texts (used when no tokenizer is named)."""
    from hf_textgen.data import train_tokenizer

    logger.info(
        "training a %s tokenizer (vocab %s) on the training data",
        model_args.tokenizer_type,
        model_args.tokenizer_vocab_size or "default",
    )
    try:
        return train_tokenizer(
            texts,
            model_args.tokenizer_type,
            vocab_size=model_args.tokenizer_vocab_size,
            min_frequency=model_args.tokenizer_min_frequency,
        )
    except ValueError as error:
        raise UserError(f"cannot train a tokenizer: {error}") from None


# ---------------------------------------------------------------------------------------------------------------
# Checks that need both the model config and the tokenizer
# ---------------------------------------------------------------------------------------------------------------


def check_tokenizer_fits(tokenizer: PreTrainedTokenizerBase, config: PretrainedConfig) -> None:
    """Refuse a tokenizer whose ids would index past the model's embedding table."""
    vocab_size = getattr(config, "vocab_size", None)
    if vocab_size is not None and len(tokenizer) > vocab_size:
        raise UserError(
            f"the tokenizer has {len(tokenizer)} tokens but the model's vocabulary holds only {vocab_size}; "
            "use the tokenizer the model was trained with (or train from scratch with this tokenizer)"
        )
