"""Export a Transformer model for engines that run no remote code: a plain Llama folder or a llama.cpp GGUF file.

hf_textgen's Transformer computes exactly what transformers' Llama computes (RMSNorm, rotary positions, grouped
attention, SwiGLU); it only stores q/k/v and gate/up fused. `TransformerForCausalLM.to_llama()` splits them back, so
the export is a change of file layout, not an approximation:

- `export_llama` writes a `LlamaForCausalLM` folder (weights, tokenizer, generation config, model card) that loads
  with `AutoModelForCausalLM.from_pretrained(folder)` where hf_textgen is not installed, and that the serving engines
  which look architectures up by name (`transformers serve`, vLLM, TGI) take as it is.
- `export_gguf` writes one GGUF file with the `gguf` package (llama.cpp's own writer): llama architecture keys, the
  weights in llama.cpp's layout, and the byte-level BPE vocabulary with the pre-tokenizer name llama.cpp knows for
  our split pattern (it is Llama 3's, `llama-bpe`) and `add_bos_token` false, because our models were trained
  without a BOS token in front of the text.

RNN and encoder-decoder models have no Llama equivalent; they are served through transformers with remote code.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from hf_textgen.errors import UserError, atomic_output_dir, first_line

EXPORT_FORMATS = ("llama", "gguf")
# llama.cpp's `convert_hf_to_gguf.py --outtype` names; `None` keeps the weights' own dtype (lossless).
GGUF_OUTTYPES = ("f32", "f16", "bf16", "q8_0")
# `general.file_type` for each (a `gguf.LlamaFileType` name): the type of most weights; 1-D ones are always f32.
_GGUF_FILE_TYPES = {"f32": "ALL_F32", "f16": "MOSTLY_F16", "bf16": "MOSTLY_BF16", "q8_0": "MOSTLY_Q8_0"}

# The model types that have no Llama equivalent, and what to do with them instead.
_NOT_EXPORTABLE = {
    "hf_textgen_rnn": "an RNN",
    "hf_textgen_seq2seq": "an encoder-decoder",
}

# llama.cpp's names (`tokenizer.ggml.pre`) for the byte-level pre-tokenizers it implements, by split pattern.
# Ours is exactly Llama 3's; GPT-2's own byte-level split (no Split step, `use_regex` on) is llama.cpp's `gpt-2`.
_LLAMA3_SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
    r"|\s+(?!\S)|\s+"
)
_GGUF_PRE_TOKENIZERS = {_LLAMA3_SPLIT_PATTERN: "llama-bpe"}


@dataclass
class ExportResult:
    """What an export wrote.

    Attributes:
        path: The Llama folder, or the GGUF file.
        format: `"llama"` or `"gguf"`.
        parameters: Number of parameters exported.
        details: One line on the choices made (dtype, pre-tokenizer), for the command to print.
    """

    path: Path
    format: str
    parameters: int
    details: str


def _load_transformer(model_path: str | os.PathLike, tokenizer_name: str | None):
    """The Transformer causal LM in `model_path` and its tokenizer, or a `UserError` saying why not."""
    from transformers import AutoTokenizer

    from hf_textgen.generation import load_model_config
    from hf_textgen.models.transformer import TransformerConfig, TransformerForCausalLM

    model_path = str(model_path)
    if not Path(model_path).is_dir():
        raise UserError(f"model folder {model_path} does not exist; pass a folder written by pretrain or finetune")
    config = load_model_config(model_path)
    model_type = getattr(config, "model_type", None)
    if model_type in _NOT_EXPORTABLE:
        raise UserError(
            f"{model_path} holds {_NOT_EXPORTABLE[model_type]} model ({model_type}), which has no Llama equivalent; "
            "export takes Transformer models only: serve this one with transformers and trust_remote_code=True"
        )
    if not isinstance(config, TransformerConfig):
        raise UserError(f"{model_path} holds a {model_type!r} model; export takes hf_textgen Transformer models only")
    architectures = getattr(config, "architectures", None) or ["TransformerForCausalLM"]
    if architectures[0] != "TransformerForCausalLM":
        raise UserError(
            f"{model_path} holds a {architectures[0]}; export takes a language model (TransformerForCausalLM)"
        )
    tokenizer_source = tokenizer_name or model_path
    try:
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_source)
    except (OSError, ValueError, KeyError) as error:
        raise UserError(
            f"cannot load a tokenizer from {tokenizer_source}: {first_line(error)}; pass --tokenizer_name"
        ) from None
    if len(tokenizer) > config.vocab_size:
        raise UserError(
            f"the tokenizer has {len(tokenizer)} tokens but the model's vocabulary holds only {config.vocab_size}; "
            "use the tokenizer the model was trained with"
        )
    model = TransformerForCausalLM.from_pretrained(model_path).eval()
    return model, tokenizer


def _copy_generation_config(model_path: str | os.PathLike, llama) -> None:
    """Keep the sampling defaults saved with the model; without them, the config's special-token ids."""
    from transformers import GenerationConfig

    try:
        llama.generation_config = GenerationConfig.from_pretrained(model_path)
    except OSError:
        llama.generation_config = GenerationConfig.from_model_config(llama.config)


