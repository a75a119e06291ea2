"""Inference helpers: default generation settings, loading a saved model, fitting a prompt into its context.

`model.generate()`, `pipeline("text-generation")` and `hf-textgen generate` all start from
`model.generation_config`, so a model saved after `set_default_generation_config` samples sensibly out of the box
instead of falling back to transformers' global defaults (greedy decoding, 20 tokens in total).
`load_model_and_tokenizer` and `prepare_prompt` are what `hf-textgen generate` and `hf-textgen evaluate` share.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    GenerationConfig,
    PreTrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    TextStreamer,
    set_seed,
)

from hf_textgen.errors import UserError, first_line

# Below this vocabulary size a tokenizer is (close to) character-level: every character recurs constantly, so a
# repetition penalty would push down every common letter rather than repeated phrases, and a sample needs more
# tokens to say something.
_CHARACTER_LEVEL_VOCAB_SIZE = 1000


def default_generation_settings(vocab_size: int) -> dict[str, object]:
    """The sampling settings `set_default_generation_config` stores, for a tokenizer of `vocab_size` tokens.

    Nucleus sampling at temperature 0.8 with a top-k guard reads well for small language models: greedy decoding
    from a small model loops on one phrase, and plain sampling at temperature 1 wanders into its long tail.

    Args:
        vocab_size: The tokenizer's vocabulary size (`len(tokenizer)`).

    Returns:
        GenerationConfig keyword arguments: do_sample, temperature, top_k, top_p, repetition_penalty,
        max_new_tokens (`set_default_generation_config` caps it at half of a bounded model context).
    """
    character_level = vocab_size < _CHARACTER_LEVEL_VOCAB_SIZE
    return {
        "do_sample": True,
        "temperature": 0.8,
        "top_k": 50,
        "top_p": 0.95,
        "repetition_penalty": 1.0 if character_level else 1.1,
        "max_new_tokens": 300 if character_level else 100,
    }


def cap_max_new_tokens(max_new_tokens: int, config: PreTrainedConfig) -> int:
    """A default `max_new_tokens` cut to half of a bounded context, leaving the other half for the prompt.

    Applied to defaults only (the saved ones and the fallback), never to a length the user asked for.
    """
    limit = max_positions(config)
    return min(max_new_tokens, max(1, limit // 2)) if limit is not None else max_new_tokens


def generation_config_with(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, **settings: object
) -> GenerationConfig:
    """The model's saved generation config with `settings` on top, completed and checked, for one `generate()` call.

    Args:
        model: The model whose `generation_config` (as `set_default_generation_config` saved it) is the base.
        tokenizer: Supplies the pad and EOS ids the saved config may lack, and the vocabulary size that picks the
            fallback `max_new_tokens`.
        **settings: GenerationConfig fields (`max_new_tokens`, `do_sample`, `temperature`, `top_k`, `top_p`,
            `num_beams`, `repetition_penalty`, `num_return_sequences`, ...); None keeps the model's value.

    Returns:
        A new `GenerationConfig` (the model's is not changed). A `max_new_tokens` not given is the saved one, else
        `default_generation_settings`' one, capped at half of a bounded context.

    Raises:
        UserError: Settings that cannot work together or fail `GenerationConfig.validate`.
    """
    config = copy.deepcopy(model.generation_config)
    changes = {name: value for name, value in settings.items() if value is not None}

    def effective(name: str):
        return changes.get(name, getattr(config, name, None))

    if not effective("do_sample"):
        # The saved sampling knobs mean nothing to greedy / beam decoding; dropping them spares a warning.
        for name in ("temperature", "top_k", "top_p"):
            changes.setdefault(name, None)
    if "max_new_tokens" not in changes:
        saved = config.max_new_tokens or default_generation_settings(len(tokenizer))["max_new_tokens"]
        changes["max_new_tokens"] = cap_max_new_tokens(saved, model.config)
    if config.pad_token_id is None:
        changes["pad_token_id"] = tokenizer.pad_token_id
    if config.eos_token_id is None:
        changes["eos_token_id"] = tokenizer.eos_token_id
    num_return_sequences = effective("num_return_sequences") or 1
    if (
        num_return_sequences > 1
        and not effective("do_sample")
        and num_return_sequences > (effective("num_beams") or 1)
    ):
        raise UserError(
            f"num_return_sequences {num_return_sequences} needs sampling (do_sample) or at least as many beams "
            f"(num_beams {num_return_sequences})"
        )
    try:
        config.update(**changes)  # validates the result
    except ValueError as error:
        raise UserError(f"bad generation settings: {first_line(error)}") from None
    return config


def set_default_generation_config(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, **overrides: object
) -> GenerationConfig:
    """Store good default sampling settings and the tokenizer's special token ids in `model.generation_config`.

    Call it before `model.save_pretrained(...)`: the settings are written to `generation_config.json` and become the
    defaults of `model.generate()` and `pipeline("text-generation")` for whoever loads the folder. Anything passed
    to `generate()` still overrides them.

    Args:
        model: A model that can generate (causal LM or encoder-decoder).
        tokenizer: The model's tokenizer; provides `pad_token_id`, `eos_token_id`, `bos_token_id` and the vocabulary
            size.
        **overrides: GenerationConfig fields that replace the defaults (e.g. `max_new_tokens=50`).

    Returns:
        The model's new generation config (also assigned to `model.generation_config`).

    Raises:
        ValueError: If the model cannot generate, or an override is not a valid generation setting.
    """
    if not model.can_generate():
        raise ValueError(f"{type(model).__name__} cannot generate text; it has no generation_config to set")
    settings = default_generation_settings(len(tokenizer))
    eos_token_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else model.config.eos_token_id
    # Open-ended generation needs a pad id for batched/padded prompts; the eos token is the usual stand-in.
    pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_token_id
    bos_token_id = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else model.config.bos_token_id
    settings.update(pad_token_id=pad_token_id, eos_token_id=eos_token_id, bos_token_id=bos_token_id)
    if model.config.is_encoder_decoder:
        decoder_start_token_id = getattr(model.config, "decoder_start_token_id", None)
        if decoder_start_token_id is None:
            decoder_start_token_id = bos_token_id
        settings["decoder_start_token_id"] = decoder_start_token_id
    settings["max_new_tokens"] = cap_max_new_tokens(settings["max_new_tokens"], model.config)
    settings.update(overrides)
    if not settings["do_sample"]:
        # Sampling knobs on a greedy/beam config only trigger warnings at every generate() call.
        for key in ("temperature", "top_k", "top_p"):
            if key not in overrides:
                del settings[key]
    generation_config = GenerationConfig(**settings)
    # Raises on invalid values (e.g. max_new_tokens=0) now, not at the first generate() call.
    generation_config.validate()
    model.generation_config = generation_config
    return generation_config


def adapter_folder_message(folder: str | Path, auto_peft_class: str = "AutoPeftModelForCausalLM") -> str:
    """What to do with a LoRA adapter folder (`finetune --use_peft`) where a complete model folder is needed."""
    return (
        f"{folder} holds a LoRA adapter (adapter_config.json), not a model: load it with peft's {auto_peft_class}, "
        "or fine-tune with --merge_adapter for a complete model folder"
    )


def load_model_config(model_name_or_path: str, trust_remote_code: bool = False) -> PreTrainedConfig:
    """Load a saved model's config, turning a missing or unreadable folder into a `UserError` naming it.

    Args:
        model_name_or_path: A model folder (as `hf-textgen pretrain` writes it) or a Hub id.
        trust_remote_code: Allow a config whose code is not installed (its `auto_map`).
    """
    if not model_name_or_path:
        raise UserError("--model_name_or_path is required: a model folder (e.g. written by hf-textgen pretrain)")
    local = Path(model_name_or_path)
    if (local / "adapter_config.json").is_file() and not (local / "config.json").is_file():
        raise UserError(adapter_folder_message(model_name_or_path))
    if local.exists() and not (local / "config.json").is_file():
        raise UserError(f"{model_name_or_path} holds no config.json; point --model_name_or_path at a model folder")
    if not local.exists() and (model_name_or_path.count("/") != 1 or model_name_or_path.startswith((".", "/"))):
        # Not a local path and not shaped like a Hub id ("owner/name"): say so rather than ask the Hub.
        raise UserError(f"model folder {model_name_or_path} does not exist; check --model_name_or_path")
    try:
        return AutoConfig.from_pretrained(model_name_or_path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError) as error:
        raise UserError(f"cannot load the model config from {model_name_or_path}: {first_line(error)}") from None


def load_model_and_tokenizer(
    model_name_or_path: str,
    tokenizer_name: str | None = None,
    trust_remote_code: bool = False,
    device: str | torch.device | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a saved model (causal LM or encoder-decoder, picked from its config) and its tokenizer for inference.

    Args:
        model_name_or_path: A model folder (as `hf-textgen pretrain` writes it) or a Hub id.
        tokenizer_name: A tokenizer folder or Hub id; default: the model's own.
        trust_remote_code: Allow a folder whose modeling code is not installed (its `auto_map`).
        device: Where to put the model; default: CUDA when available, else the CPU.

    Returns:
        `(model, tokenizer)`, the model in eval mode; the tokenizer has a pad token (EOS when it had none).

    Raises:
        UserError: A missing or unreadable folder, an unknown model type, no tokenizer, or a tokenizer larger than
            the model's vocabulary.
    """
    config = load_model_config(model_name_or_path, trust_remote_code)
    tokenizer_source = tokenizer_name or model_name_or_path
    try:
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_source, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError) as error:
        raise UserError(
            f"cannot load a tokenizer from {tokenizer_source}: {first_line(error)}; pass --tokenizer_name"
        ) from None
    vocab_size = getattr(config, "vocab_size", None)
    if vocab_size is not None and len(tokenizer) > vocab_size:
        raise UserError(
            f"the tokenizer has {len(tokenizer)} tokens but the model's vocabulary holds only {vocab_size}; "
            "use the tokenizer the model was trained with"
        )
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    auto_class = AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForCausalLM
    try:
        model = auto_class.from_pretrained(model_name_or_path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError) as error:
        raise UserError(
            f"cannot load a text-generation model from {model_name_or_path}: {first_line(error)}"
        ) from None
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return model.to(device).eval(), tokenizer


