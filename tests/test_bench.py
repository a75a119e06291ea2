"""`hf-textgen bench`: a tiny in-process run checks the results' structure and arithmetic, never speed."""

from __future__ import annotations

import json
import math
import statistics

import pytest
import torch

from hf_textgen.benchmarks import SHAPES, BenchSettings, Shape, run_benchmarks
from hf_textgen.benchmarks.contenders import (
    build_llama,
    build_ours,
    build_pair,
    matmul_parameter_count,
    parameter_count,
)
from hf_textgen.benchmarks.generation import StepClock
from hf_textgen.benchmarks.timing import alternate
from hf_textgen.cli import run_command
from hf_textgen.commands import bench

TINY = Shape(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    vocab_size=128,
    seq_len=16,
    batch_size=2,
)


def tiny_settings(**overrides) -> BenchSettings:
    settings = {
        "num_threads": 1,  # tiny ops on an oversubscribed box: one thread avoids OpenMP barrier stalls
        "shapes": {"tiny": TINY},
        "train_repeats": 3,
        "train_warmup": 1,
        "gemm_size": 64,
        "generation_shapes": {"tiny": TINY},
        "generation_batch_sizes": (1, 2),
        "prompt_len": 8,
        "new_tokens": 4,
        "generation_repeats": 2,
        "context_shape": TINY,
        "context_lengths": (8, 24),
        "context_new_tokens": 4,
        "context_repeats": 2,
        "quality_steps": 4,
        "quality_eval_interval": 2,
        "quality_eval_iters": 2,
        "quality_hidden": 16,
        "quality_layers": 1,
        "quality_heads": 2,
        "quality_context": 16,
        "quality_batch_size": 2,
        "transfer_pretrain_steps": 2,
        "transfer_hidden": 16,
        "transfer_layers": 2,
        "transfer_heads": 2,
        "transfer_lm_chars": (500, 1000),
        "transfer_labels_per_class": (2, 4),
        "transfer_completion_pairs": (2,),
        "transfer_finetune_steps": {"language_modeling": 2, "classification": 2, "prompt_completion": 2},
        "transfer_seeds": (0, 1),
        "transfer_eval_size": 4,
    }
    return BenchSettings(**{**settings, **overrides})


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench")
    results = run_benchmarks(tiny_settings(), folder, log=lambda line: None)
    return folder, results


