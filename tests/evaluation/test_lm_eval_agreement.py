"""`hf-textgen evaluate` against the real lm-evaluation-harness (`lm_eval --model hf`) on the same model and text.

lm-eval runs as its own command line, with a local task in the style of its `wikitext` task (rolling loglikelihood
of whole pages; its own word and byte counting) pointed at a local file: no Hub. Our side reads the same pages from
a file in WikiText's layout with `--sample_by article`.
"""

import json
import subprocess
import sys

import pytest
import torch
from wikitext_layout import article_lines, document_level_pages

from hf_textgen import TransformerConfig, TransformerForCausalLM
from hf_textgen.cli import main as cli_main
from hf_textgen.data import bundled_corpus_files

BLOCK_SIZE = 64  # the model's context: every page spans several of lm-eval's rolling windows

TASK_YAML = """\
task: local_wikitext
dataset_path: json
dataset_kwargs:
  data_files:
    test: {pages}
output_type: loglikelihood_rolling
test_split: test
doc_to_text: ""
doc_to_target: "{{{{page}}}}"
process_results: !function wikitext_counts.process_results
metric_list:
  - metric: word_perplexity
  - metric: byte_perplexity
  - metric: bits_per_byte
"""
# lm-eval's own word and byte counting, not a copy of it.
COUNTS_PY = "from lm_eval.tasks.wikitext.preprocess_wikitext import process_results  # noqa: F401\n"


def _articles() -> list[tuple[str, list]]:
    """Three WikiText-layout articles of bundled-corpus lines, a few hundred tokens each."""
    with open(bundled_corpus_files()["validation"], encoding="utf-8") as handle:
        lines = [line.strip() for line in handle if line.strip()][:90]
    return [
        (
            f"Act {index + 1}",
            [
                (None, None, lines[30 * index : 30 * index + 15]),
                (2, "Scene", lines[30 * index + 15 : 30 * (index + 1)]),
            ],
        )
        for index in range(3)
    ]


@pytest.fixture(scope="module")
def model_dir(tiny_tokenizer, tiny_tokenizer_path, tmp_path_factory):
    torch.manual_seed(0)
    config = TransformerConfig(
        vocab_size=len(tiny_tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=BLOCK_SIZE,
        bos_token_id=tiny_tokenizer.bos_token_id,
        eos_token_id=tiny_tokenizer.eos_token_id,
        pad_token_id=tiny_tokenizer.pad_token_id,
    )
    folder = tmp_path_factory.mktemp("model")
    TransformerForCausalLM(config).save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    return str(folder)


def test_evaluate_agrees_with_lm_eval(model_dir, tiny_tokenizer, tmp_path):
    articles = _articles()
    text = " \n" + "".join("".join(article_lines(title, sections)) for title, sections in articles)
    raw = tmp_path / "wiki.test.raw"
    raw.write_text(text, encoding="utf-8")
    # lm-eval's wikitext task reads pages cut as EleutherAI/wikitext_document_level cuts the release's files.
    pages = document_level_pages(text)
    ours = tmp_path / "ours"
    # --sample_by article explicitly: lm-eval's wikitext reading (whole pages), whatever the model folder records
    # about its training text (evaluate's default follows that record; this folder has none).
    argv = ["evaluate", "--model_name_or_path", model_dir, "--validation_file", str(raw), "--sample_by", "article"]
    assert cli_main([*argv, "--block_size", str(BLOCK_SIZE), "--output_dir", str(ours)]) == 0
    results = json.loads((ours / "eval_results.json").read_text())
    assert results["num_tokens"] > 3 * BLOCK_SIZE

    task_dir = tmp_path / "tasks"
    task_dir.mkdir()
    (tmp_path / "pages.jsonl").write_text("".join(json.dumps({"page": page}) + "\n" for page in pages), "utf-8")
    (task_dir / "local_wikitext.yaml").write_text(TASK_YAML.format(pages=tmp_path / "pages.jsonl"), "utf-8")
    (task_dir / "wikitext_counts.py").write_text(COUNTS_PY, "utf-8")
    # Our models read each document after EOS (it separates documents in training): lm-eval is told the same.
    model_args = (
        f"pretrained={model_dir},trust_remote_code=True,dtype=float32,max_length={BLOCK_SIZE},"
        f"prefix_token_id={tiny_tokenizer.eos_token_id}"
    )
    command = [sys.executable, "-m", "lm_eval", "--model", "hf", "--model_args", model_args]
    command += ["--tasks", "local_wikitext", "--include_path", str(task_dir), "--device", "cpu", "--batch_size", "4"]
    command += ["--output_path", str(tmp_path / "lm_eval")]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    (output,) = (tmp_path / "lm_eval").rglob("results_*.json")
    reference = json.loads(output.read_text())["results"]["local_wikitext"]

    # The issue asks for 1%; the same text and windows agree to float32 rounding, and a page that differs by one
    # line break already moves word perplexity by more than 1e-4 (on this model, about 1%).
    for name in ("word_perplexity", "byte_perplexity", "bits_per_byte"):
        assert results[name] == pytest.approx(reference[f"{name},none"], rel=1e-4), name