def max_positions(config: PreTrainedConfig) -> int | None:
    """How many positions the model takes (`max_position_embeddings`, GPT-2's `n_positions`), or None (an RNN).

    The one answer for every command: the training block size, the evaluation window, the prompt cut and the
    `max_new_tokens` cap all read it.
    """
    for name in ("max_position_embeddings", "n_positions"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


@dataclass
class PreparedPrompt:
    """A tokenized prompt that fits the model, and how many tokens were cut from its left to make it fit."""

    input_ids: torch.Tensor  # (1, prompt_length)
    attention_mask: torch.Tensor  # (1, prompt_length)
    num_dropped: int


def prepare_prompt(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompt: str, max_new_tokens: int
) -> PreparedPrompt:
    """Tokenize `prompt` and cut it from the left so the model can take it plus `max_new_tokens` new tokens.

    A causal LM with a bounded context (`max_position_embeddings`) keeps the most recent
    `context - max_new_tokens` prompt tokens; an encoder-decoder keeps the last `context` source tokens. An RNN has
    no bound and keeps everything.

    Raises:
        UserError: An empty prompt, or `max_new_tokens` that leaves no room in the model's context.
    """
    if not prompt or not prompt.strip():
        raise UserError("the prompt is empty")
    ids = tokenizer(prompt, verbose=False)["input_ids"]  # the cut below handles length
    if not ids:
        raise UserError("the prompt tokenizes to nothing; give a longer prompt")
    limit = max_positions(model.config)
    room = len(ids)
    if limit is not None:
        if model.config.is_encoder_decoder:
            # The decoder takes its start token plus the new tokens.
            if max_new_tokens + 1 > limit:
                raise UserError(
                    f"max_new_tokens {max_new_tokens} is more than the model can produce ({limit - 1} tokens); "
                    "ask for fewer new tokens"
                )
            room = limit
        else:
            if max_new_tokens >= limit:
                raise UserError(
                    f"max_new_tokens {max_new_tokens} leaves no room for the prompt in the model's "
                    f"{limit}-token context; ask for fewer new tokens"
                )
            room = limit - max_new_tokens
    kept = ids[-room:]
    input_ids = torch.tensor([kept], dtype=torch.long, device=model.device)
    return PreparedPrompt(input_ids, torch.ones_like(input_ids), len(ids) - len(kept))


class ContinuationStreamer(TextStreamer):
    """Streams what a causal LM adds to a prompt that the caller has already printed.

    The prompt's tokens stay in the decoding context, so the first new token decodes with the right spacing, but
    they are not printed again. Like `TextStreamer`, it holds back a multi-byte character that a byte-level token
    has only begun, so nothing half-decoded reaches the terminal.
    """

    def put(self, value):
        if self.next_tokens_are_prompt:
            self.next_tokens_are_prompt = False
            self.token_cache = (value[0] if value.dim() > 1 else value).tolist()
            self.print_len = len(self.tokenizer.decode(self.token_cache, **self.decode_kwargs))
            return
        super().put(value)


def generate_text(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompt: str,
    prepared: PreparedPrompt,
    generation_config: GenerationConfig,
    seed: int | None = None,
    stream: bool = False,
) -> list[str]:
    """Generate from a prepared prompt; with `stream`, print the text to standard output as it is produced.

    A causal LM's texts start with the prompt: the user's own `prompt` (not its decoding, which loses any character
    the vocabulary lacks), or the decoding of what was kept when `prepare_prompt` cut it. An encoder-decoder's texts
    are its output alone. Streaming shows one sequence as it grows, so it applies to one sequence without beams.

    Args:
        model: A model that can generate.
        tokenizer: Its tokenizer.
        prompt: The text the user gave.
        prepared: `prepare_prompt(model, tokenizer, prompt, generation_config.max_new_tokens)`.
        generation_config: The settings (e.g. from `generation_config_with`).
        seed: Seed the sampling: the same seed gives the same text.
        stream: Print the prompt and the new text to standard output as tokens arrive.

    Returns:
        One text per returned sequence.

    Raises:
        UserError: `generate()` refused the settings.
    """
    is_encoder_decoder = model.config.is_encoder_decoder
    prompt_ids = prepared.input_ids[0].tolist()
    shown_prompt = prompt
    if prepared.num_dropped:
        shown_prompt = tokenizer.decode(prompt_ids, skip_special_tokens=True).lstrip("\ufffd")
    one_sequence = (generation_config.num_beams or 1) == 1 and (generation_config.num_return_sequences or 1) == 1
    streamer = None
    if stream and one_sequence:
        if is_encoder_decoder:
            streamer = TextStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
        else:
            streamer = ContinuationStreamer(tokenizer, skip_special_tokens=True)
            print(shown_prompt, end="", flush=True)
    if seed is not None:
        set_seed(seed)
    # Replacing (not passing) the config: generate() would fill the knobs dropped above back in from the model's.
    original = model.generation_config
    model.generation_config = generation_config
    try:
        outputs = model.generate(
            input_ids=prepared.input_ids, attention_mask=prepared.attention_mask, streamer=streamer
        )  # (num_return_sequences, length)
    except ValueError as error:
        raise UserError(f"generation failed: {first_line(error)}") from None
    finally:
        model.generation_config = original
    texts = tokenizer.batch_decode(outputs, skip_special_tokens=True)
    if not is_encoder_decoder:
        decoded_prompt_length = len(tokenizer.decode(prompt_ids, skip_special_tokens=True))
        texts = [shown_prompt + text[decoded_prompt_length:] for text in texts]
    return texts
