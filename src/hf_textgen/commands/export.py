"""`hf-textgen export`: a Transformer folder as a plain Llama folder (`--format llama`) or a GGUF file (`gguf`).

Both run in engines that execute no remote code: the Llama folder in `transformers serve`, vLLM and TGI, the GGUF
file in llama.cpp. RNN and encoder-decoder folders have no such equivalent and are refused.
"""

from __future__ import annotations

import argparse

from hf_textgen.errors import UserError
from hf_textgen.hub.export import EXPORT_FORMATS, GGUF_FILE_NAME, GGUF_OUTTYPES, export_gguf, export_llama
from hf_textgen.summary import command, recorded_prompt


class _Parser(argparse.ArgumentParser):
    """Flag mistakes become a `UserError`: one `error:` line like every other mistake, not a usage block."""

    def error(self, message: str):
        raise UserError(f"{message} (see hf-textgen export --help)")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="hf-textgen export",
        description="Export a Transformer language model for engines that run no remote code. --format llama "
        "writes a plain LlamaForCausalLM folder (transformers without hf_textgen, transformers serve, vLLM, TGI); "
        f"--format gguf writes OUTPUT_DIR/{GGUF_FILE_NAME} for llama.cpp. RNN and encoder-decoder models have no "
        "Llama equivalent: serve them with transformers and trust_remote_code=True.",
    )
    parser.add_argument(
        "--model_name_or_path", required=True, help="The Transformer model folder (written by pretrain / finetune)."
    )
    parser.add_argument("--format", required=True, choices=EXPORT_FORMATS, help="llama (a folder) or gguf.")
    parser.add_argument("--output_dir", required=True, help="The folder to write (must be new or empty).")
    parser.add_argument("--tokenizer_name", default=None, help="A tokenizer folder; default: the model's own.")
    parser.add_argument(
        "--outtype",
        choices=GGUF_OUTTYPES,
        default=None,
        help="gguf only: the type of the 2-D weights, as llama.cpp's converter names them (norms stay f32). "
        "Default: the model's own dtype, so the file holds exactly the model's numbers.",
    )
    parser.add_argument(
        "--overwrite_output_dir", action="store_true", help="Replace an --output_dir that already holds files."
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse the flags, export, print where the result went and how to use it."""
    args = _parser().parse_args(argv)
    if args.format == "llama":
        if args.outtype is not None:
            raise UserError("--outtype applies to --format gguf only; the Llama folder keeps the model's dtype")
        result = export_llama(
            args.model_name_or_path,
            args.output_dir,
            tokenizer_name=args.tokenizer_name,
            overwrite=args.overwrite_output_dir,
        )
        print(f"wrote {result.path} ({result.details}, {result.parameters:,} parameters)")
        print(f"serve it with: transformers serve {result.path} --port 8000")
    else:
        result = export_gguf(
            args.model_name_or_path,
            args.output_dir,
            tokenizer_name=args.tokenizer_name,
            outtype=args.outtype,
            overwrite=args.overwrite_output_dir,
        )
        print(f"wrote {result.path} ({result.details}, {result.parameters:,} parameters)")
        # A prompt like the model's training text (recorded at training time) rather than a fixed English line.
        prompt = recorded_prompt(args.model_name_or_path) or "Once upon a time"
        print(f"run it with: {command('llama-cli', '-m', result.path, '-p', prompt, '-n', '40')}")
    return 0
