"""Default generation settings that travel with a model in its `generation_config.json`.

`model.generate()`, `pipeline("text-generation")` and `hf-textgen generate` all start from
`model.generation_config`, so a model saved after `set_default_generation_config` samples sensibly out of the box
instead of falling back to transformers' global defaults (greedy decoding, 20 tokens in total).
"""

from __future__ import annotations

from transformers import GenerationConfig, PreTrainedModel, PreTrainedTokenizerBase

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
        max_new_tokens.
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
