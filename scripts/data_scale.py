"""The data pipeline at scale, side by side with transformers' run_clm.py pipeline, on a WikiText-layout corpus.

    python scripts/data_scale.py --output_dir scale_run --corpus_mb 500 --throughput_mb 100 --streaming_mb 100,500

1. Makes `wiki.train.raw`, about `--corpus_mb` MB in WikiText's layout (`" = Title = "` articles, `" = = Section
   = = "` headings, one paragraph per line, `" \\n"` around headings) from the bundled corpus: every paragraph is
   a fresh random draw of bundled lines, so the corpus is shuffled text, not one block repeated.
2. Tokenizer training (byte-level BPE, 8,000 tokens) on the whole corpus: `hf-textgen train-tokenizer` against the
   same trainer fed by `datasets.load_dataset("text")` rows (the anchor). Wall time and peak memory.
3. Tokenize-and-pack throughput (MB/s) on the first `--throughput_mb` MB with 1 and 2 workers: our
   `load_raw_datasets` + `tokenize_and_group` against run_clm.py's `load_dataset("text")` + `map(tokenize)` +
   `map(group_texts)` (the anchor), each from an empty datasets cache.
4. `--streaming` peak memory over the first 100 MB and over the whole corpus: every block is read once.

Each measurement runs in its own process (peak memory is that process's maximum resident set size) with its own
empty datasets cache. `--tokenizer_mb` and `--throughput_mb` can be smaller than the corpus to keep the run short;
the JSON written to `--output_dir/data_scale.json` records every size used, the machine and its load. CI runs the
same code on a few MB (tests/data/test_scale_script.py).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MB = 1_000_000
BLOCK_SIZE = 256
VOCAB_SIZE = 8000


# ----------------------------------------------------------------------------------------------------------- corpus
def _bundled_lines() -> list[str]:
    # Found without importing hf_textgen (and torch with it): the driver process stays small.
    package = Path(importlib.util.find_spec("hf_textgen").origin).parent
    with open(package / "data" / "corpus" / "train.txt", encoding="utf-8") as handle:
        return [line.strip() for line in handle if len(line.strip()) > 20]


def make_wikitext_corpus(path: str | Path, target_bytes: int, seed: int = 0) -> dict:
    """Write about `target_bytes` of WikiText-layout text drawn at random from the bundled corpus.

    Returns:
        `{"bytes", "articles", "paragraphs", "unique_paragraphs"}` of what was written.
    """
    rng = random.Random(seed)
    lines = _bundled_lines()
    words = sorted({word.capitalize() for line in lines for word in line.split() if word.isalpha() and len(word) > 3})
    written = articles = paragraphs = 0
    seen: set[int] = set()
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(" \n")
        while written < target_bytes:
            parts = [f" = {' '.join(rng.choices(words, k=rng.randint(1, 3)))} = \n", " \n"]
            for section in range(rng.randint(1, 4)):
                if section:
                    parts += [f" = = {rng.choice(words)} = = \n", " \n"]
                for _ in range(rng.randint(1, 4)):
                    paragraph = " ".join(rng.choices(lines, k=rng.randint(3, 9)))
                    seen.add(hash(paragraph))
                    parts.append(f" {paragraph} \n")
                    paragraphs += 1
                parts.append(" \n")
            text = "".join(parts)
            handle.write(text)
            written += len(text.encode("utf-8"))
            articles += 1
    return {
        "bytes": os.path.getsize(path),
        "articles": articles,
        "paragraphs": paragraphs,
        "unique_paragraphs": len(seen),
    }


def head_of_corpus(source: str | Path, target: str | Path, size_bytes: int) -> int:
    """Copy the first articles of `source` that fit in `size_bytes` (cut before a title line); returns the size."""
    written = 0
    with open(source, encoding="utf-8") as reader, open(target, "w", encoding="utf-8") as writer:
        for line in reader:
            if written >= size_bytes and line.startswith(" = ") and not line.startswith(" = = "):
                break
            writer.write(line)
            written += len(line.encode("utf-8"))
    return os.path.getsize(target)


# ---------------------------------------------------------------------------------------- measurements (children)
def _tokenizer_ours(corpus: str, output: str, workers: int, tokenizer: str) -> dict:
    from hf_textgen.cli import main

    status = main(["train-tokenizer", "--train_file", corpus, "--vocab_size", str(VOCAB_SIZE), "--output_dir", output])
    return {"status": status}


def _tokenizer_anchor(corpus: str, output: str, workers: int, tokenizer: str) -> dict:
    import datasets

    from hf_textgen.data import train_tokenizer

    # What the tokenizers / transformers docs do: batches of `load_dataset("text")` rows into the same trainer.
    dataset = datasets.load_dataset("text", data_files=corpus, split="train")
    batches = (dataset[start : start + 1000]["text"] for start in range(0, len(dataset), 1000))
    train_tokenizer(batches, vocab_size=VOCAB_SIZE).save_pretrained(output)
    return {"status": 0}


def _pack_ours(corpus: str, output: str, workers: int, tokenizer: str) -> dict:
    from transformers import AutoTokenizer

    from hf_textgen.data import DataArguments, load_raw_datasets, tokenize_and_group

    args = DataArguments(train_file=[corpus], preprocessing_num_workers=workers)
    lm = tokenize_and_group(
        load_raw_datasets(args, split_validation=False), AutoTokenizer.from_pretrained(tokenizer), BLOCK_SIZE, args
    )
    return {"blocks": len(lm["train"]) + len(lm["validation"])}


def _pack_anchor(corpus: str, output: str, workers: int, tokenizer: str) -> dict:
    from itertools import chain

    import datasets
    from transformers import AutoTokenizer

    # transformers/examples/pytorch/language-modeling/run_clm.py, reduced to its data steps.
    tok = AutoTokenizer.from_pretrained(tokenizer)
    raw = datasets.load_dataset("text", data_files={"train": corpus})

    def tokenize_function(examples):
        return tok(examples["text"])

    tokenized = raw.map(tokenize_function, batched=True, num_proc=workers, remove_columns=["text"])

    def group_texts(examples):
        concatenated = {k: list(chain(*examples[k])) for k in examples}
        total_length = len(concatenated["input_ids"]) // BLOCK_SIZE * BLOCK_SIZE
        result = {
            k: [t[i : i + BLOCK_SIZE] for i in range(0, total_length, BLOCK_SIZE)] for k, t in concatenated.items()
        }
        result["labels"] = result["input_ids"].copy()
        return result

    lm = tokenized.map(group_texts, batched=True, num_proc=workers)
    return {"blocks": len(lm["train"])}


def _stream_ours(corpus: str, output: str, workers: int, tokenizer: str) -> dict:
    from transformers import AutoTokenizer

    from hf_textgen.data import DataArguments, load_raw_datasets, tokenize_and_group

    args = DataArguments(train_file=[corpus], streaming=True)
    lm = tokenize_and_group(
        load_raw_datasets(args, split_validation=False), AutoTokenizer.from_pretrained(tokenizer), BLOCK_SIZE, args
    )
    # One pass over the training stream reads the whole corpus (validation is every 20th block of the same pass).
    return {"blocks": sum(1 for _ in lm["train"])}


CHILDREN = {
    "tokenizer_ours": _tokenizer_ours,
    "tokenizer_anchor": _tokenizer_anchor,
    "pack_ours": _pack_ours,
    "pack_anchor": _pack_anchor,
    "stream_ours": _stream_ours,
}


def _child(kind: str, corpus: str, output: str, workers: int, tokenizer: str) -> None:
    import datasets
    import transformers  # noqa: F401  (imported before the clock starts: only the work is timed)

    import hf_textgen.cli  # noqa: F401
    import hf_textgen.data  # noqa: F401

    datasets.disable_progress_bars()
    start = time.perf_counter()
    result = CHILDREN[kind](corpus, output, workers, tokenizer)
    result["seconds"] = time.perf_counter() - start
    print("RESULT " + json.dumps(result))


def measure(kind: str, corpus: str | Path, work_dir: Path, workers: int = 1, tokenizer: str = "", env=None) -> dict:
    """Run one measurement in a fresh process with an empty datasets cache: its result, wall and CPU time, peak RSS."""
    cache = Path(tempfile.mkdtemp(prefix=f"cache_{kind}_", dir=work_dir))
    output = work_dir / f"out_{kind}"
    shutil.rmtree(output, ignore_errors=True)
    child_env = {**os.environ, "HF_DATASETS_CACHE": str(cache), "OMP_NUM_THREADS": "1", **(env or {})}
    command = [sys.executable, __file__, "--child", kind, "--corpus", str(corpus), "--child_output", str(output)]
    command += ["--workers", str(workers), "--tokenizer", tokenizer]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env, text=True)
    stdout, stderr = process.communicate()
    # communicate() has reaped the child; its resource use is in RUSAGE_CHILDREN, cumulative, so take the difference.
    shutil.rmtree(cache, ignore_errors=True)
    if process.returncode != 0:
        raise RuntimeError(f"{kind} failed:\n{stderr[-3000:]}")
    (line,) = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    result = json.loads(line[len("RESULT ") :])
    result["corpus_mb"] = os.path.getsize(corpus) / MB
    result["workers"] = workers
    return result


def _timed_measure(*args, **kwargs) -> dict:
    """`measure` plus the child's CPU time (user + sys) and peak resident memory, from `resource`."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = measure(*args, **kwargs)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result["cpu_seconds"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    # ru_maxrss of RUSAGE_CHILDREN is the largest child so far; run_all orders the runs so each is read correctly.
    result["peak_rss_mb"] = after.ru_maxrss * 1024 / MB
    return result


