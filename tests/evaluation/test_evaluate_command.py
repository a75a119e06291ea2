"""`hf-textgen evaluate` end to end on tiny saved models, checked against independent computations."""

import json
import math
import re
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

from hf_textgen import (
    RNNConfig,
    RNNForCausalLM,
    Seq2SeqTransformerConfig,
    Seq2SeqTransformerForConditionalGeneration,
    TransformerConfig,
    TransformerForCausalLM,
)
from hf_textgen.cli import main as cli_main
from hf_textgen.data import DataArguments, load_raw_datasets

# One paragraph (one document) of a few hundred characters: short enough for one window of the tiny Transformer.
PARAGRAPH = (
    "BENEDICK. Is it possible disdain should die while she hath such meet food to feed it as Signior Benedick? "
    "Courtesy itself must convert to disdain, if you come in her presence."
)


def _save(model, tokenizer_path, folder):
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def _special_ids(tokenizer):
    return {
        "vocab_size": len(tokenizer),
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }


@pytest.fixture(scope="module")
def transformer_dir(tiny_tokenizer, tiny_tokenizer_path, tmp_path_factory):
    torch.manual_seed(0)
    config = TransformerConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=256,
        **_special_ids(tiny_tokenizer),
    )
    return _save(TransformerForCausalLM(config), tiny_tokenizer_path, tmp_path_factory.mktemp("transformer"))


@pytest.fixture(scope="module")
def rnn_dir(tiny_tokenizer, tiny_tokenizer_path, tmp_path_factory):
    torch.manual_seed(0)
    config = RNNConfig(hidden_size=32, num_hidden_layers=1, cell_type="lstm", **_special_ids(tiny_tokenizer))
    return _save(RNNForCausalLM(config), tiny_tokenizer_path, tmp_path_factory.mktemp("rnn"))