def test_alternate_takes_turns_and_ratio_is_of_medians():
    calls = []
    timed = alternate({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repeats=3, warmup=2)
    assert calls == ["a", "b"] * 5  # 2 warm-up rounds, then 3 timed rounds
    assert timed.order == ["a", "b"] * 3
    assert all(len(samples) == 3 and min(samples) >= 0 for samples in timed.seconds.values())
    timed.seconds = {"a": [1.0, 9.0, 2.0], "b": [4.0, 4.0, 100.0]}
    assert timed.median("a") == 2.0
    assert timed.speedup("a", "b") == pytest.approx(2.0)
    with pytest.raises(ValueError, match="repeats"):
        alternate({"a": lambda: None}, repeats=0)


def test_contenders_have_identical_size_and_weights():
    assert parameter_count(build_ours(TINY, 32)) == parameter_count(build_llama(TINY, 32))
    pair = build_pair(TINY, 32)
    ours, llama = pair["ours"], pair["llama"]
    input_ids = torch.randint(0, TINY.vocab_size, (2, 8))
    torch.testing.assert_close(ours(input_ids).logits, llama(input_ids).logits, rtol=1e-4, atol=1e-5)
    assert parameter_count(ours) == parameter_count(llama)
    assert matmul_parameter_count(ours) == matmul_parameter_count(llama) == parameter_count(llama) - 128 * 32
    assert SHAPES["small"].hidden_size == 256 and SHAPES["medium"].intermediate_size == 2048


def test_gpt2_shape_has_124m_parameters():
    shape = SHAPES["gpt2"]
    # Counted from the shape (building the model would take seconds): tied embedding + per-layer attention,
    # SwiGLU and two norms + final norm.
    per_layer = 4 * shape.hidden_size**2 + 3 * shape.hidden_size * shape.intermediate_size + 2 * shape.hidden_size
    total = shape.vocab_size * shape.hidden_size + shape.num_hidden_layers * per_layer + shape.hidden_size
    assert 123e6 < total < 125e6


def test_step_clock_measures_gaps():
    clock = StepClock(torch.device("cpu"))
    clock.stamps = [0.0, 1.0, 3.0, 4.0]
    assert clock.per_token_seconds() == 1.0
    scores = torch.zeros(1, 5)
    assert clock(torch.zeros(1, 1, dtype=torch.long), scores) is scores
    assert len(clock.stamps) == 5


def test_results_json_structure(tiny_run):
    folder, results = tiny_run
    written = json.loads((folder / "results.json").read_text())
    assert written["targets"] == results["targets"]
    assert set(written["comparisons"]) == {
        "training",
        "generation",
        "context",
        "quality",
        "transfer",
        "finetune_recipe",
    }
    assert written["machine"]["torch_threads"] == 1
    assert (folder / "table.txt").read_text().startswith("target")
    markdown = (folder / "table.md").read_text()
    assert "| training tiny fp32: ours/llama tokens/s |" in markdown and "| tiny, batch 2 |" in markdown
    for name in ("training", "generation", "context", "quality", "transfer"):
        assert (folder / f"{name}.png").read_bytes()[:4] == b"\x89PNG"


def test_training_rows(tiny_run):
    _, results = tiny_run
    training = results["comparisons"]["training"]
    assert [(row["shape"], row["dtype"]) for row in training["rows"]] == [("tiny", "fp32"), ("tiny", "bf16")]
    for row in training["rows"]:
        assert row["order"] == ["ours", "llama", "peak_gemm"] * 3  # the peak GEMM takes its turn too
        assert row["peak_flops"] == pytest.approx(2 * 64**3 / statistics.median(row["gemm_seconds"]))
        ours, llama = row["contenders"]["ours"], row["contenders"]["llama"]
        for values in (ours, llama):
            assert len(values["seconds"]) == 3
            assert values["median_seconds"] == statistics.median(values["seconds"])
            assert values["tokens_per_second"] == pytest.approx(row["tokens_per_step"] / values["median_seconds"])
            assert 0 < values["mfu"] == pytest.approx(values["achieved_flops"] / row["peak_flops"])
            # Random tokens over a 128-token vocabulary: the loss starts near ln(128).
            assert all(abs(loss - math.log(128)) < 1.0 for loss in values["losses"])
        assert ours["parameters"] == llama["parameters"]
        assert row["max_loss_difference"] < 1e-2  # same weights, same batch
        assert row["ratios"]["ours_vs_llama"] == pytest.approx(llama["median_seconds"] / ours["median_seconds"])


def test_generation_and_context(tiny_run):
    _, results = tiny_run
    rows = results["comparisons"]["generation"]["rows"]
    assert [row["batch_size"] for row in rows] == [1, 2]
    for row in rows:
        assert row["order"] == ["ours", "llama"] * 2
        ours, llama = row["contenders"]["ours"], row["contenders"]["llama"]
        assert ours["tokens_per_second"] == pytest.approx(row["batch_size"] * 4 / ours["median_seconds"])
        assert row["ratios"]["ours_vs_llama"] == pytest.approx(llama["median_seconds"] / ours["median_seconds"])
        assert row["same_greedy_tokens"] == 1.0  # same weights, greedy
    context = results["comparisons"]["context"]
    assert context["context_lengths"] == [8, 24]
    for name in ("rnn", "transformer"):
        per_token = context["contenders"][name]["per_token_seconds"]
        assert len(per_token) == 2 and min(per_token) > 0
        assert per_token == [statistics.median(samples) for samples in context["contenders"][name]["samples"]]
        assert context["growth"][name] == pytest.approx(per_token[-1] / per_token[0])
    assert context["orders"] == [["rnn", "transformer"] * 2] * 2


def test_quality(tiny_run):
    _, results = tiny_run
    quality = results["comparisons"]["quality"]
    assert set(quality["curves"]) == {"transformer", "lstm", "llama", "gru", "elman_rnn"}
    for curve in quality["curves"].values():
        assert [point["step"] for point in curve] == [0, 2, 4]
        assert curve[0]["seconds"] == 0 < curve[1]["seconds"] < curve[2]["seconds"]
        assert all(0 < point["val_loss"] < 2 * math.log(quality["vocab_size"]) for point in curve)
    # The quick/tiny run does not reach the 2,000 steps nanoGPT's number is for, so it is not judged.
    quality_target = next(t for t in results["targets"] if t["target"].startswith("val loss"))
    assert quality_target["measured"] is None and quality_target["met"] is None


def test_targets_follow_the_ratios(tiny_run):
    _, results = tiny_run
    by_name = {target["target"]: target for target in results["targets"]}
    training = by_name["training tiny fp32: ours/llama tokens/s"]
    assert training["measured"] == results["comparisons"]["training"]["rows"][0]["ratios"]["ours_vs_llama"]
    assert training["met"] == (training["measured"] >= 1.25)
    rnn = by_name["RNN time/token at 24 vs 8"]
    assert rnn["met"] == (rnn["measured"] <= 1.2)


def test_cli_writes_the_output_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bench.BenchSettings, "quick", classmethod(lambda cls, **kw: tiny_settings(**kw)))
    output = tmp_path / "out"
    status = run_command(bench.main, ["--output_dir", str(output), "--quick", "--only", "context"])
    assert status == 0
    results = json.loads((output / "results.json").read_text())
    assert list(results["comparisons"]) == ["context"]
    assert "RNN time/token" in capsys.readouterr().out
    # A second run into the same non-empty folder is a user mistake, not a traceback.
    assert run_command(bench.main, ["--output_dir", str(output), "--quick", "--only", "context"]) == 2
    assert "already holds files" in capsys.readouterr().err


