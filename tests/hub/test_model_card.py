"""Model cards: metadata that parses and validates, content drawn from the folder, deterministic re-rendering."""

import json
import math
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard, metadata_load
from safetensors.torch import save_file

from hf_textgen.hub import model_card
from hf_textgen.hub.model_card import count_parameters, render_model_card, write_model_card

REPO_ROOT = Path(__file__).resolve().parents[2]

# Enough of each family's config.json for a card; the weights are stand-ins of known size.
FAMILY_CONFIGS = {
    "rnn": {
        "model_type": "hf_textgen_rnn",
        "architectures": ["RNNForCausalLM"],
        "vocab_size": 512,
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "cell_type": "gru",
    },
    "transformer": {
        "model_type": "hf_textgen_transformer",
        "architectures": ["TransformerForCausalLM"],
        "vocab_size": 512,
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 64,
        "max_position_embeddings": 128,
    },
    "classifier": {
        "model_type": "hf_textgen_transformer",
        "architectures": ["TransformerForSequenceClassification"],
        "vocab_size": 512,
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_labels": 3,
    },
    "seq2seq": {
        "model_type": "hf_textgen_seq2seq",
        "architectures": ["Seq2SeqTransformerForConditionalGeneration"],
        "is_encoder_decoder": True,
        "vocab_size": 512,
        "hidden_size": 32,
        "encoder_layers": 2,
        "decoder_layers": 1,
    },
}


