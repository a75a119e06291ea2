"""scripts/data_scale.py, the 500 MB measurement of the README, run on a few MB: the same code end to end."""

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).parents[2] / "scripts" / "data_scale.py"


def _script():
    spec = importlib.util.spec_from_file_location("data_scale", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_corpus_is_wikitext_layout_and_not_repeated(tmp_path):
    script = _script()
    stats = script.make_wikitext_corpus(tmp_path / "wiki.train.raw", 300_000, seed=1)
    lines = (tmp_path / "wiki.train.raw").read_text(encoding="utf-8").splitlines(keepends=True)
    assert lines[0] == " \n" and lines[1].startswith(" = ") and lines[1].endswith(" = \n") and lines[2] == " \n"
    assert any(line.startswith(" = = ") for line in lines)
    assert all(line.startswith(" ") and line.endswith(" \n") for line in lines)
    assert stats["unique_paragraphs"] == stats["paragraphs"] > 100
    assert abs(stats["bytes"] - 300_000) < 10_000
    head = tmp_path / "head.raw"
    size = script.head_of_corpus(tmp_path / "wiki.train.raw", head, 100_000)
    assert 100_000 <= size < 110_000 and head.read_text(encoding="utf-8").startswith(" \n = ")


def test_whole_run_on_a_few_megabytes(tmp_path):
    script = _script()
    argv = ["--output_dir", str(tmp_path), "--corpus_mb", "1.5", "--throughput_mb", "0.5", "--streaming_mb", "0.5,1.5"]
    assert script.main(argv) == 0
    report = json.loads((tmp_path / "data_scale.json").read_text())
    assert report["corpus"]["bytes"] >= 1_500_000
    for kind in ("tokenizer_ours", "tokenizer_anchor"):
        assert report["tokenizer_training"][kind]["status"] == 0
        assert report["tokenizer_training"][kind]["peak_rss_mb"] > 0
    runs = {(run["kind"], run["workers"]): run for run in report["tokenize_and_pack"]}
    assert set(runs) == {(kind, workers) for kind in ("pack_ours", "pack_anchor") for workers in (1, 2)}
    assert all(run["blocks"] > 100 and run["mb_per_second"] > 0 for run in runs.values())
    # Both pipelines pack the same text into about as many blocks (ours adds EOS, the anchor keeps blank lines).
    assert abs(runs["pack_ours", 1]["blocks"] / runs["pack_anchor", 1]["blocks"] - 1) < 0.1
    # Streaming holds no more for three times the text.
    small, large = report["streaming"]
    assert large["blocks"] > 2.5 * small["blocks"]
    assert report["streaming_peak_ratio"] < 1.1
    assert not list(tmp_path.glob("wiki.*.raw")) and not list(tmp_path.glob("cache_*"))