def test_cli_rejects_bad_flags(tmp_path, capsys):
    if not torch.cuda.is_available():
        assert run_command(bench.main, ["--output_dir", str(tmp_path / "gpu"), "--device", "cuda"]) == 2
        assert "no CUDA GPU" in capsys.readouterr().err
    assert run_command(bench.main, ["--output_dir", str(tmp_path / "x"), "--device", "tpu"]) == 2
    assert "cpu or cuda" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["--output_dir", str(tmp_path / "y"), "--only", "speed"])
    assert exit_info.value.code == 2
    assert not (tmp_path / "gpu").exists() and not (tmp_path / "x").exists()


def test_transfer_results(tiny_run):
    _, results = tiny_run
    transfer_results = results["comparisons"]["transfer"]
    assert set(transfer_results["pretraining"]) == {"transformer", "lstm"}
    for info in transfer_results["pretraining"].values():
        assert info["tokens"] == info["steps"] * info["batch_size"] * info["context"] == 2 * 2 * 16
    amounts = {"language_modeling": ["500", "1000"], "classification": ["2", "4"], "prompt_completion": ["2"]}
    for family in ("transformer", "lstm"):
        for task, task_amounts in amounts.items():
            assert list(transfer_results["results"][family][task]) == task_amounts
            for by_start in transfer_results["results"][family][task].values():
                assert set(by_start) == {"pretrained", "scratch"}
                for metrics in by_start.values():
                    for summary in metrics.values():
                        assert len(summary["values"]) == 2  # one per seed
                        assert summary["mean"] == pytest.approx(statistics.fmean(summary["values"]))
                        assert summary["std"] == pytest.approx(statistics.stdev(summary["values"]))
    # Two targets per family (language modelling and classification), at the smallest amount.
    checks = transfer_results["targets"]
    assert [(c["family"], c["task"], c["amount"]) for c in checks] == [
        (family, task, amount)
        for family in ("transformer", "lstm")
        for task, amount in (("language_modeling", 500), ("classification", 2))
    ]
    for check in checks:
        cell = transfer_results["results"][check["family"]][check["task"]][str(check["amount"])]
        pretrained, scratch = cell["pretrained"][check["metric"]], cell["scratch"][check["metric"]]
        sign = 1 if check["task"] == "classification" else -1  # accuracy up, bits per byte down
        assert check["gain"] == pytest.approx(sign * (pretrained["mean"] - scratch["mean"]))
        assert check["met"] == (check["gain"] > 3 * max(pretrained["std"], scratch["std"]))
    language_modeling = transfer_results["results"]["lstm"]["language_modeling"]["500"]["pretrained"]
    for loss, bits in zip(language_modeling["loss"]["values"], language_modeling["bits_per_byte"]["values"]):
        assert bits == pytest.approx(loss / math.log(2))  # the validation play is ASCII: one byte per char
    markdown = (tiny_run[0] / "table.md").read_text()
    assert "| transformer | classification (accuracy) | 2 |" in markdown


