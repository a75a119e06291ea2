"""A saved tokenizer needs no custom code: `AutoTokenizer` loads it where hf_textgen is not installed, without the
interactive "Do you wish to run the custom code?" prompt, and `tokenizer_config.json` says that no BOS/EOS is added.

A tokenizer folder alone (what `hf-textgen train-tokenizer` writes) loads with a bare `AutoTokenizer.from_pretrained`.
In a model folder, transformers' `AutoTokenizer` first loads the model's `config.json` (whose `auto_map` names our
configuration code) whatever the tokenizer files say, so there the call names `trust_remote_code` either way, as the
README shows; both answers load the same tokenizer without a prompt.
"""

import json
import subprocess
import sys
import textwrap

from hf_textgen.data import train_tokenizer
from hf_textgen.data.tokenizer_training import save_tokenizer

from .families import tiny_model

_CHILD = textwrap.dedent(
    """
    import json
    import sys

    sys.modules["hf_textgen"] = None  # not installed, as far as this process can tell
    from transformers import AutoTokenizer

    tokenizer_folder, model_folder, text = sys.argv[1:4]
    tokenizers = [
        AutoTokenizer.from_pretrained(tokenizer_folder),
        AutoTokenizer.from_pretrained(model_folder, trust_remote_code=True),
        AutoTokenizer.from_pretrained(model_folder, trust_remote_code=False),
    ]
    print(json.dumps([tokenizer(text)["input_ids"] for tokenizer in tokenizers]))
    """
)


def test_tokenizer_folders_load_without_hf_textgen_and_without_a_prompt(tmp_path, tiny_corpus_dir):
    with open(f"{tiny_corpus_dir}/train.txt", encoding="utf-8") as corpus:
        tokenizer = train_tokenizer(corpus, "bpe", vocab_size=400)
    save_tokenizer(tokenizer, tmp_path / "tokenizer")
    model_folder = tmp_path / "model"
    tiny_model("lstm", tokenizer).save_pretrained(model_folder)
    save_tokenizer(tokenizer, model_folder)
    for folder in (tmp_path / "tokenizer", model_folder):
        config = json.loads((folder / "tokenizer_config.json").read_text())
        assert (config["add_bos_token"], config["add_eos_token"]) == (False, False), config

    text = "To be, or not to be"
    (tmp_path / "child.py").write_text(_CHILD)
    result = subprocess.run(
        [sys.executable, "-I", str(tmp_path / "child.py"), str(tmp_path / "tokenizer"), str(model_folder), text],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,  # a prompt would read EOF here and print its question
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "custom code" not in result.stdout + result.stderr
    expected = tokenizer(text)["input_ids"]
    assert expected[0] != tokenizer.bos_token_id  # no BOS added, as the config says
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [expected, expected, expected]
