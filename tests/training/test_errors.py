"""Bad input to pretrain / finetune: one `error:` line, exit status 2, and no output folder at all."""

import pytest

from hf_textgen import cli
from hf_textgen.models import RNNConfig, RNNForCausalLM


def _run(argv, capsys):
    status = cli.main(argv)
    err = capsys.readouterr().err
    error_lines = [line for line in err.splitlines() if line.startswith("error:")]
    return status, error_lines, err


def _assert_clean_failure(argv, output_dir, capsys, expected):
    status, error_lines, err = _run(argv, capsys)
    assert status == 2, err
    assert len(error_lines) == 1, err
    assert expected in error_lines[0]
    assert "Traceback" not in err
    assert not output_dir.exists()


@pytest.fixture()
def base_argv(tmp_path, tiny_corpus_dir, tiny_tokenizer_path):
    return [
        "--output_dir",
        str(tmp_path / "out"),
        "--train_file",
        f"{tiny_corpus_dir}/train.txt",
        "--validation_file",
        f"{tiny_corpus_dir}/validation.txt",
        "--tokenizer_name",
        tiny_tokenizer_path,
        "--max_steps",
        "1",
    ]


def test_empty_corpus(tmp_path, base_argv, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    argv = ["pretrain", *base_argv, "--model_type", "rnn"]
    argv[argv.index("--train_file") + 1] = str(empty)
    _assert_clean_failure(argv, tmp_path / "out", capsys, "empty")


def test_unknown_model_type(tmp_path, base_argv, capsys):
    _assert_clean_failure(
        ["pretrain", *base_argv, "--model_type", "lstmformer"], tmp_path / "out", capsys, "lstmformer"
    )


def test_unknown_config_override(tmp_path, base_argv, capsys):
    argv = ["pretrain", *base_argv, "--model_type", "rnn", "--config_overrides", "hidden_sise=8"]
    _assert_clean_failure(argv, tmp_path / "out", capsys, "hidden_sise")


def test_config_the_model_class_refuses(tmp_path, base_argv, capsys):
    # RNNConfig accepts bidirectional=True (for classification); RNNForCausalLM refuses it when built.
    argv = ["pretrain", *base_argv, "--model_type", "rnn", "--config_overrides", "bidirectional=True"]
    _assert_clean_failure(argv, tmp_path / "out", capsys, "bidirectional")


def test_encoder_decoder_cannot_be_pretrained_as_causal_lm(tmp_path, base_argv, capsys):
    _assert_clean_failure(["pretrain", *base_argv, "--model_type", "seq2seq"], tmp_path / "out", capsys, "seq2seq")


def test_tokenizer_larger_than_model_vocabulary(tmp_path, base_argv, capsys):
    small = tmp_path / "small_vocab_model"
    RNNForCausalLM(RNNConfig(vocab_size=100, hidden_size=8, num_hidden_layers=1)).save_pretrained(small)
    argv = ["pretrain", *base_argv, "--model_name_or_path", str(small)]
    _assert_clean_failure(argv, tmp_path / "out", capsys, "vocabulary holds only 100")


def test_block_size_beyond_model(tmp_path, base_argv, capsys):
    overrides = (
        "hidden_size=16,num_hidden_layers=1,num_attention_heads=2,intermediate_size=32,max_position_embeddings=16"
    )
    argv = ["pretrain", *base_argv, "--model_type", "transformer", "--config_overrides", overrides]
    _assert_clean_failure([*argv, "--block_size", "32"], tmp_path / "out", capsys, "--block_size 32")


def test_bad_training_argument_value(tmp_path, base_argv, capsys):
    argv = ["pretrain", *base_argv, "--model_type", "rnn", "--eval_strategy", "sometimes"]
    _assert_clean_failure(argv, tmp_path / "out", capsys, "sometimes")


def test_missing_label_column(tmp_path, base_argv, capsys):
    data = tmp_path / "reviews.csv"
    data.write_text("text,sentiment\n" + "".join(f"line {i},{'pos' if i % 2 else 'neg'}\n" for i in range(20)))
    argv = ["finetune", "--task", "classification", "--model_type", "rnn", *base_argv]
    argv[argv.index("--train_file") + 1] = str(data)
    validation = argv.index("--validation_file")
    del argv[validation : validation + 2]
    _assert_clean_failure(argv, tmp_path / "out", capsys, "'label'")


def test_unknown_task(tmp_path, base_argv, capsys):
    _assert_clean_failure(["finetune", "--task", "translation", *base_argv], tmp_path / "out", capsys, "translation")


def test_structured_task_needs_data(tmp_path, base_argv, capsys):
    argv = ["finetune", "--task", "prompt_completion", "--model_type", "rnn", *base_argv]
    start = argv.index("--train_file")
    del argv[start : start + 4]
    _assert_clean_failure(argv, tmp_path / "out", capsys, "--train_file")


def test_report_to_tensorboard_needs_tensorboard(tmp_path, base_argv, capsys):
    from transformers.integrations import is_tensorboard_available

    if is_tensorboard_available():
        pytest.skip("TensorBoard is installed here: --report_to tensorboard is valid")
    argv = ["pretrain", *base_argv, "--model_type", "rnn", "--report_to", "tensorboard"]
    _assert_clean_failure(argv, tmp_path / "out", capsys, "tensorboard")


def test_streaming_needs_max_steps(tmp_path, base_argv, capsys):
    argv = ["pretrain", *base_argv, "--model_type", "rnn", "--streaming"]
    argv[argv.index("--max_steps") + 1] = "-1"
    _assert_clean_failure(argv, tmp_path / "out", capsys, "--max_steps")


def test_missing_model_folder(tmp_path, base_argv, capsys):
    argv = ["finetune", "--task", "causal_lm", *base_argv, "--model_name_or_path", str(tmp_path / "no_such_model")]
    _assert_clean_failure(argv, tmp_path / "out", capsys, "no_such_model does not exist")