def test_recipe_ablation_results(tiny_run):
    from hf_textgen.benchmarks.transfer import ABLATION_RECIPES

    _, results = tiny_run
    ablation = results["comparisons"]["finetune_recipe"]
    assert list(ablation["recipes"]) == ["from scratch (lr 1e-3)", *ABLATION_RECIPES]
    assert ablation["amounts"] == {"language_modeling": 500, "classification": 4}
    for by_task in ablation["results"].values():
        for by_recipe in by_task.values():
            assert list(by_recipe) == list(ablation["recipes"])
    assert "| lr 1e-4, mean pooling |" in (tiny_run[0] / "table.md").read_text()


@pytest.fixture(scope="module")
def transfer_tasks():
    from pathlib import Path

    from hf_textgen.benchmarks.quality import load_char_corpus
    from hf_textgen.benchmarks.transfer import build_tasks
    from hf_textgen.data import bundled_corpus_files

    corpus = load_char_corpus()
    text = Path(bundled_corpus_files()["validation"]).read_text(encoding="utf-8")
    return corpus, text, build_tasks(corpus, text, context=64, eval_size=50)


def test_transfer_tasks_come_from_the_unseen_play(transfer_tasks):
    from hf_textgen.benchmarks.transfer import TASK_TRAIN_FRACTION

    corpus, text, tasks = transfer_tasks
    decode = lambda ids: corpus.tokenizer.decode(ids.tolist())  # noqa: E731
    flat = text.replace("\n", " ")
    held_out = flat[int(len(flat) * TASK_TRAIN_FRACTION) :]
    # Real passages are verbatim text; shuffled ones are the same multiset of words in another order.
    real, shuffled = tasks.classification_train
    assert all(decode(passage) in flat for passage in real[:50])
    for passage in shuffled[:50]:
        words = decode(passage).split(" ")
        assert decode(passage) not in flat and len(passage) <= 64 and len(words) >= 4
    inputs, mask, labels = tasks.classification_eval
    assert inputs.shape == (100, 64) and labels.tolist() == [0] * 50 + [1] * 50
    first_real = decode(inputs[0][mask[0].bool()])
    assert first_real in held_out and first_real not in flat[: int(len(flat) * TASK_TRAIN_FRACTION) - 64]
    # Prompt -> completion: a speaker's name line, then the first line of the speech.
    for prompt, completion in tasks.completion_train[:20]:
        name = decode(prompt)
        assert name.endswith(".\n") and name[:-2].replace(" ", "").replace("'", "").isupper()
        assert f"{name}{decode(completion).rstrip()}" in text
        assert len(prompt) + len(completion) <= 65
    assert tasks.lm_eval.shape == (50, 65) and tasks.bytes_per_char == 1.0