def _save_plain_tokenizer(tokenizer, output_dir: Path) -> None:
    """Save the tokenizer as the generic fast class every transformers release (4.x and 5.x) and engine knows.

    `add_bos_token` / `add_eos_token` are written out as false: our models never saw a BOS or EOS token added to
    their input, and llama.cpp's converter prepends BOS unless the folder says otherwise.
    """
    tokenizer.save_pretrained(str(output_dir))
    config_path = output_dir / "tokenizer_config.json"
    tokenizer_config = json.loads(config_path.read_text(encoding="utf-8"))
    tokenizer_config.update(tokenizer_class="PreTrainedTokenizerFast", add_bos_token=False, add_eos_token=False)
    for key in ("auto_map", "is_local", "local_files_only"):  # remote code and load-time flags, not settings
        tokenizer_config.pop(key, None)
    config_path.write_text(json.dumps(tokenizer_config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _add_legacy_rope_theta(config_path: Path) -> None:
    """Also write `rope_theta` at the top level, where transformers 4.x and engines built on it (TGI) read it.

    transformers 5 keeps it inside `rope_parameters` (and ignores a top-level copy when that is present); a reader
    that only knows the old key would otherwise fall back to 10000 for a model trained with another base.
    """
    config = json.loads(config_path.read_text(encoding="utf-8"))
    rope = config.get("rope_parameters") or {}
    if rope.get("rope_type", "default") == "default" and "rope_theta" in rope:
        config["rope_theta"] = rope["rope_theta"]
        config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def export_llama(
    model_path: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    tokenizer_name: str | None = None,
    overwrite: bool = False,
) -> ExportResult:
    """Write a plain transformers `LlamaForCausalLM` folder computing the same function as a Transformer folder.

    The folder holds `config.json` (`model_type` `llama`, no `auto_map`), `model.safetensors` in the model's dtype,
    the tokenizer (`PreTrainedTokenizerFast`, no BOS/EOS added), `generation_config.json` and a model card. It
    loads with `AutoModelForCausalLM.from_pretrained(output_dir)` and no hf_textgen, to the same logits.

    Args:
        model_path: A folder holding a `TransformerForCausalLM` (as `pretrain` / `finetune` write it).
        output_dir: The folder to write; written to a temporary folder first, so a failure leaves nothing behind.
        tokenizer_name: A tokenizer folder; default: the model folder's own.
        overwrite: Replace a non-empty `output_dir`.

    Returns:
        An `ExportResult` with the folder's path.

    Raises:
        UserError: A missing folder, an RNN / encoder-decoder / classifier folder, no tokenizer, a tokenizer larger
            than the model's vocabulary, or a non-empty `output_dir` without `overwrite`.
    """
    from hf_textgen.hub.model_card import write_export_model_card

    model, tokenizer = _load_transformer(model_path, tokenizer_name)
    llama = model.to_llama()
    _copy_generation_config(model_path, llama)
    with atomic_output_dir(output_dir, overwrite=overwrite) as tmp:
        llama.save_pretrained(str(tmp))
        _add_legacy_rope_theta(tmp / "config.json")
        _save_plain_tokenizer(tokenizer, tmp)
        for name in ("all_results.json", "eval_results.json", "test_results.json"):
            # Same function, same scores: the card quotes them.
            if (Path(model_path) / name).is_file():
                shutil.copyfile(Path(model_path) / name, tmp / name)
        write_export_model_card(tmp, source=str(model_path))
    parameters = llama.num_parameters()
    return ExportResult(Path(output_dir), "llama", parameters, f"LlamaForCausalLM, {_dtype_name(llama.dtype)}")


def _dtype_name(dtype: torch.dtype) -> str:
    return {torch.float32: "f32", torch.float16: "f16", torch.bfloat16: "bf16"}.get(dtype, str(dtype))


def _gguf_pre_tokenizer(tokenizer) -> str:
    """llama.cpp's name for the tokenizer's pre-tokenizer, or a `UserError` when llama.cpp has none for it."""
    backend = json.loads(tokenizer.backend_tokenizer.to_str())
    model, pre = backend.get("model") or {}, backend.get("pre_tokenizer") or {}
    if model.get("type") != "BPE" or "ByteLevel" not in json.dumps(pre):
        raise UserError(
            "GGUF export needs a byte-level BPE tokenizer (train-tokenizer --tokenizer_type bpe); this model's "
            f"tokenizer is {model.get('type', 'unknown')}-based. Export with --format llama instead"
        )
    if pre.get("type") == "ByteLevel" and pre.get("use_regex", True):
        return "gpt-2"
    steps = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else []
    splits = [step for step in steps if step.get("type") == "Split"]
    pattern = (splits[0].get("pattern") or {}).get("Regex") if len(splits) == 1 else None
    if pattern in _GGUF_PRE_TOKENIZERS:
        return _GGUF_PRE_TOKENIZERS[pattern]
    raise UserError(
        "llama.cpp knows no pre-tokenizer matching this tokenizer's split pattern, so it would cut text differently "
        "from the model's training; retrain the tokenizer with hf-textgen train-tokenizer, or export --format llama"
    )


def _gguf_vocabulary(tokenizer, vocab_size: int):
    """`(tokens, token_types, merges)` in llama.cpp's spelling, padded to the model's `vocab_size`."""
    import gguf

    backend = json.loads(tokenizer.backend_tokenizer.to_str())
    by_id = {index: token for token, index in tokenizer.get_vocab().items()}
    special_ids = {token["id"] for token in backend.get("added_tokens", []) if token.get("special")}
    tokens, types = [], []
    for index in range(vocab_size):
        if index in by_id:
            tokens.append(by_id[index])
            types.append(gguf.TokenType.CONTROL if index in special_ids else gguf.TokenType.NORMAL)
        else:
            # Rows of the embedding no token uses (a vocabulary rounded up): llama.cpp's converter names them so.
            tokens.append(f"[PAD{index}]")
            types.append(gguf.TokenType.UNUSED)
    merges = [merge if isinstance(merge, str) else " ".join(merge) for merge in backend["model"].get("merges", [])]
    return tokens, types, merges


def _llama_cpp_qk_permute(weight: torch.Tensor, num_heads: int) -> torch.Tensor:
    """Reorder q/k projection rows from transformers' rotary layout (halves) to llama.cpp's (interleaved pairs).

    transformers rotates dimension i of each head with dimension i + head_dim / 2; llama.cpp rotates neighbours
    (2i, 2i + 1). llama.cpp's converter moves the rows so that both compute the same attention; transformers' GGUF
    loader moves them back.
    """
    rows, columns = weight.shape
    return weight.reshape(num_heads, 2, rows // num_heads // 2, columns).transpose(1, 2).reshape(rows, columns)


def _gguf_tensor(tensor: torch.Tensor, outtype: str):
    """`(data, raw_dtype)` for `GGUFWriter.add_tensor`: 1-D tensors stay f32 as llama.cpp keeps them.

    Quantized data is a byte array (the writer derives the tensor's shape from it and `raw_dtype`).
    """
    import gguf
    import numpy as np

    data = tensor.detach().to(torch.float32).cpu().numpy()
    if data.ndim == 1 or outtype == "f32":
        return data, None
    if outtype == "f16":
        return data.astype(np.float16), None
    qtype = gguf.GGMLQuantizationType.BF16 if outtype == "bf16" else gguf.GGMLQuantizationType.Q8_0
    block_size = gguf.GGML_QUANT_SIZES[qtype][0]
    if data.shape[-1] % block_size:
        # Rows that do not fill whole quantization blocks: llama.cpp's converter falls back to f16 the same way.
        return data.astype(np.float16), None
    return gguf.quants.quantize(data, qtype), qtype


GGUF_FILE_NAME = "model.gguf"


def export_gguf(
    model_path: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    tokenizer_name: str | None = None,
    outtype: str | None = None,
    overwrite: bool = False,
) -> ExportResult:
    """Write a llama.cpp GGUF file (architecture `llama`) computing the same function as a Transformer folder.

    The file is `output_dir/model.gguf`: `llama-cli -m output_dir/model.gguf`, and
    `AutoModelForCausalLM.from_pretrained(output_dir, gguf_file="model.gguf")` reads it back.

    Args:
        model_path: A folder holding a `TransformerForCausalLM` and a byte-level BPE tokenizer.
        output_dir: The folder to write; written to a temporary folder first, so a failure leaves nothing behind.
        tokenizer_name: A tokenizer folder; default: the model folder's own.
        outtype: `"f32"`, `"f16"`, `"bf16"` or `"q8_0"` for the 2-D weights (norms stay f32); default: the
            weights' own dtype, so the file holds exactly the model's numbers.
        overwrite: Replace a non-empty `output_dir`.

    Returns:
        An `ExportResult` with the GGUF file's path.

    Raises:
        UserError: Everything `export_llama` refuses, a tokenizer llama.cpp cannot reproduce (not byte-level BPE,
            or a split pattern it has no name for) or an unknown `outtype`.
    """
    try:
        import gguf
    except ImportError:
        raise UserError("GGUF export needs the gguf package: pip install 'hf_textgen[export]'") from None

    if outtype is not None and outtype not in GGUF_OUTTYPES:
        raise UserError(f"--outtype {outtype!r} is not one of {', '.join(GGUF_OUTTYPES)}")
    model, tokenizer = _load_transformer(model_path, tokenizer_name)
    pre_tokenizer = _gguf_pre_tokenizer(tokenizer)
    config = model.config
    outtype = outtype or _dtype_name(model.dtype)
    if outtype not in GGUF_OUTTYPES:
        outtype = "f32"
    llama = model.to_llama()
    tokens, token_types, merges = _gguf_vocabulary(tokenizer, config.vocab_size)

    with atomic_output_dir(output_dir, overwrite=overwrite) as tmp:
        writer = gguf.GGUFWriter(str(tmp / GGUF_FILE_NAME), "llama")
        writer.add_name(Path(model_path).resolve().name)
        writer.add_context_length(config.max_position_embeddings)
        writer.add_embedding_length(config.hidden_size)
        writer.add_block_count(config.num_hidden_layers)
        writer.add_feed_forward_length(config.intermediate_size)
        writer.add_head_count(config.num_attention_heads)
        writer.add_head_count_kv(config.num_key_value_heads)
        writer.add_rope_dimension_count(config.head_dim)
        writer.add_rope_freq_base(float(config.rope_parameters["rope_theta"]))
        writer.add_layer_norm_rms_eps(config.rms_norm_eps)
        writer.add_vocab_size(config.vocab_size)
        writer.add_file_type(gguf.LlamaFileType[_GGUF_FILE_TYPES[outtype]])

        writer.add_tokenizer_model("gpt2")  # llama.cpp's name for byte-level BPE
        writer.add_tokenizer_pre(pre_tokenizer)
        writer.add_token_list(tokens)
        writer.add_token_types(token_types)
        writer.add_token_merges(merges)
        for token_id, add in (
            (config.bos_token_id, writer.add_bos_token_id),
            (config.eos_token_id, writer.add_eos_token_id),
            (config.pad_token_id, writer.add_pad_token_id),
        ):
            if isinstance(token_id, int):
                add(token_id)
        writer.add_add_bos_token(False)
        writer.add_add_eos_token(False)

        for name, tensor in _gguf_tensors(llama):
            data, raw_dtype = _gguf_tensor(tensor, outtype)
            writer.add_tensor(name, data, raw_dtype=raw_dtype)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    parameters = llama.num_parameters()
    details = f"llama, {outtype}, pre-tokenizer {pre_tokenizer}"
    return ExportResult(Path(output_dir) / GGUF_FILE_NAME, "gguf", parameters, details)


def _gguf_tensors(llama):
    """`(gguf_name, tensor)` for every weight of a `LlamaForCausalLM`, named by the gguf package's tensor table."""
    import gguf

    names = gguf.TENSOR_NAMES
    tensor = gguf.MODEL_TENSOR
    config = llama.config
    state = llama.state_dict()
    yield names[tensor.TOKEN_EMBD] + ".weight", state["model.embed_tokens.weight"]
    for index in range(config.num_hidden_layers):
        prefix = f"model.layers.{index}."
        per_layer = (
            (tensor.ATTN_NORM, "input_layernorm"),
            (tensor.ATTN_Q, "self_attn.q_proj"),
            (tensor.ATTN_K, "self_attn.k_proj"),
            (tensor.ATTN_V, "self_attn.v_proj"),
            (tensor.ATTN_OUT, "self_attn.o_proj"),
            (tensor.FFN_NORM, "post_attention_layernorm"),
            (tensor.FFN_GATE, "mlp.gate_proj"),
            (tensor.FFN_UP, "mlp.up_proj"),
            (tensor.FFN_DOWN, "mlp.down_proj"),
        )
        for kind, module in per_layer:
            weight = state[f"{prefix}{module}.weight"]
            if kind == tensor.ATTN_Q:
                weight = _llama_cpp_qk_permute(weight, config.num_attention_heads)
            elif kind == tensor.ATTN_K:
                weight = _llama_cpp_qk_permute(weight, config.num_key_value_heads)
            yield names[kind].format(bid=index) + ".weight", weight
    yield names[tensor.OUTPUT_NORM] + ".weight", state["model.norm.weight"]
    if not config.tie_word_embeddings:
        # A tied head is left out: llama.cpp (and transformers' GGUF loader) then reuse the embedding.
        yield names[tensor.OUTPUT] + ".weight", state["lm_head.weight"]


__all__ = ["EXPORT_FORMATS", "GGUF_FILE_NAME", "GGUF_OUTTYPES", "ExportResult", "export_gguf", "export_llama"]
