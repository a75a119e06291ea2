"""PEFT's LoRA on every family, used as PEFT's own documentation shows: `get_peft_model`, train, `save_pretrained`,
`AutoPeftModelFor...` / `PeftModel.from_pretrained`, `merge_and_unload`.

Also the two places where our models read weights themselves and so must honour an adapter: the Transformer's fused
training loss (it reads the LM head's weight) and the RNN's one-token decode step (it reads the recurrent weights).
"""

import pytest
import torch
from peft import (
    AutoPeftModelForCausalLM,
    AutoPeftModelForSeq2SeqLM,
    LoraConfig,
    PeftModel,
    TaskType,
    get_peft_model,
)
from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

from .families import ALL_FAMILIES, lora_targets, tiny_model

_GENERATE = {"max_new_tokens": 6, "do_sample": False, "eos_token_id": None, "pad_token_id": 0}


@pytest.fixture(autouse=True)
def _single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _ids(batch_size: int = 4, length: int = 12, seed: int = 0) -> torch.LongTensor:
    # A repeated motif: learnable in a few steps, so a LoRA that trains lowers the loss.
    motif = torch.randint(3, 99, (batch_size, 4), generator=torch.Generator().manual_seed(seed))
    return motif.repeat(1, length // 4)


def _batch(family: str) -> dict:
    input_ids = _ids()
    if family == "seq2seq":
        return {"input_ids": input_ids, "labels": input_ids.flip(1)}
    return {"input_ids": input_ids, "labels": input_ids}


def _train(model, batch: dict, steps: int = 8) -> list[float]:
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-2)
    losses = []
    for _ in range(steps):
        loss = model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("family", ALL_FAMILIES)
def test_lora_trains_saves_reloads_and_merges(family, tmp_path):
    seq2seq = family == "seq2seq"
    auto_model, auto_peft = (
        (AutoModelForSeq2SeqLM, AutoPeftModelForSeq2SeqLM)
        if seq2seq
        else (AutoModelForCausalLM, AutoPeftModelForCausalLM)
    )
    tiny_model(family).save_pretrained(tmp_path / "base")
    base = auto_model.from_pretrained(tmp_path / "base")  # PEFT records this folder as the adapter's base model
    config = LoraConfig(
        task_type=TaskType.SEQ_2_SEQ_LM if seq2seq else TaskType.CAUSAL_LM,
        r=4,
        lora_alpha=8,
        lora_dropout=0.0,
        **lora_targets(family),
    )
    model = get_peft_model(base, config)
    trainable, total = model.get_nb_trainable_parameters()
    assert 0 < trainable < total / 4

    batch = _batch(family)
    frozen = {name: p.detach().clone() for name, p in model.named_parameters() if not p.requires_grad}
    losses = _train(model, batch)
    assert losses[-1] < 0.95 * losses[0], losses
    assert all(torch.equal(p, frozen[name]) for name, p in model.named_parameters() if not p.requires_grad)

    model.eval()
    with torch.no_grad():
        expected = model(**batch).logits
    model.save_pretrained(tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()

    for reloaded in (
        auto_peft.from_pretrained(tmp_path / "adapter"),
        PeftModel.from_pretrained(auto_model.from_pretrained(tmp_path / "base"), tmp_path / "adapter"),
    ):
        with torch.no_grad():
            torch.testing.assert_close(reloaded.eval()(**batch).logits, expected)

    merged = auto_peft.from_pretrained(tmp_path / "adapter").merge_and_unload()
    assert not isinstance(merged, PeftModel)
    merged.save_pretrained(tmp_path / "merged")
    with torch.no_grad():
        torch.testing.assert_close(auto_model.from_pretrained(tmp_path / "merged")(**batch).logits, expected)


@pytest.mark.parametrize("family", ["lstm", "gru", "rnn"])
def test_rnn_generates_with_the_adapter_unmerged_as_merged(family):
    base = tiny_model(family)
    input_ids = _ids(2, 8)
    with torch.no_grad():
        plain = base.generate(input_ids, output_logits=True, return_dict_in_generate=True, **_GENERATE)
    # `init_lora_weights=False`: a random (non-zero) update, so the adapter visibly changes the model.
    config = LoraConfig(r=4, init_lora_weights=False, **lora_targets(family))
    model = get_peft_model(base, config).eval()
    kwargs = {"attention_mask": torch.ones_like(input_ids), "output_logits": True, "return_dict_in_generate": True}
    unmerged = model.generate(input_ids=input_ids, **kwargs, **_GENERATE)
    merged = model.merge_and_unload().generate(input_ids=input_ids, **kwargs, **_GENERATE)
    assert not torch.allclose(unmerged.logits[0], plain.logits[0])  # the adapter is in use
    assert torch.equal(unmerged.sequences, merged.sequences)
    for step_unmerged, step_merged in zip(unmerged.logits, merged.logits):
        torch.testing.assert_close(step_unmerged, step_merged, atol=1e-5, rtol=1e-5)


def test_transformer_training_loss_with_lora_on_the_lm_head_equals_the_eval_loss():
    # Training mode takes the fused (chunked) loss, which must see the adapted head as eval mode does.
    model = get_peft_model(
        tiny_model("transformer"),
        LoraConfig(r=4, init_lora_weights=False, lora_dropout=0.0, target_modules=["lm_head", "qkv_proj"]),
    )
    batch = _batch("transformer")
    with torch.no_grad():
        eval_loss = model.eval()(**batch).loss
    train_loss = model.train()(**batch).loss
    torch.testing.assert_close(train_loss, eval_loss)
    train_loss.backward()
    head_grads = [p.grad for name, p in model.named_parameters() if "lm_head.lora_" in name]
    assert len(head_grads) == 2 and all(grad is not None and grad.abs().sum() > 0 for grad in head_grads)


def test_transformer_lora_on_the_lm_head_alone_trains():
    model = get_peft_model(tiny_model("transformer"), LoraConfig(r=4, lora_dropout=0.0, target_modules=["lm_head"]))
    losses = _train(model, _batch("transformer"), steps=10)
    assert losses[-1] < 0.9 * losses[0], losses


@pytest.mark.parametrize("family", ["lstm", "transformer"])
def test_lora_with_activation_checkpointing_gives_the_same_gradients(family):
    # TRL's default: checkpointing on. The RNN's adapted weights live in the checkpointed layer itself, so the
    # recomputation in backward must run with the adapter in place too.
    model = get_peft_model(tiny_model(family), LoraConfig(r=4, init_lora_weights=False, **lora_targets(family)))
    batch = _batch(family)
    gradients = []
    for checkpointing in (False, True):
        if checkpointing:
            model.gradient_checkpointing_enable()
        model.train().zero_grad()
        model(**batch).loss.backward()
        gradients.append({name: p.grad.clone() for name, p in model.named_parameters() if p.requires_grad})
    assert gradients[0] and all(grad.abs().sum() > 0 for grad in gradients[0].values())
    for name, grad in gradients[0].items():
        torch.testing.assert_close(gradients[1][name], grad, msg=name)
