"""tokenize_and_group: EOS between documents, exact blocks, the datasets cache, streaming, sample limits."""

import os
from itertools import chain

import pytest
from transformers import AutoTokenizer

from hf_textgen.data import DataArguments, load_raw_datasets, tokenize_and_group, tokenize_datasets
from hf_textgen.errors import UserError

DOCUMENTS = [f"Speech {index}: the quality of mercy is not strained,\nit droppeth as the rain." for index in range(60)]
BLOCK_SIZE = 16


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "speeches.txt"
    path.write_text("\n\n".join(DOCUMENTS) + "\n", encoding="utf-8")
    return str(path)


def _expected_stream(tokenizer, documents) -> list[int]:
    ids = tokenizer(documents, add_special_tokens=False)["input_ids"]
    return list(chain.from_iterable(document + [tokenizer.eos_token_id] for document in ids))


def test_tokenize_datasets_appends_eos(tiny_tokenizer, text_file):
    raw = load_raw_datasets(DataArguments(train_file=[text_file], validation_split_percentage=10))
    tokenized = tokenize_datasets(raw, tiny_tokenizer)
    assert tokenized["train"].column_names == ["input_ids"]
    first = tokenized["train"][0]["input_ids"]
    assert first[-1] == tiny_tokenizer.eos_token_id
    assert tiny_tokenizer.decode(first[:-1]) == DOCUMENTS[6]
    plain = tokenize_datasets(raw, tiny_tokenizer, append_eos=False)
    assert plain["train"][0]["input_ids"] == first[:-1]


def test_packing_gives_exact_blocks_with_eos_between_documents(tiny_tokenizer, text_file):
    raw = load_raw_datasets(DataArguments(train_file=[text_file], validation_split_percentage=10))
    lm = tokenize_and_group(raw, tiny_tokenizer, BLOCK_SIZE)
    for split, documents in (("train", DOCUMENTS[6:]), ("validation", DOCUMENTS[:6])):
        dataset = lm[split]
        assert dataset.column_names == ["input_ids", "attention_mask", "labels"]
        assert all(len(ids) == BLOCK_SIZE for ids in dataset["input_ids"])
        assert dataset["labels"] == dataset["input_ids"]
        assert all(mask == [1] * BLOCK_SIZE for mask in dataset["attention_mask"])
        # The blocks are the documents' tokens, each followed by EOS, cut into block_size pieces; only the last
        # incomplete block is dropped.
        stream = _expected_stream(tiny_tokenizer, documents)
        packed = list(chain.from_iterable(dataset["input_ids"]))
        assert len(dataset) == len(stream) // BLOCK_SIZE
        assert packed == stream[: len(packed)]
        assert packed.count(tiny_tokenizer.eos_token_id) >= len(documents) - 1


def test_second_run_loads_from_the_cache(tiny_tokenizer_path, text_file):
    def run(overwrite_cache=False):
        args = DataArguments(train_file=[text_file], overwrite_cache=overwrite_cache)
        tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_path)  # a fresh object: the cache key is its content
        lm = tokenize_and_group(load_raw_datasets(args), tokenizer, BLOCK_SIZE, args)
        return {item["filename"]: os.stat(item["filename"]).st_mtime_ns for item in lm["train"].cache_files}

    first = run()
    assert first, "the packed dataset should live in a datasets cache file"
    cache_dir = os.path.dirname(next(iter(first)))
    files_before = sorted(os.listdir(cache_dir))
    # Same data, tokenizer and block size: the cached result is loaded, nothing is written again.
    assert run() == first
    assert sorted(os.listdir(cache_dir)) == files_before
    # overwrite_cache recomputes (and so rewrites) the same files.
    rewritten = run(overwrite_cache=True)
    assert set(rewritten) == set(first)
    assert all(rewritten[name] > first[name] for name in first)


def test_streaming_packs_the_same_blocks(tiny_tokenizer, text_file):
    args = {"train_file": [text_file], "validation_file": text_file}
    in_memory = tokenize_and_group(load_raw_datasets(DataArguments(**args)), tiny_tokenizer, BLOCK_SIZE)
    streamed = tokenize_and_group(load_raw_datasets(DataArguments(**args, streaming=True)), tiny_tokenizer, BLOCK_SIZE)
    blocks = [row["input_ids"] for row in streamed["validation"]]
    assert blocks == in_memory["validation"]["input_ids"]
    assert sum(1 for _ in streamed["train"]) == len(in_memory["train"])


