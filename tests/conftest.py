"""Shared test set-up: offline Hugging Face libraries, a private datasets cache, a tiny corpus and tokenizer.

The environment is set before anything imports `datasets` / `transformers` / `huggingface_hub`, because those
libraries read it at import time. Every test session gets its own cache folder, so tests never write to
`~/.cache/huggingface` nor depend on what is there.

Fixtures (session-scoped, built once):

- `tiny_corpus_dir`: a folder with `train.txt` (~8 kB) and `validation.txt` (~2 kB) cut from the bundled corpus.
- `tiny_tokenizer_path`: a folder holding a byte-level BPE tokenizer (vocab 512) trained on a bundled-corpus slice.
- `tiny_tokenizer`: that tokenizer loaded with `AutoTokenizer`. Shared by the whole session: do not mutate it
  (padding side, special tokens); load your own copy from `tiny_tokenizer_path` instead.

Fixture to opt into (`pytestmark = pytest.mark.usefixtures("one_torch_thread")`):

- `one_torch_thread`: torch runs on one thread for the test, then gets its thread count back.
"""

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
_SESSION_HF_HOME = tempfile.mkdtemp(prefix="hf_textgen_tests_hf_home_")
os.environ["HF_HOME"] = _SESSION_HF_HOME
os.environ["HF_DATASETS_CACHE"] = os.path.join(_SESSION_HF_HOME, "datasets")
atexit.register(shutil.rmtree, _SESSION_HF_HOME, ignore_errors=True)

import pytest  # noqa: E402

TINY_VOCAB_SIZE = 512
_TINY_TRAIN_CHARS = 8_000
_TINY_VALIDATION_CHARS = 2_000
_TOKENIZER_TRAIN_CHARS = 200_000


def _head_lines(path: str, max_chars: int) -> str:
    """The first whole lines of `path` adding up to at most about `max_chars` characters."""
    text = []
    size = 0
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if size + len(line) > max_chars:
                break
            text.append(line)
            size += len(line)
    return "".join(text)


@pytest.fixture(scope="session")
def tiny_corpus_dir(tmp_path_factory) -> str:
    """A folder with a few kB of bundled-corpus text as `train.txt` and `validation.txt`."""
    from hf_textgen.data import bundled_corpus_files

    files = bundled_corpus_files()
    folder = tmp_path_factory.mktemp("tiny_corpus")
    (folder / "train.txt").write_text(_head_lines(files["train"], _TINY_TRAIN_CHARS), encoding="utf-8")
    (folder / "validation.txt").write_text(_head_lines(files["validation"], _TINY_VALIDATION_CHARS), encoding="utf-8")
    return str(folder)


@pytest.fixture(scope="session")
def tiny_tokenizer_path(tmp_path_factory) -> str:
    """A saved byte-level BPE tokenizer (vocab 512, `<pad>` 0, `<s>` 1, `</s>` 2) trained on the bundled corpus."""
    from hf_textgen.data import bundled_corpus_files, train_tokenizer

    text = _head_lines(bundled_corpus_files()["train"], _TOKENIZER_TRAIN_CHARS)
    tokenizer = train_tokenizer(iter(text.splitlines(keepends=True)), "bpe", vocab_size=TINY_VOCAB_SIZE)
    folder = tmp_path_factory.mktemp("tiny_tokenizer")
    tokenizer.save_pretrained(str(folder))
    return str(folder)


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_tokenizer_path):
    """The tiny tokenizer, loaded once per session with `AutoTokenizer` (do not mutate it)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_tokenizer_path)


@pytest.fixture
def one_torch_thread():
    """Run the test with one torch thread: tiny models on a shared CPU spend more on thread hand-offs than on the
    maths (about 10x slower with two threads on the 2-core CI machine)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