def _peak_rss_of(kind: str, corpus, work_dir, **kwargs) -> dict:
    """Run in a throw-away intermediate process, so that RUSAGE_CHILDREN's maximum covers this one run only."""
    command = [sys.executable, __file__, "--measure_one", kind, "--corpus", str(corpus), "--work_dir", str(work_dir)]
    command += ["--workers", str(kwargs.get("workers", 1)), "--tokenizer", kwargs.get("tokenizer", "")]
    if kwargs.get("env"):
        command += ["--env", json.dumps(kwargs["env"])]
    completed = subprocess.run(command, capture_output=True, text=True)
    if completed.returncode != 0:
        raise RuntimeError(completed.stderr[-3000:])
    (line,) = [line for line in completed.stdout.splitlines() if line.startswith("MEASURED ")]
    return json.loads(line[len("MEASURED ") :])


# ---------------------------------------------------------------------------------------------------------- driver
def _machine() -> dict:
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version()}


def run_all(args) -> dict:
    work_dir = Path(args.output_dir).resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    report: dict = {"machine": _machine(), "load_before": os.getloadavg(), "block_size": BLOCK_SIZE}

    corpus = work_dir / "wiki.train.raw"
    start = time.perf_counter()
    report["corpus"] = make_wikitext_corpus(corpus, int(args.corpus_mb * MB), seed=args.seed)
    report["corpus"]["seconds_to_make"] = time.perf_counter() - start
    print(f"corpus: {report['corpus']}", flush=True)

    def head(mb: float) -> Path:
        if mb >= args.corpus_mb:
            return corpus
        path = work_dir / f"wiki.head{mb:g}MB.raw"
        head_of_corpus(corpus, path, int(mb * MB))
        return path

    tokenizer_corpus = head(args.tokenizer_mb)
    report["tokenizer_training"] = {}
    for kind in ("tokenizer_ours", "tokenizer_anchor"):
        report["tokenizer_training"][kind] = _peak_rss_of(kind, tokenizer_corpus, work_dir)
        print(f"{kind}: {report['tokenizer_training'][kind]}", flush=True)
    tokenizer = str(work_dir / "out_tokenizer_ours")

    # One process per worker count; tokenizers' own thread pool is off so that "1 worker" means one core.
    single_thread = {"TOKENIZERS_PARALLELISM": "false"}
    throughput_corpus = head(args.throughput_mb)
    report["tokenize_and_pack"] = []
    for workers in (1, 2):
        for kind in ("pack_ours", "pack_anchor"):
            result = _peak_rss_of(
                kind, throughput_corpus, work_dir, workers=workers, tokenizer=tokenizer, env=single_thread
            )
            result["kind"] = kind
            result["mb_per_second"] = result["corpus_mb"] / result["seconds"]
            report["tokenize_and_pack"].append(result)
            print(f"{kind} x{workers}: {result}", flush=True)

    report["streaming"] = []
    for mb in args.streaming_mb:
        result = _peak_rss_of("stream_ours", head(mb), work_dir, tokenizer=tokenizer, env=single_thread)
        report["streaming"].append(result)
        print(f"streaming {mb} MB: {result}", flush=True)
    peaks = [result["peak_rss_mb"] for result in report["streaming"]]
    report["streaming_peak_ratio"] = max(peaks) / min(peaks)
    report["load_after"] = os.getloadavg()
    (work_dir / "data_scale.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if not args.keep_corpus:
        for path in work_dir.glob("wiki.*.raw"):
            path.unlink()
    return report


def parse_args(argv: list[str] | None = None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output_dir", default="data_scale_run")
    parser.add_argument("--corpus_mb", type=float, default=500)
    parser.add_argument("--tokenizer_mb", type=float, default=None, help="default: the whole corpus")
    parser.add_argument("--throughput_mb", type=float, default=100)
    parser.add_argument("--streaming_mb", type=lambda text: [float(x) for x in text.split(",")], default=[100, 500])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep_corpus", action="store_true")
    # Internal: one measurement in a child process.
    parser.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument("--measure_one", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument("--corpus", help=argparse.SUPPRESS)
    parser.add_argument("--child_output", help=argparse.SUPPRESS)
    parser.add_argument("--work_dir", help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--tokenizer", default="", help=argparse.SUPPRESS)
    parser.add_argument("--env", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.tokenizer_mb is None:
        args.tokenizer_mb = args.corpus_mb
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        _child(args.child, args.corpus, args.child_output, args.workers, args.tokenizer)
    elif args.measure_one:
        env = json.loads(args.env) if args.env else None
        result = _timed_measure(
            args.measure_one, args.corpus, Path(args.work_dir), workers=args.workers, tokenizer=args.tokenizer, env=env
        )
        print("MEASURED " + json.dumps(result))
    else:
        run_all(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