def test_transfer_batches_are_the_same_for_both_starts(transfer_tasks):
    from hf_textgen.benchmarks.transfer import task_batches

    corpus, _, tasks = transfer_tasks
    pad_id = corpus.tokenizer.pad_token_id
    for task, amount in (("language_modeling", 1000), ("classification", 16), ("prompt_completion", 16)):
        first = task_batches(task, tasks, amount, 5, 8, 64, 3, pad_id)
        again = task_batches(task, tasks, amount, 5, 8, 64, 3, pad_id)
        other = task_batches(task, tasks, amount, 5, 8, 64, 4, pad_id)
        flatten = lambda batches: [t for b in batches for t in (b.values() if isinstance(b, dict) else b)]  # noqa: E731
        assert all(torch.equal(a, b) for a, b in zip(flatten(first), flatten(again)))
        assert not all(a.shape == b.shape and torch.equal(a, b) for a, b in zip(flatten(first), flatten(other)))
    # Language modelling draws only from the first `amount` characters.
    windows = task_batches("language_modeling", tasks, 1000, 20, 8, 64, 0, pad_id)
    text = tasks.lm_train[:1000].tolist()
    for window in torch.cat(windows)[:10]:
        assert any(text[i : i + 65] == window.tolist() for i in range(1000 - 64))
    # Classification sees exactly 2 x 16 labelled passages, each class equally.
    batches = task_batches("classification", tasks, 16, 4, 8, 64, 0, pad_id)  # 32 examples = 4 batches of 8
    labels = torch.cat([labels for _, _, labels in batches])
    assert labels.tolist().count(0) == labels.tolist().count(1) == 16
    # Prompt -> completion: the loss sees only completion tokens.
    batch = task_batches("prompt_completion", tasks, 16, 1, 8, 64, 0, pad_id)[0]
    prompt_length = len(tasks.completion_train[0][0])
    assert ((batch["labels"] != -100).sum(1) > 0).all() and (
        batch["labels"][batch["attention_mask"] == 0] == -100
    ).all()
    assert prompt_length > 2


def test_finetune_recipe_schedule_and_layerwise_groups():
    from hf_textgen import TransformerConfig, TransformerForSequenceClassification
    from hf_textgen.benchmarks.transfer import Recipe, build_optimizer, lr_factor

    recipe = Recipe(learning_rate=1e-3, warmup_ratio=0.1, lr_scheduler_type="linear", layerwise_lr_decay=0.5)
    factors = [lr_factor(recipe, step, 100) for step in range(100)]
    assert factors[:10] == pytest.approx([(step + 1) / 11 for step in range(10)])
    assert factors[10] == 1.0 and factors[-1] == pytest.approx(1 / 90)
    cosine = Recipe(learning_rate=1e-3, warmup_ratio=0.0, lr_scheduler_type="cosine")
    assert lr_factor(cosine, 50, 100) == pytest.approx(0.5)
    config = TransformerConfig(
        vocab_size=32, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32, num_labels=2
    )
    model = TransformerForSequenceClassification(config)
    optimizer = build_optimizer(model, recipe)
    scale_of = {id(p): group["lr_scale"] for group in optimizer.param_groups for p in group["params"]}
    assert scale_of[id(model.score.weight)] == 1.0 and scale_of[id(model.model.norm.weight)] == 1.0
    assert scale_of[id(model.model.layers[1].self_attn.o_proj.weight)] == 0.5
    assert scale_of[id(model.model.layers[0].self_attn.o_proj.weight)] == 0.25
    assert scale_of[id(model.model.embed_tokens.weight)] == 0.125
    assert len(scale_of) == len(list(model.parameters()))


def test_quick_transfer_run_shows_what_pretraining_buys(tmp_path):
    # The real `hf-textgen bench --only transfer --quick` (small models, few steps): a CI-sized run whose
    # language-modelling result must still show pretraining's gain beyond the seed spread for both families.
    settings = BenchSettings.quick(only=("transfer",), num_threads=1)
    results = run_benchmarks(settings, tmp_path, log=lambda line: None)
    transfer_results = results["comparisons"]["transfer"]
    assert transfer_results["seeds"] == [0, 1]
    checks = {(check["family"], check["task"]): check for check in transfer_results["targets"]}
    for family in ("transformer", "lstm"):
        assert checks[(family, "language_modeling")]["met"], checks[(family, "language_modeling")]
        completion = transfer_results["results"][family]["prompt_completion"]["16"]
        assert completion["pretrained"]["loss"]["mean"] < completion["scratch"]["loss"]["mean"]
    assert (tmp_path / "transfer.png").read_bytes()[:4] == b"\x89PNG"