@pytest.fixture(scope="module")
def paragraph_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "validation.txt"
    path.write_text(PARAGRAPH + "\n", encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def document(paragraph_file):
    """The one document evaluate scores in `paragraph_file`: by default a text file is one document, verbatim."""
    (text,) = load_raw_datasets(DataArguments(validation_file=paragraph_file, sample_by="document"))["validation"][
        "text"
    ]
    assert text.strip() == PARAGRAPH
    return text


def _evaluate(argv, output_dir):
    assert cli_main(["evaluate", *argv, "--output_dir", str(output_dir)]) == 0
    return json.loads((output_dir / "eval_results.json").read_text())


def test_one_window_equals_a_plain_forward_pass(transformer_dir, paragraph_file, document, tiny_tokenizer, tmp_path):
    results = _evaluate(["--model_name_or_path", transformer_dir, "--validation_file", paragraph_file], tmp_path)

    # Independent: EOS then the document, one forward pass, the model's own mean loss over the document's tokens.
    ids = [tiny_tokenizer.eos_token_id] + tiny_tokenizer(document, add_special_tokens=False)["input_ids"]
    assert len(ids) < 256
    model = TransformerForCausalLM.from_pretrained(transformer_dir).eval()
    with torch.no_grad():
        loss = model(input_ids=torch.tensor([ids]), labels=torch.tensor([ids])).loss.item()
    total_nll = loss * (len(ids) - 1)
    assert results["num_tokens"] == len(ids) - 1
    assert results["eval_loss"] == pytest.approx(loss, rel=1e-4)
    assert results["perplexity"] == pytest.approx(math.exp(loss), rel=1e-4)
    # Words and bytes as lm-evaluation-harness's wikitext task counts them.
    # lm-eval's count: the file's final line break adds one (empty) piece to the 31 words.
    assert results["num_words"] == len(re.split(r"\s+", document)) == len(PARAGRAPH.split()) + 1
    assert results["word_perplexity"] == pytest.approx(math.exp(total_nll / results["num_words"]), rel=1e-4)
    assert results["num_bytes"] == len(document.encode("utf-8"))
    assert results["bits_per_byte"] == pytest.approx(total_nll / results["num_bytes"] / math.log(2), rel=1e-4)
    assert results["byte_perplexity"] == pytest.approx(2 ** results["bits_per_byte"], rel=1e-4)
    assert results["num_characters"] == len(document)
    assert results["loss_per_character"] == pytest.approx(total_nll / len(document), rel=1e-4)
    assert results["character_perplexity"] == pytest.approx(math.exp(results["loss_per_character"]), rel=1e-4)


def test_rnn_windows_are_lm_eval_rolling_windows(rnn_dir, paragraph_file, document, tiny_tokenizer, tmp_path):
    block_size = 16
    argv = ["--model_name_or_path", rnn_dir, "--validation_file", paragraph_file, "--block_size", str(block_size)]
    results = _evaluate(argv, tmp_path)

    # Independent: lm-eval's rolling windows, one forward pass each. The first window feeds EOS + 15 tokens and
    # predicts the first 16; each next one feeds the 16 tokens before the 16 it predicts; the last one predicts
    # what is left from a full window of context.
    tokens = tiny_tokenizer(document, add_special_tokens=False)["input_ids"]
    model = RNNForCausalLM.from_pretrained(rnn_dir).eval()
    stream = [tiny_tokenizer.eos_token_id] + tokens  # stream[i + 1] == tokens[i]
    total_nll = 0.0
    with torch.no_grad():
        for first in range(0, len(tokens), block_size):
            last = min(first + block_size, len(tokens))  # predict tokens[first:last]
            inputs = stream[max(0, last - block_size) : last]
            log_probs = torch.log_softmax(model(input_ids=torch.tensor([inputs])).logits[0], dim=-1)
            for position in range(first, last):
                total_nll -= log_probs[position - max(0, last - block_size), tokens[position]].item()
    assert results["num_tokens"] == len(tokens)
    assert results["eval_loss"] == pytest.approx(total_nll / len(tokens), rel=1e-4)
    assert results["stride"] == block_size


def test_smaller_stride_scores_every_token_once_with_more_context(rnn_dir, paragraph_file, tmp_path):
    chunks = _evaluate(
        ["--model_name_or_path", rnn_dir, "--validation_file", paragraph_file, "--block_size", "16"],
        tmp_path / "chunks",
    )
    strided = _evaluate(
        ["--model_name_or_path", rnn_dir, "--validation_file", paragraph_file, "--block_size", "16", "--stride", "4"],
        tmp_path / "strided",
    )
    assert strided["num_tokens"] == chunks["num_tokens"]
    assert strided["stride"] == 4
    assert strided["eval_loss"] != chunks["eval_loss"]


def test_bundled_validation_text_by_default(transformer_dir, tmp_path, capsys):
    argv = ["--model_name_or_path", transformer_dir, "--max_eval_samples", "20", "--bf16"]
    results = _evaluate(argv, tmp_path)
    printed = capsys.readouterr().out
    assert "perplexity" in printed and "word_perplexity" in printed
    # The folder records no reading of its training text: the text is read as lm-evaluation-harness reads it.
    assert results["data"] == {
        "max_eval_samples": 20,
        "sample_by": "auto",
        "read_by": "document",
        "reading_chosen_by": "lm-evaluation-harness default",
    }
    for key in ("eval_loss", "perplexity", "word_perplexity", "num_tokens", "num_words"):
        assert key in results
    # An untrained model is close to uniform over its vocabulary.
    assert results["perplexity"] == pytest.approx(512, rel=0.3)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--model_name_or_path", "no/such/folder"], "does not exist"),
        ([], "--model_name_or_path is required"),
        (["--model_name_or_path", "{model}", "--block_size", "1000"], "beyond the model's context"),
        (["--model_name_or_path", "{model}", "--block_size", "16", "--stride", "32"], "larger than --block_size"),
        (["--model_name_or_path", "{model}", "--stride", "0"], "stride must be >= 1"),
        (["--model_name_or_path", "{model}", "--validation_file", "missing.txt"], "missing.txt"),
        (["--model_name_or_path", "{model}", "--per_device_eval_batch_size", "x"], "invalid int value"),
        (["--model_name_or_path", "{model}", "--no_such_flag"], "unrecognised"),
    ],
)
def test_bad_input_is_one_clear_line(transformer_dir, argv, message, capsys):
    argv = [arg.replace("{model}", transformer_dir) for arg in argv]
    assert cli_main(["evaluate", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert len(err.strip().splitlines()) == 1


def test_model_folder_without_config(tmp_path, capsys):
    assert cli_main(["evaluate", "--model_name_or_path", str(tmp_path)]) == 2
    assert "no config.json" in capsys.readouterr().err


def test_yaml_arguments_file(transformer_dir, paragraph_file, tmp_path):
    config = tmp_path / "eval.yaml"
    config.write_text(
        f"model_name_or_path: {transformer_dir}\nvalidation_file: {paragraph_file}\n"
        f"output_dir: {tmp_path / 'out'}\nblock_size: 32\n",
        encoding="utf-8",
    )
    assert cli_main(["evaluate", str(config)]) == 0
    assert json.loads((tmp_path / "out" / "eval_results.json").read_text())["block_size"] == 32


PAIRS = [
    {"source": "Good morrow, cousin.", "target": "Bonjour, cousin."},
    {"source": "What is your name?", "target": "Comment vous appelez-vous ?"},
    {"source": "Thou art a villain.", "target": "Tu es un scélérat."},
]


@pytest.fixture(scope="module")
def seq2seq_dir(tiny_tokenizer, tiny_tokenizer_path, tmp_path_factory):
    torch.manual_seed(0)
    config = Seq2SeqTransformerConfig(
        hidden_size=32,
        intermediate_size=64,
        encoder_layers=1,
        decoder_layers=1,
        num_attention_heads=4,
        max_position_embeddings=64,
        decoder_start_token_id=tiny_tokenizer.bos_token_id,
        **_special_ids(tiny_tokenizer),
    )
    model = Seq2SeqTransformerForConditionalGeneration(config)
    return _save(model, tiny_tokenizer_path, tmp_path_factory.mktemp("seq2seq"))


def test_seq2seq_scores_targets_teacher_forced(seq2seq_dir, tiny_tokenizer, tmp_path):
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(pair) + "\n" for pair in PAIRS), encoding="utf-8")
    argv = ["--model_name_or_path", seq2seq_dir, "--validation_file", str(data), "--per_device_eval_batch_size", "2"]
    results = _evaluate(argv, tmp_path / "out")

    # Independent: one pair at a time (no padding), the model's own mean loss over target + EOS.
    model = Seq2SeqTransformerForConditionalGeneration.from_pretrained(seq2seq_dir).eval()
    total_nll, total_tokens = 0.0, 0
    with torch.no_grad():
        for pair in PAIRS:
            source = tiny_tokenizer(pair["source"], return_tensors="pt")
            labels = tiny_tokenizer(pair["target"], add_special_tokens=False)["input_ids"] + [
                tiny_tokenizer.eos_token_id
            ]
            loss = model(**source, labels=torch.tensor([labels])).loss.item()
            total_nll += loss * len(labels)
            total_tokens += len(labels)
    assert results["num_tokens"] == total_tokens
    assert results["eval_loss"] == pytest.approx(total_nll / total_tokens, rel=1e-4)
    num_words = sum(len(pair["target"].split()) for pair in PAIRS)
    assert results["word_perplexity"] == pytest.approx(math.exp(total_nll / num_words), rel=1e-4)
    num_bytes = sum(len(pair["target"].encode("utf-8")) for pair in PAIRS)
    assert results["num_bytes"] == num_bytes
    assert results["bits_per_byte"] == pytest.approx(total_nll / num_bytes / math.log(2), rel=1e-4)


