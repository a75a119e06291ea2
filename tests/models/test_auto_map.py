"""Every Auto class of every family loads every saved folder of that family through remote code alone.

transformers writes into `auto_map` only the Auto class of the class that saved the folder; the families name all
of theirs, so `AutoModel.from_pretrained(causal_lm_folder, trust_remote_code=True)` works where hf_textgen is not
installed (the first thing a user tries, and what vLLM's Transformers backend does).
"""

import json

import torch

from hf_textgen import (
    RNNForCausalLM,
    RNNForSequenceClassification,
    RNNModel,
    Seq2SeqTransformerForConditionalGeneration,
    Seq2SeqTransformerModel,
    TransformerForCausalLM,
    TransformerForSequenceClassification,
    TransformerModel,
)

from .common import run_remote_code_loads, save_with_expected_output
from .test_modeling_rnn import tiny_rnn_config
from .test_modeling_seq2seq import tiny_config as tiny_seq2seq_config
from .test_modeling_transformer import tiny_transformer_config

# family: (tiny config, {Auto class: the class it must build})
FAMILIES = {
    "rnn": (
        tiny_rnn_config,
        {
            "AutoConfig": "RNNConfig",
            "AutoModel": RNNModel,
            "AutoModelForCausalLM": RNNForCausalLM,
            "AutoModelForSequenceClassification": RNNForSequenceClassification,
        },
    ),
    "transformer": (
        tiny_transformer_config,
        {
            "AutoConfig": "TransformerConfig",
            "AutoModel": TransformerModel,
            "AutoModelForCausalLM": TransformerForCausalLM,
            "AutoModelForSequenceClassification": TransformerForSequenceClassification,
        },
    ),
    "seq2seq": (
        tiny_seq2seq_config,
        {
            "AutoConfig": "Seq2SeqTransformerConfig",
            "AutoModel": Seq2SeqTransformerModel,
            "AutoModelForSeq2SeqLM": Seq2SeqTransformerForConditionalGeneration,
        },
    ),
}


def _inputs(family: str) -> dict[str, torch.Tensor]:
    input_ids = torch.randint(3, 99, (2, 6), generator=torch.Generator().manual_seed(0))
    if family == "seq2seq":
        return {"input_ids": input_ids, "decoder_input_ids": input_ids[:, :4]}
    return {"input_ids": input_ids}


def test_every_auto_class_loads_every_saved_class_through_remote_code(tmp_path):
    torch.set_num_threads(1)
    entries, expected = [], []
    for family, (make_config, auto_classes) in FAMILIES.items():
        model_classes = [value for value in auto_classes.values() if not isinstance(value, str)]
        for saving_class in model_classes:
            torch.manual_seed(0)
            model = saving_class(make_config()).eval()
            folder, tensors = save_with_expected_output(model, _inputs(family), tmp_path, saving_class.__name__)
            auto_map = json.loads((tmp_path / saving_class.__name__ / "config.json").read_text())["auto_map"]
            assert set(auto_map) == set(auto_classes), (saving_class.__name__, auto_map)
            for auto_class, built in auto_classes.items():
                built_name = built if isinstance(built, str) else built.__name__
                # The class that saved the folder must come back with identical outputs; the others must be built.
                same = built is saving_class
                entries.append({"auto_class": auto_class, "folder": folder, "tensors": tensors if same else None})
                expected.append((saving_class.__name__, auto_class, built_name, same))

    reports = run_remote_code_loads(entries, tmp_path)
    for (saved_by, auto_class, built_name, same), report in zip(expected, reports):
        assert report["class"] == built_name, (saved_by, auto_class, report)
        if same:
            assert report["max_abs_diff"] == 0.0, (saved_by, auto_class, report)
