"""Pushing through the Trainer: `hf-textgen pretrain --push_to_hub` and a plain `Trainer.push_to_hub()`."""

from __future__ import annotations

import json

import pytest
from hub_testing import TOKEN

from hf_textgen.hub.model_card import CARD_MARKER

_TRAINER_SCRIPT = """
import json, torch
import hf_textgen
from hf_textgen.hub.model_card import write_model_card
from hf_textgen.hub.push import push_training_output
from transformers import AutoTokenizer, Trainer, TrainingArguments
config = hf_textgen.RNNConfig(vocab_size=512, hidden_size=16, num_hidden_layers=1)
model = hf_textgen.RNNForCausalLM(config)
rows = [{{"input_ids": torch.arange(i, i + 8), "labels": torch.arange(i, i + 8)}} for i in range(8)]
args = TrainingArguments(
    output_dir={output_dir!r}, max_steps=2, per_device_train_batch_size=4, report_to="none", save_strategy="no",
    push_to_hub=True, hub_model_id="trainer-push", disable_tqdm=True, logging_steps=1,
)
tokenizer = AutoTokenizer.from_pretrained({tokenizer_path!r})
trainer = Trainer(model=model, args=args, train_dataset=rows, processing_class=tokenizer)
metrics = trainer.train().metrics
# 1. The Trainer's own push (upload_folder of the output folder, with its generic card).
print("TRAINER", trainer.push_to_hub(commit_message="End of training").oid)
# 2. What pretrain / finetune do at the end: state, metrics, our card, then one commit through our push.
trainer.save_state()
trainer.save_metrics("all", {{**metrics, "eval_loss": 5.0}})
write_model_card(args.output_dir)
print("OURS", push_training_output(trainer).commit.oid)
"""


@pytest.mark.slow
def test_trainer_push_to_hub_then_push_training_output(hub, tmp_path, tiny_tokenizer_path):
    script = _TRAINER_SCRIPT.format(output_dir=str(tmp_path / "out"), tokenizer_path=tiny_tokenizer_path)
    process = hub.run_python(script)
    assert process.returncode == 0, process.stderr[-3000:]
    # A bare --hub_model_id goes to the token owner's namespace, for the Trainer and for us alike.
    repo = hub.server.state.repos["alice/trainer-push"]
    titles = [commit.title for commit in repo.commits.values()]
    assert titles[-2:] == ["End of training", "End of training"]
    files = hub.server.files("alice/trainer-push")
    config = json.loads(files["config.json"])
    # The Trainer's upload_folder carries the remote code that save_pretrained copied beside the weights...
    assert {"modeling_rnn.py", "configuration_rnn.py", "model.safetensors", "tokenizer.json"} <= set(files)
    assert config["auto_map"]["AutoModelForCausalLM"] == "modeling_rnn.RNNForCausalLM"
    # ... and our final commit replaces the Trainer's generic card with ours, with the trainer state beside it.
    readme = files["README.md"].decode()
    assert CARD_MARKER in readme and 'repo_id = "alice/trainer-push"' in readme
    assert "trainer_state.json" in files and "perplexity" in readme
    assert not hub.server.unhandled, hub.server.unhandled


@pytest.mark.slow
def test_pretrain_push_to_hub(hub, tmp_path, tiny_corpus_dir, tiny_tokenizer_path):
    argv = [
        "pretrain", "--output_dir", str(tmp_path / "out"), "--model_type", "rnn",
        "--config_overrides", "hidden_size=32,num_hidden_layers=1", "--tokenizer_name", tiny_tokenizer_path,
        "--train_file", f"{tiny_corpus_dir}/train.txt", "--validation_file", f"{tiny_corpus_dir}/validation.txt",
        "--block_size", "32", "--max_steps", "4", "--per_device_train_batch_size", "8", "--logging_steps", "2",
        "--eval_strategy", "steps", "--eval_steps", "2", "--save_steps", "2", "--disable_tqdm", "true",
        "--report_to", "none", "--push_to_hub", "--hub_model_id", "alice/pretrained",
    ]  # fmt: skip
    [process] = hub.cli_many(argv)
    assert process.returncode == 0, process.stderr[-3000:]
    files = hub.server.files("alice/pretrained")
    expected = {"config.json", "model.safetensors", "modeling_rnn.py", "configuration_rnn.py", "tokenizer.json"}
    expected |= {"generation_config.json", "trainer_state.json", "all_results.json", "README.md"}
    assert expected <= set(files), expected - set(files)
    readme = files["README.md"].decode()
    assert CARD_MARKER in readme, "the final push must carry hf_textgen's model card, not the Trainer's"
    assert 'repo_id = "alice/pretrained"' in readme
    for path, content in hub.server.uploads["alice/pretrained"].items():
        assert TOKEN.encode() not in content, path