def _model_folder(tmp_path: Path, family: str, *, eval_loss: float | None = 2.5) -> Path:
    folder = tmp_path / family
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(FAMILY_CONFIGS[family]))
    save_file({"embed.weight": torch.zeros(512, 32), "head.bias": torch.zeros(7)}, str(folder / "model.safetensors"))
    state = {
        "global_step": 30,
        "max_steps": 30,
        "train_batch_size": 8,
        "log_history": [
            {"step": 10, "loss": 5.1, "learning_rate": 3e-4},
            {"step": 20, "loss": 3.2, "learning_rate": 2e-4},
            {"step": 20, "eval_loss": 3.0},
            {"step": 30, "loss": 2.7, "learning_rate": 1e-4},
        ],
    }
    (folder / "trainer_state.json").write_text(json.dumps(state))
    # What `hf_textgen.hub.training_facts` records at the end of training.
    args = {
        "learning_rate": 3e-4,
        "lr_scheduler_type": "cosine",
        "per_device_train_batch_size": 8,
        "gradient_accumulation_steps": 2,
        "num_train_epochs": 3.0,
        "max_steps": 30,
        "seed": 42,
        "world_size": 1,
    }
    (folder / "training_args.json").write_text(json.dumps(args))
    facts = {"train_files": [{"name": "plays.txt", "bytes": 12345}], "languages": ["en"], "prompt": "HAMLET."}
    (folder / "training_data.json").write_text(json.dumps(facts))
    if eval_loss is not None:
        results = {"eval_loss": eval_loss, "eval_runtime": 0.5, "train_loss": 3.4, "epoch": 1.0}
        (folder / "all_results.json").write_text(json.dumps(results))
    (folder / "loss_curve.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    return folder


def test_packaged_template_is_the_repository_template():
    canonical = REPO_ROOT / "model_cards" / "hf_textgen_model_card.md"
    assert model_card.TEMPLATE_PATH.read_text() == canonical.read_text(), (
        "src/hf_textgen/hub/templates/ must mirror model_cards/: cp model_cards/*.md src/hf_textgen/hub/templates/"
    )


def test_template_is_package_data():
    import fnmatch

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["hf_textgen"]
    relative = model_card.TEMPLATE_PATH.relative_to(REPO_ROOT / "src" / "hf_textgen").as_posix()
    assert any(fnmatch.fnmatch(relative, pattern) for pattern in patterns), (relative, patterns)


def test_count_parameters_reads_safetensors_headers(tmp_path):
    folder = _model_folder(tmp_path, "rnn")
    assert count_parameters(folder) == 512 * 32 + 7


@pytest.mark.parametrize(
    ("family", "pipeline_tag", "family_text", "usage"),
    [
        ("rnn", "text-generation", "recurrent layers (`gru` cells)", 'pipeline("text-generation"'),
        ("transformer", "text-generation", "up to 128 positions", "AutoModelForCausalLM.from_pretrained"),
        ("classifier", "text-classification", "Transformer text classifier", 'pipeline("text-classification"'),
        ("seq2seq", "text2text-generation", "encoder of 2 bidirectional", "AutoModelForSeq2SeqLM.from_pretrained"),
    ],
)
def test_card_per_family(tmp_path, family, pipeline_tag, family_text, usage):
    folder = _model_folder(tmp_path, family)
    path = write_model_card(folder, datasets="tiny_shakespeare", repo_id="alice/tiny")
    assert path == folder / "README.md"
    assert "To be, or not to be" not in path.read_text()
    text = path.read_text()
    metadata = metadata_load(path)
    assert metadata["library_name"] == "transformers"
    assert metadata["pipeline_tag"] == pipeline_tag
    assert metadata["license"] == "apache-2.0"
    assert metadata["language"] == ["en"]
    assert metadata["datasets"] == ["tiny_shakespeare"]
    assert FAMILY_CONFIGS[family]["model_type"] in metadata["tags"]
    assert family_text in text
    assert usage in text
    assert 'repo_id = "alice/tiny"' in text
    assert "trust_remote_code=True" in text and "revision=revision" in text
    assert "16.4K (16,391)" in text
    assert "![loss_curve.png](loss_curve.png)" in text
    assert "| 20 | 3.2 | 3 |" in text  # loss history joins training and validation loss by step
    assert "| learning_rate | 0.0003 |" in text  # as set, not read off the scheduler's log
    assert "| max_steps | 30 |" in text and "num_train_epochs" not in text  # max_steps overrides epochs
    assert "| total_train_batch_size | 16 |" in text
    assert 'tokenizer("HAMLET."' in text or 'classifier("HAMLET.")' in text
    assert "## Limitations and bias" in text
    assert "\n\n\n" not in text


def test_model_index_carries_perplexity(tmp_path):
    folder = _model_folder(tmp_path, "transformer", eval_loss=2.5)
    card = ModelCard.load(write_model_card(folder, repo_id="alice/tiny"))
    results = {result.metric_type: result for result in card.data.eval_results}
    assert card.data.model_name == "tiny"
    assert results["perplexity"].metric_value == pytest.approx(math.exp(2.5), abs=1e-3)
    assert results["perplexity"].task_type == "text-generation"
    assert results["perplexity"].dataset_split == "validation"
    assert results["loss"].metric_value == 2.5
    # Trainer bookkeeping is not a metric.
    assert not {"runtime", "epoch"} & set(results)


def test_explicit_perplexity_wins_over_loss(tmp_path):
    folder = _model_folder(tmp_path, "rnn", eval_loss=None)
    # What `hf-textgen evaluate` writes: metrics plus counts and settings that are not metrics.
    results = {"eval_loss": 2.5, "perplexity": 12.5, "word_perplexity": 30.25, "num_tokens": 900, "num_words": 200}
    (folder / "eval_results.json").write_text(json.dumps({**results, "block_size": 64, "stride": 32}))
    card = render_model_card(folder)
    reported = sorted(
        (result.metric_type, result.metric_name, result.metric_value) for result in card.data.eval_results
    )
    assert reported == [
        ("loss", "Loss", 2.5),
        ("perplexity", "Perplexity", 12.5),
        ("perplexity", "Word perplexity", 30.25),
    ]
    assert "exp(eval_loss)" not in card.content


def test_rerender_is_deterministic_and_keeps_metadata(tmp_path):
    folder = _model_folder(tmp_path, "transformer")
    first = write_model_card(folder, base_model="bob/base", datasets=["bob/data"], task="causal_lm").read_text()
    # A later render without arguments (as `push` does) keeps what the first caller knew.
    again = render_model_card(folder)
    assert str(again) == first
    metadata = metadata_load(folder / "README.md")
    assert metadata["base_model"] == "bob/base"
    assert "bob/base" in first


def test_bad_inputs_raise_value_error(tmp_path):
    with pytest.raises(ValueError, match="config.json"):
        render_model_card(tmp_path)
    folder = _model_folder(tmp_path, "rnn")
    with pytest.raises(ValueError, match="task="):
        render_model_card(folder, task="translation")


def test_local_paths_stay_out_of_the_metadata(tmp_path):
    folder = _model_folder(tmp_path, "rnn")
    local_base = tmp_path / "base-model"
    local_base.mkdir()
    path = write_model_card(folder, base_model=str(local_base), datasets=[str(tmp_path), "bob/data"])
    metadata = metadata_load(path)
    assert "base_model" not in metadata
    assert metadata["datasets"] == ["bob/data"]
    text = path.read_text()
    assert f"fine-tuned from `{local_base}`" in text
    assert f"`{tmp_path}`, [bob/data](https://huggingface.co/datasets/bob/data)" in text


def test_every_evaluation_point_is_in_the_loss_table(tmp_path):
    folder = _model_folder(tmp_path, "transformer")
    history = [{"step": step, "loss": 6.0 - step / 100, "learning_rate": 1e-3} for step in range(10, 301, 10)]
    history += [{"step": step, "eval_loss": 5.0 - step / 1000} for step in (100, 200, 300)]
    state = {"global_step": 300, "max_steps": 300, "log_history": history}
    (folder / "trainer_state.json").write_text(json.dumps(state))
    rows = [line for line in render_model_card(folder).content.splitlines() if line.startswith("| ") and "|" in line]
    steps = [int(row.split("|")[1]) for row in rows if row.split("|")[1].strip().isdigit()]
    assert {100, 200, 300} <= set(steps)  # every evaluation, whatever the sampling of training losses
    assert len(steps) <= 10 + 3 + 1
    assert "| 100 | 5 | 4.9 |" in rows


def test_bits_per_byte_is_reported_beside_perplexity(tmp_path):
    folder = _model_folder(tmp_path, "transformer", eval_loss=None)
    results = {"eval_loss": 2.0, "perplexity": 7.389, "bits_per_byte": 1.25, "byte_perplexity": 2.378}
    (folder / "eval_results.json").write_text(json.dumps(results))
    card = render_model_card(folder)
    names = [result.metric_name for result in card.data.eval_results]
    assert names == ["Loss", "Perplexity", "Byte perplexity", "Bits per byte"]
    assert "| bits_per_byte | validation | 1.25 |" in card.content
    assert "Bits per byte is the cross-entropy per UTF-8 byte" in card.content


def test_without_recorded_facts_the_card_claims_nothing(tmp_path):
    folder = _model_folder(tmp_path, "rnn")
    (folder / "training_args.json").unlink()
    (folder / "training_data.json").unlink()
    card = render_model_card(folder)
    assert card.data.language is None  # no language tag is guessed
    assert "Training data: not recorded in the model folder." in card.content
    assert "learning_rate" not in card.content  # the scheduler's logged values are not the learning rate set
    assert "| steps trained | 30 |" in card.content


def test_recorded_data_is_named_with_its_size_and_language(tmp_path):
    folder = _model_folder(tmp_path, "transformer")
    facts = {
        "train_files": [{"name": "新闻.txt", "bytes": 2_500_000}],
        "validation_split_percentage": 5,
        "num_documents": 1234,
        "languages": ["zh"],
        "prompt": "今天早上天气很好，",
    }
    (folder / "training_data.json").write_text(json.dumps(facts, ensure_ascii=False), encoding="utf-8")
    card = render_model_card(folder)
    assert card.data.language == ["zh"]
    assert "Training data: `新闻.txt` (2.4 MB); 5% of it held out for validation; 1,234 documents." in card.content
    assert 'tokenizer("今天早上天气很好，", return_tensors="pt")' in card.content
    hub = {"dataset_name": "Salesforce/wikitext", "dataset_config_name": "wikitext-2-raw-v1", "languages": ["en"]}
    (folder / "training_data.json").write_text(json.dumps(hub))
    card = render_model_card(folder)
    assert card.data.datasets == ["Salesforce/wikitext"]
    link = "[Salesforce/wikitext](https://huggingface.co/datasets/Salesforce/wikitext)"
    assert f"Training data: {link} (config `wikitext-2-raw-v1`)." in card.content
