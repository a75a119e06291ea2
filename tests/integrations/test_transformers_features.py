"""transformers features that already work on our models and must keep working: a batched text-generation
`pipeline` with left padding, `cache_implementation="static"`, and `torch.compile` of the forward and of a training
step without graph breaks (the README promises `fullgraph=True`)."""

import pytest
import torch
from transformers import AutoTokenizer, pipeline

from .families import tiny_model

_PROMPTS = ["To be", "or not to be, that is", "the question", "Whether 'tis nobler in the mind", "to suffer"]


@pytest.fixture(autouse=True)
def _single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("family", ["lstm", "transformer"])
def test_pipeline_batches_of_four_left_padded_equal_each_prompt_alone(family, tmp_path, tiny_tokenizer_path):
    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_path)
    tiny_model(family, tokenizer).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    generator = pipeline("text-generation", model=str(tmp_path))
    generator.tokenizer.padding_side = "left"
    kwargs = {"max_new_tokens": 6, "do_sample": False, "return_full_text": False}
    batched = generator(_PROMPTS, batch_size=4, **kwargs)  # a batch of four, then one of one
    alone = [generator(prompt, **kwargs) for prompt in _PROMPTS]
    assert [output[0]["generated_text"] for output in batched] == [output[0]["generated_text"] for output in alone]
    assert any(output[0]["generated_text"] for output in batched)


@pytest.mark.parametrize("family", ["lstm", "transformer"])
def test_static_cache_generates_as_the_dynamic_cache(family):
    model = tiny_model(family)
    input_ids = torch.randint(3, 99, (2, 5), generator=torch.Generator().manual_seed(0))
    kwargs = {"attention_mask": torch.ones_like(input_ids), "max_new_tokens": 8, "do_sample": False, "pad_token_id": 0}
    static = model.generate(input_ids, cache_implementation="static", **kwargs)
    assert torch.equal(static, model.generate(input_ids, **kwargs))


def test_torch_compile_traces_the_forward_and_a_training_step_in_one_graph():
    # `aot_eager` traces the forward and backward graphs as inductor would (graph breaks would fail under
    # `fullgraph=True`) without spending a minute compiling C++ for a model this small.
    model = tiny_model("transformer")
    input_ids = torch.randint(3, 99, (2, 9), generator=torch.Generator().manual_seed(0))
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    with torch.no_grad():
        torch.testing.assert_close(compiled(input_ids=input_ids).logits, model(input_ids=input_ids).logits)
    model.train()
    compiled(input_ids=input_ids, labels=input_ids).loss.backward()
    compiled_grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad()
    model(input_ids=input_ids, labels=input_ids).loss.backward()
    for name, parameter in model.named_parameters():
        torch.testing.assert_close(compiled_grads[name], parameter.grad, msg=name)