def test_sample_limits_and_default_block_size(tiny_tokenizer, text_file):
    args = DataArguments(train_file=[text_file], max_train_samples=3, max_eval_samples=2, block_size=8)
    lm = tokenize_and_group(load_raw_datasets(args), tiny_tokenizer, data_args=args)
    assert (len(lm["train"]), len(lm["validation"])) == (3, 2)
    assert len(lm["train"][0]["input_ids"]) == 8
    streamed = tokenize_and_group(
        load_raw_datasets(DataArguments(train_file=[text_file], streaming=True, max_train_samples=3)),
        tiny_tokenizer,
        8,
        DataArguments(max_train_samples=3),
    )
    assert sum(1 for _ in streamed["train"]) == 3
    # No block size anywhere: the tokenizer's model_max_length, capped at 1024 (too long for this text).
    with pytest.raises(UserError, match="shorter than one block of 1024 tokens"):
        tokenize_and_group(load_raw_datasets(DataArguments(train_file=[text_file])), tiny_tokenizer)


def test_tokenizer_without_eos_is_refused(tiny_tokenizer_path, text_file):
    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_path)
    tokenizer.eos_token = None
    raw = load_raw_datasets(DataArguments(train_file=[text_file]))
    with pytest.raises(UserError, match="no eos_token"):
        tokenize_and_group(raw, tokenizer, BLOCK_SIZE)


@pytest.mark.slow
def test_worker_processes(tiny_tokenizer, text_file):
    args = DataArguments(train_file=[text_file], preprocessing_num_workers=2)
    raw = load_raw_datasets(args)
    parallel = tokenize_datasets(raw, tiny_tokenizer, args)
    assert parallel["train"]["input_ids"] == tokenize_datasets(raw, tiny_tokenizer)["train"]["input_ids"]
    # Each worker packs its own shard (dropping its own remainder), so only the block shape is the same.
    lm = tokenize_and_group(raw, tiny_tokenizer, BLOCK_SIZE, args)
    assert len(lm["train"]) > 0
    assert all(len(ids) == BLOCK_SIZE for ids in lm["train"]["input_ids"])


@pytest.mark.parametrize("streaming", [False, True])
def test_blocks_split_when_documents_cannot(tiny_tokenizer, tmp_path, streaming):
    # One document of exactly three blocks (with its EOS): a split by documents would leave one side empty.
    path = tmp_path / "one.txt"
    words = "mercy droppeth as the gentle rain from heaven upon the place beneath "
    path.write_text(words * 8, encoding="utf-8")
    args = DataArguments(train_file=[str(path)], streaming=streaming, validation_split_percentage=5)
    raw = load_raw_datasets(args, split_validation=False)
    assert list(raw) == ["train"]
    stream = _expected_stream(tiny_tokenizer, [words * 8])
    lm = tokenize_and_group(raw, tiny_tokenizer, BLOCK_SIZE, args)
    train, validation = list(lm["train"]), list(lm["validation"])
    assert len(validation) == 1 and len(train) == len(stream) // BLOCK_SIZE - 1 >= 1
    assert validation[0]["input_ids"] == stream[:BLOCK_SIZE]  # the first block, deterministically
    assert train[0]["input_ids"] == stream[BLOCK_SIZE : 2 * BLOCK_SIZE]


@pytest.mark.parametrize("streaming", [False, True])
def test_too_few_blocks_to_split_is_one_clear_error(tiny_tokenizer, tmp_path, streaming):
    path = tmp_path / "short.txt"
    path.write_text("mercy droppeth as the gentle rain\n", encoding="utf-8")
    args = DataArguments(train_file=[str(path)], streaming=streaming)
    block_size = len(_expected_stream(tiny_tokenizer, ["mercy droppeth as the gentle rain"]))  # exactly one block
    message = "fewer than 2 blocks" if streaming else r"makes 1 block\(s\)"
    with pytest.raises(UserError, match=rf"{message} of {block_size} tokens.*--validation_file"):
        tokenize_and_group(load_raw_datasets(args, split_validation=False), tiny_tokenizer, block_size, args)


def test_short_validation_stream_is_found_before_training(tiny_tokenizer, text_file, tmp_path):
    tiny = tmp_path / "tiny.txt"
    tiny.write_text("mercy\n", encoding="utf-8")
    args = DataArguments(train_file=[text_file], validation_file=str(tiny), streaming=True)
    with pytest.raises(UserError, match="validation text is shorter than one block of 16 tokens"):
        tokenize_and_group(load_raw_datasets(args), tiny_tokenizer, BLOCK_SIZE, args)