def test_seq2seq_chinese_targets_have_no_word_perplexity(seq2seq_dir, tmp_path, caplog):
    pairs = [
        {"source": "Good morning.", "target": "早上好。"},
        {"source": "The weather is fine.", "target": "天气很好。"},
    ]
    data = tmp_path / "en_zh.jsonl"
    data.write_text("".join(json.dumps(pair, ensure_ascii=False) + "\n" for pair in pairs), encoding="utf-8")
    results = _evaluate(["--model_name_or_path", seq2seq_dir, "--validation_file", str(data)], tmp_path / "out")
    # A whole Chinese sentence is one "word" by whitespace: left out, with the note, and bits per byte instead.
    assert "word_perplexity" not in results and "num_words" not in results
    assert [r.getMessage() for r in caplog.records if "word_perplexity left out" in r.getMessage()]
    assert results["bits_per_byte"] > 0 and results["num_bytes"] == 27


def test_seq2seq_without_pairs_is_refused_clearly(seq2seq_dir, paragraph_file, capsys):
    assert cli_main(["evaluate", "--model_name_or_path", seq2seq_dir]) == 2
    assert "(source, target) pairs" in capsys.readouterr().err
    assert cli_main(["evaluate", "--model_name_or_path", seq2seq_dir, "--validation_file", paragraph_file]) == 2
    assert "--validation_file" in capsys.readouterr().err


def test_chinese_text_has_no_word_perplexity(transformer_dir, tmp_path, capsys, caplog):
    chinese = Path(__file__).parents[1] / "data" / "fixtures" / "chinese.txt"
    argv = ["--model_name_or_path", transformer_dir, "--validation_file", str(chinese), "--max_eval_samples", "3"]
    results = _evaluate(argv, tmp_path)
    captured = capsys.readouterr()
    assert "word_perplexity" not in results and "num_words" not in results
    assert "word_perplexity" not in captured.out
    (note,) = [r.getMessage() for r in caplog.records if "word_perplexity left out" in r.getMessage()]
    assert "without spaces" in note and "bits_per_byte" in note
    assert results["bits_per_byte"] > 0 and results["num_bytes"] > 2 * results["num_characters"]


def test_text_units_follow_lm_eval():
    from hf_textgen.evaluation.text_units import TextUnits, count_words, unspaced_share

    # ["", "=", "Title", "=", "A", "page", ".", ""]: the leading and the trailing whitespace count one piece each.
    assert count_words(" = Title = \n \n A page . \n") == 8
    assert unspaced_share(["今天天气很好 ok"]) == pytest.approx(6 / 8)
    assert unspaced_share(["これはペンです。", "Hello"]) > 0.5 > unspaced_share(["한국어는 띄어쓰기를 한다"])
    units = TextUnits.of(["ab cd", "é"], num_tokens=4)
    assert (units.num_words, units.num_bytes, units.num_characters) == (3, 7, 6)
    metrics = units.metrics_from_loss(math.log(2), prefix="eval_")
    assert metrics["eval_bits_per_byte"] == pytest.approx(4 / 7)
    assert metrics["eval_word_perplexity"] == pytest.approx(2 ** (4 / 3))
    assert "word_perplexity" not in TextUnits.of(["中文没有空格"], num_tokens=4).metrics_from_loss(1.0)
