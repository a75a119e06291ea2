"""The README's Python examples (load, generate, pipeline) run as written and print no unexplained warning or log.

Each example runs in a fresh interpreter, from a folder holding what it loads (`demo_output/` and
`out/reverser/` written by tiny runs of `hf-textgen pretrain` / `finetune`, and a `tokenizer/` folder), with
Python warnings on (`-W default`) and the libraries' default log level. Everything it writes to stderr, less
progress bars, must be a message the README's "Messages you may see" list explains.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hf_textgen import cli

README = Path(__file__).resolve().parents[1] / "README.md"
# README sections whose Python block is an example to run, and a name for each.
EXAMPLES = {
    "Using a model from Python": "load_generate_pipeline",
    "RNN language models": "rnn",
    "Transformer language models": "transformer",
    "Encoder-decoder Transformer": "seq2seq",
}
TINY_TRANSFORMER = (
    "hidden_size=32,num_hidden_layers=1,num_attention_heads=2,intermediate_size=64,max_position_embeddings=256"
)
TINY_SEQ2SEQ = "hidden_size=32,num_attention_heads=2,intermediate_size=64,encoder_layers=1,decoder_layers=1"
QUICK = ["--max_steps", "2", "--save_strategy", "no", "--disable_tqdm", "true", "--report_to", "none"]
# tqdm bars (`Loading weights: 100%|...| 8/8`) report progress; they are not messages.
_PROGRESS = re.compile(r"\d+%\|")


def _python_blocks() -> dict[str, str]:
    blocks, heading = {}, None
    lines = README.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("## "):
            heading = line[3:].strip()
        elif line.startswith("```python") and heading in EXAMPLES and EXAMPLES[heading] not in blocks:
            end = lines.index("```", index + 1)
            blocks[EXAMPLES[heading]] = "\n".join(lines[index + 1 : end])
            index = end
        index += 1
    return blocks


def explained_messages() -> list[str]:
    """The messages listed under the README's "Messages you may see" heading (one backticked text per bullet)."""
    text = README.read_text(encoding="utf-8")
    start = text.index("### Messages you may see")
    section = text[start : text.index("\n#", start + 1)]
    return re.findall(r"^- `([^`]+)`", section, flags=re.MULTILINE)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, tiny_corpus_dir, tiny_tokenizer_path):
    folder = tmp_path_factory.mktemp("readme")
    shutil.copytree(tiny_tokenizer_path, folder / "tokenizer")
    corpus = ["--train_file", f"{tiny_corpus_dir}/train.txt", "--validation_file", f"{tiny_corpus_dir}/validation.txt"]
    argv = ["pretrain", "--model_type", "transformer", "--config_overrides", TINY_TRANSFORMER, "--block_size", "32"]
    argv += ["--tokenizer_name", tiny_tokenizer_path, "--output_dir", str(folder / "demo_output"), *corpus, *QUICK]
    assert cli.main(argv) == 0
    pairs = folder / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"source": s, "target": s[::-1]}) + "\n" for s in ["abcdef", "hgfe"] * 8))
    argv = ["finetune", "--task", "seq2seq", "--model_type", "seq2seq", "--config_overrides", TINY_SEQ2SEQ]
    argv += ["--train_file", str(pairs), "--validation_file", str(pairs), "--tokenizer_name", tiny_tokenizer_path]
    argv += ["--output_dir", str(folder / "out" / "reverser"), *QUICK]
    assert cli.main(argv) == 0
    return folder


# One interpreter runs every example in turn (interpreter start-up is most of the cost), each in a fresh namespace,
# with a marker line on stderr before each so every message is charged to its example.
_DRIVER = """
import json, sys
for name, code in json.loads(sys.argv[1]).items():
    print("=== example " + name, file=sys.stderr, flush=True)
    exec(compile(code, "README:" + name, "exec"), {"__name__": "__main__"})
"""


def test_every_example_is_found():
    assert set(_python_blocks()) == set(EXAMPLES.values())


def test_examples_run_without_unexplained_messages(workdir):
    env = {key: value for key, value in os.environ.items() if key != "TRANSFORMERS_VERBOSITY"}
    env.update(OMP_NUM_THREADS="1", PYTHONWARNINGS="default")
    process = subprocess.run(
        [sys.executable, "-W", "default", "-c", _DRIVER, json.dumps(_python_blocks())],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        stdin=subprocess.DEVNULL,  # a question on the terminal would hang the test: fail instead
    )
    assert process.returncode == 0, process.stderr[-3000:]
    ran = re.findall(r"^=== example (\S+)$", process.stderr, flags=re.MULTILINE)
    assert ran == list(_python_blocks())
    explained = explained_messages()
    unexplained = []
    example = None
    for line in process.stderr.splitlines():
        # A progress bar redraws itself with "\r": each piece is one frame.
        for piece in (piece.strip() for piece in line.split("\r")):
            if piece.startswith("=== example "):
                example = piece.removeprefix("=== example ")
            elif piece and not _PROGRESS.search(piece) and not any(known in piece for known in explained):
                unexplained.append(f"{example}: {piece}")
    assert not unexplained, "\n".join(unexplained)
