"""The common test suites every hf_textgen family runs: `CausalLMModelTestMixin` and `Seq2SeqLMModelTestMixin`.

How a family plugs in (see `test_modeling_rnn.py`): in `tests/models/test_modeling_<family>.py`,

    from .common import CausalLMModelTestMixin

    class TestMyFamily(CausalLMModelTestMixin):
        config_class = MyConfig
        base_model_class = MyModel
        causal_lm_class = MyForCausalLM
        sequence_classification_class = MyForSequenceClassification  # or None: those tests are skipped

        def get_config(self, **overrides):
            return MyConfig(**{"vocab_size": 99, "hidden_size": 32, "num_hidden_layers": 2, **overrides})

`get_config` returns a TINY config (vocabulary of at least 99 tokens, room for 64 positions, `pad_token_id` 0,
`bos_token_id` 1, `eos_token_id` 2 like the conftest tokenizer) and must accept any config field as an override
(the pipeline test passes `vocab_size` and the special-token ids of the conftest `tiny_tokenizer`). Every test
builds its models with `make_model`, seeded, in eval mode. A family test file subclasses the mixin once per
variant (e.g. per cell type) and adds only what differs.

An encoder-decoder family plugs into `Seq2SeqLMModelTestMixin` the same way (see `test_modeling_seq2seq.py`):
`config_class`, `base_model_class`, `seq2seq_lm_class` and a tiny `get_config`.
"""

import json
import math
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from hidden_hf_textgen import HIDE_HF_TEXTGEN
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoModelForSequenceClassification,
    DataCollatorForSeq2Seq,
    pipeline,
)
from transformers.generation.streamers import BaseStreamer

import hf_textgen  # noqa: F401  (registers the Auto classes)

# The subprocess for the remote-code tests: hf_textgen is made unimportable before transformers loads the saved
# folders, and the test fails if it still imports, so only the code saved next to the weights can be running. Each
# entry of the JSON manifest names an Auto class, a saved folder, and a safetensors file with the model's inputs and
# the expected first output (logits or last hidden state), or no file when only the loaded class is checked.
_REMOTE_CODE_SCRIPT = HIDE_HF_TEXTGEN + textwrap.dedent(
    """\
    try:
        import hf_textgen  # noqa: F401
    except ModuleNotFoundError:
        pass
    else:
        sys.exit("hf_textgen is still importable")

    import torch
    import transformers
    from safetensors.torch import load_file

    torch.set_num_threads(int(sys.argv[1]))  # as in the parent, so the float reductions run in the same order
    with open(sys.argv[2]) as manifest:
        entries = json.load(manifest)
    reports = []
    for entry in entries:
        loaded = getattr(transformers, entry["auto_class"]).from_pretrained(entry["folder"], trust_remote_code=True)
        report = {"class": type(loaded).__name__, "module": type(loaded).__module__, "max_abs_diff": None}
        if entry["tensors"] is not None:
            inputs = load_file(entry["tensors"])
            expected = inputs.pop("expected")
            with torch.no_grad():
                report["max_abs_diff"] = (loaded.eval()(**inputs)[0] - expected).abs().max().item()
        reports.append(report)
    reports.append({"hf_textgen_loaded": any(name.split(".")[0] == "hf_textgen" for name in sys.modules)})
    print(json.dumps(reports))
    """
)


def run_remote_code_loads(entries: list[dict], folder) -> list[dict]:
    """Load every entry (`auto_class`, `folder`, `tensors` as described above `_REMOTE_CODE_SCRIPT`) in ONE fresh
    Python process that cannot import hf_textgen, with `trust_remote_code=True`; return one report per entry
    (`class`, `module`, `max_abs_diff`). One process for all because starting Python with torch costs seconds."""
    manifest, script = folder / "remote_code_manifest.json", folder / "load_remote.py"
    manifest.write_text(json.dumps(entries))
    script.write_text(_REMOTE_CODE_SCRIPT)
    # -I: no PYTHONPATH, no user site, no script folder on sys.path; the script also hides hf_textgen itself.
    result = subprocess.run(
        [sys.executable, "-I", str(script), str(torch.get_num_threads()), str(manifest)],
        capture_output=True,
        text=True,
        cwd=folder,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    *reports, imports = json.loads(result.stdout.strip().splitlines()[-1])
    assert not imports["hf_textgen_loaded"]
    assert len(reports) == len(entries)
    for report in reports:
        assert report["module"].startswith("transformers_modules"), report
    return reports


def save_with_expected_output(model, inputs: dict, folder, name: str) -> tuple[str, str]:
    """Save `model` to `folder/name` and its first output on `inputs` next to it; return both paths."""
    with torch.no_grad():
        expected = model(**inputs)[0]
    model_folder, tensors_file = folder / name, folder / f"{name}.safetensors"
    model.save_pretrained(model_folder)
    save_file(
        {name: tensor.contiguous() for name, tensor in {**inputs, "expected": expected}.items()}, str(tensors_file)
    )
    return str(model_folder), str(tensors_file)


def check_remote_code_loading(models_and_inputs: list[tuple], folder) -> None:
    """Save each `(model, inputs)` under `folder` and reload them all in ONE fresh Python process that cannot
    import hf_textgen, via `AutoModelForCausalLM` (or, for an encoder-decoder, `AutoModelForSeq2SeqLM`)
    `.from_pretrained(..., trust_remote_code=True)`; the logits must be identical. `inputs` is the `input_ids`
    tensor, or a dict of the forward's tensor arguments (e.g. with `decoder_input_ids`).
    """
    entries = []
    for index, (model, inputs) in enumerate(models_and_inputs):
        inputs = inputs if isinstance(inputs, dict) else {"input_ids": inputs}
        model_folder, tensors_file = save_with_expected_output(model, inputs, folder, f"model_{index}")
        auto_class = "AutoModelForSeq2SeqLM" if model.config.is_encoder_decoder else "AutoModelForCausalLM"
        entries.append({"auto_class": auto_class, "folder": model_folder, "tensors": tensors_file})
    for report in run_remote_code_loads(entries, folder):
        assert report["max_abs_diff"] == 0.0, report


# The loss-at-init test's (hidden_size, vocab_size) cells: tiny to wide, a character-sized to a GPT-2-sized
# vocabulary. Few on purpose: the 256 x 50257 cell alone builds a 13M-parameter embedding.
INIT_LOSS_SIZES = [(32, 97), (256, 50257), (1024, 97), (1024, 8192)]
# How far above or below ln(vocab_size) an untrained model's loss may start (issue #17).
INIT_LOSS_TOLERANCE = 0.15


def assert_loss_near_ln_vocab(loss: float, vocab_size: int, what: str) -> None:
    """An untrained LM should give every token about the same probability: its loss is then ~ln(vocab_size)."""
    expected = math.log(vocab_size)
    assert abs(loss - expected) < INIT_LOSS_TOLERANCE, f"{what}: loss at init {loss:.3f}, ln(vocab) {expected:.3f}"


def assert_every_parameter_has_a_gradient(model) -> None:
    """After a backward pass: every parameter got a finite, non-zero gradient."""
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, f"no gradient for {name}"
        assert torch.isfinite(parameter.grad).all(), f"non-finite gradient for {name}"
        assert parameter.grad.abs().sum() > 0, f"zero gradient for {name}"


def assert_config_and_base_model_resolve(config, config_class: type, base_model_class: type, folder) -> None:
    """`AutoConfig` (by model type and from a saved folder) and `AutoModel` give the family's classes."""
    assert isinstance(AutoConfig.for_model(config_class.model_type), config_class)
    config.save_pretrained(folder)
    assert type(AutoConfig.from_pretrained(folder)) is config_class
    assert type(AutoModel.from_config(config)) is base_model_class


def assert_auto_map_and_code(folder, classes: dict[str, type]) -> None:
    """The saved `config.json`'s `auto_map` names each `Auto class -> model class` of `classes`, and every module
    it points to was saved next to it as a `.py` file."""
    auto_map = json.loads((folder / "config.json").read_text())["auto_map"]
    for auto_class, model_class in classes.items():
        assert auto_map[auto_class].endswith(model_class.__name__)
    for module_name in {value.split(".")[0] for value in auto_map.values()}:
        assert (folder / f"{module_name}.py").is_file()


def beam_search_cached_and_uncached(generate, model, input_ids, num_return_sequences: int, atol: float):
    """Beam search (3 beams, 7 new tokens) with and without the cache: the same sequences, the same scores within
    `atol`. `generate` is the mixin's non-stopping `generate`; returns the cached run's output."""
    kwargs = {
        "num_beams": 3,
        "num_return_sequences": num_return_sequences,
        "max_new_tokens": 7,
        "return_dict_in_generate": True,
        "output_scores": True,
    }
    cached = generate(model, input_ids, use_cache=True, **kwargs)
    uncached = generate(model, input_ids, use_cache=False, **kwargs)
    assert torch.equal(cached.sequences, uncached.sequences)
    torch.testing.assert_close(cached.sequences_scores, uncached.sequences_scores, atol=atol, rtol=1e-4)
    return cached


def seeded_sample_is_reproducible(generate, model, input_ids, sampling: dict) -> torch.LongTensor:
    """Sampling with `sampling` under one seed gives the same tokens twice, and without the cache (same seed, same
    distribution: the cache must not change what is sampled); returns those tokens."""

    def sample(**kwargs):
        torch.manual_seed(1234)
        return generate(model, input_ids, do_sample=True, max_new_tokens=10, **sampling, **kwargs)

    first = sample()
    assert torch.equal(first, sample())
    assert torch.equal(first, sample(use_cache=False))
    return first


class _CollectingStreamer(BaseStreamer):
    """Records every `put` so the test can compare what was streamed with what `generate` returned."""

    def __init__(self):
        self.chunks: list[torch.Tensor] = []
        self.ended = False

    def put(self, value: torch.Tensor) -> None:
        self.chunks.append(value.detach().clone())

    def end(self) -> None:
        self.ended = True


@pytest.mark.usefixtures("one_torch_thread")
class CausalLMModelTestMixin:
    """Tests shared by every causal-LM family; subclasses set the class attributes and `get_config`."""

    config_class: type | None = None
    base_model_class: type | None = None
    causal_lm_class: type | None = None
    sequence_classification_class: type | None = None

    # Tolerance for "the same computation, batched or cached differently" (float32 on CPU).
    atol = 1e-5
    # A family with several variants may check their remote-code loads in one process (`check_remote_code_loading`)
    # and set this to False on the variant classes.
    run_remote_code_test = True

    def get_config(self, **overrides):
        """A tiny config of the family, with `overrides` applied."""
        raise NotImplementedError("subclasses return their tiny config here")

    # ----------------------------------------------------------------------------------------------------- helpers
    def make_model(self, model_class=None, seed: int = 0, **overrides):
        """A seeded model of `model_class` (default: the causal LM) on the tiny config, in eval mode."""
        torch.manual_seed(seed)
        return (model_class or self.causal_lm_class)(self.get_config(**overrides)).eval()

    def random_ids(self, config, batch_size: int, length: int, seed: int = 0) -> torch.LongTensor:
        """Token ids above every special token id, so no prompt token is padding / BOS / EOS."""
        special = [config.pad_token_id, config.bos_token_id, config.eos_token_id]
        low = max([-1, *[token for token in special if isinstance(token, int)]]) + 1
        generator = torch.Generator().manual_seed(seed)
        return torch.randint(low, config.vocab_size, (batch_size, length), generator=generator)

    @staticmethod
    def pad_id(config) -> int:
        return config.pad_token_id if config.pad_token_id is not None else 0

    def generate(self, model, input_ids, attention_mask=None, **kwargs) -> torch.LongTensor:
        """`model.generate` that never stops early on EOS, so outputs can be compared token by token."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        kwargs.setdefault("do_sample", False)
        kwargs.setdefault("max_new_tokens", 6)
        return model.generate(
            input_ids,
            attention_mask=attention_mask,
            eos_token_id=None,
            pad_token_id=self.pad_id(model.config),
            **kwargs,
        )

    @staticmethod
    def recompute_greedy(model, input_ids, steps: int, repetition_penalty: float | None = None) -> torch.LongTensor:
        """Greedy decoding that runs the whole prefix again at every step (no cache): the reference."""
        sequences = input_ids
        for _ in range(steps):
            with torch.no_grad():
                logits = model(input_ids=sequences, use_cache=False).logits[:, -1, :].float()  # (B, V)
            if repetition_penalty is not None:
                seen = logits.gather(1, sequences)
                seen = torch.where(seen < 0, seen * repetition_penalty, seen / repetition_penalty)
                logits = logits.scatter(1, sequences, seen)
            sequences = torch.cat([sequences, logits.argmax(dim=-1, keepdim=True)], dim=1)
        return sequences

    # ------------------------------------------------------------------------------------------- forward, loss
    def test_forward_shapes_and_hidden_states(self):
        model = self.make_model()
        config = model.config
        input_ids = self.random_ids(config, 2, 7)
        with torch.no_grad():
            outputs = model(input_ids=input_ids, output_hidden_states=True)
        assert outputs.logits.shape == (2, 7, config.vocab_size)
        assert len(outputs.hidden_states) == config.num_hidden_layers + 1
        assert all(state.shape[:2] == (2, 7) for state in outputs.hidden_states)

    def test_loss_is_shifted_cross_entropy(self):
        model = self.make_model()
        input_ids = self.random_ids(model.config, 2, 9)
        labels = input_ids.clone()
        labels[0, :3] = -100
        with torch.no_grad():
            outputs = model(input_ids=input_ids, labels=labels)
        expected = torch.nn.functional.cross_entropy(
            outputs.logits[:, :-1].reshape(-1, model.config.vocab_size).float(),
            labels[:, 1:].reshape(-1),
            ignore_index=-100,
        )
        torch.testing.assert_close(outputs.loss, expected)

    def test_return_dict_false_returns_the_same_values_as_a_tuple(self):
        # transformers' convention (`can_return_tuple`): the output's non-None fields in order, loss first.
        model = self.make_model()
        input_ids = self.random_ids(model.config, 2, 6)
        with torch.no_grad():
            outputs = model(input_ids=input_ids, labels=input_ids, use_cache=True)
            as_tuple = model(input_ids=input_ids, labels=input_ids, use_cache=True, return_dict=False)
        assert isinstance(as_tuple, tuple) and len(as_tuple) == len(outputs.to_tuple())
        assert torch.equal(as_tuple[0], outputs.loss) and torch.equal(as_tuple[1], outputs.logits)
        with torch.no_grad():
            base = self.make_model(self.base_model_class)
            base_tuple = base(input_ids=input_ids, return_dict=False)
            base_outputs = base(input_ids=input_ids)
        assert isinstance(base_tuple, tuple)
        assert torch.equal(base_tuple[0], base_outputs.last_hidden_state)

    def test_cache_continuation_matches_full_forward(self):
        model = self.make_model()
        input_ids = self.random_ids(model.config, 2, 10)
        with torch.no_grad():
            full = model(input_ids=input_ids, use_cache=False).logits
            first = model(input_ids=input_ids[:, :6], use_cache=True)
            rest = model(input_ids=input_ids[:, 6:], cache=first.cache, use_cache=True).logits
        torch.testing.assert_close(torch.cat([first.logits, rest], dim=1), full, atol=self.atol, rtol=1e-4)

    def test_few_optimizer_steps_lower_the_loss(self):
        model = self.make_model().train()
        # Periodic rows (a 4-token motif repeated) are learnable in a few steps, unlike uniform noise.
        input_ids = self.random_ids(model.config, 4, 4).repeat(1, 4)  # (4, 16)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
        losses = []
        for _ in range(15):
            loss = model(input_ids=input_ids, labels=input_ids).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        assert losses[-1] < 0.75 * losses[0], losses

    @pytest.mark.parametrize("tied", [True, False])
    @pytest.mark.parametrize(("hidden_size", "vocab_size"), INIT_LOSS_SIZES)
    def test_loss_at_init_is_near_ln_vocab(self, hidden_size, vocab_size, tied):
        model = self.make_model(hidden_size=hidden_size, vocab_size=vocab_size, tie_word_embeddings=tied)
        input_ids = self.random_ids(model.config, 4, 32)
        with torch.no_grad():
            loss = model(input_ids=input_ids, labels=input_ids).loss.item()
        assert_loss_near_ln_vocab(loss, vocab_size, f"width {hidden_size}, tied={tied}")

    def get_default_config(self, **overrides):
        """The family's default config (its real default size), with `overrides` applied."""
        return self.config_class(**overrides)

    def test_loss_at_init_of_the_default_size_is_near_ln_vocab(self):
        torch.manual_seed(0)
        model = self.causal_lm_class(self.get_default_config(vocab_size=8192)).eval()
        input_ids = self.random_ids(model.config, 4, 64)
        with torch.no_grad():
            loss = model(input_ids=input_ids, labels=input_ids).loss.item()
        assert_loss_near_ln_vocab(loss, 8192, "default size")

    def test_gradients_reach_every_parameter(self):
        model = self.make_model().train()
        input_ids = self.random_ids(model.config, 2, 8)
        model(input_ids=input_ids, labels=input_ids).loss.backward()
        assert_every_parameter_has_a_gradient(model)

    # --------------------------------------------------------------------------------- saving, Auto, remote code
    def test_save_load_identical_logits_safetensors_only(self, tmp_path):
        model = self.make_model()
        input_ids = self.random_ids(model.config, 2, 7)
        model.save_pretrained(tmp_path)
        files = os.listdir(tmp_path)
        assert "model.safetensors" in files
        assert not [name for name in files if name.endswith((".bin", ".pt", ".pth", ".pkl", ".ckpt"))], files
        assert json.loads((tmp_path / "config.json").read_text())["model_type"] == self.config_class.model_type
        for loader in (self.causal_lm_class, AutoModelForCausalLM):
            reloaded = loader.from_pretrained(tmp_path).eval()
            assert type(reloaded) is self.causal_lm_class
            with torch.no_grad():
                assert torch.equal(reloaded(input_ids=input_ids).logits, model(input_ids=input_ids).logits)

    def test_auto_classes_resolve_to_the_family(self, tmp_path):
        config = self.get_config()
        assert_config_and_base_model_resolve(config, self.config_class, self.base_model_class, tmp_path)
        assert type(AutoModelForCausalLM.from_config(config)) is self.causal_lm_class
        if self.sequence_classification_class is not None:
            model = AutoModelForSequenceClassification.from_config(config)
            assert type(model) is self.sequence_classification_class

    def test_save_writes_auto_map_and_code(self, tmp_path):
        self.make_model().save_pretrained(tmp_path)
        assert_auto_map_and_code(
            tmp_path, {"AutoConfig": self.config_class, "AutoModelForCausalLM": self.causal_lm_class}
        )

    def test_remote_code_load_in_a_process_without_hf_textgen(self, tmp_path):
        if not self.run_remote_code_test:
            pytest.skip("this variant's remote-code load is checked together with its siblings in one process")
        model = self.make_model()
        check_remote_code_loading([(model, self.random_ids(model.config, 2, 7))], tmp_path)

    # ------------------------------------------------------------------------------------------------ generation
    def test_greedy_with_cache_equals_full_recompute(self):
        model = self.make_model()
        input_ids = self.random_ids(model.config, 2, 5)
        generated = self.generate(model, input_ids, max_new_tokens=8)
        assert torch.equal(generated, self.recompute_greedy(model, input_ids, 8))

    def test_generate_from_inputs_embeds_equals_from_ids(self):
        model = self.make_model()
        input_ids = self.random_ids(model.config, 2, 5)
        from_ids = self.generate(model, input_ids, max_new_tokens=5)
        with torch.no_grad():
            inputs_embeds = model.get_input_embeddings()(input_ids)
        from_embeds = model.generate(
            inputs_embeds=inputs_embeds,
            attention_mask=torch.ones_like(input_ids),
            max_new_tokens=5,
            do_sample=False,
            eos_token_id=None,
            pad_token_id=self.pad_id(model.config),
        )
        assert torch.equal(from_embeds, from_ids[:, 5:])  # only the new tokens come back

    def test_greedy_without_cache_equals_with_cache(self):
        model = self.make_model()
        input_ids = self.random_ids(model.config, 2, 5)
        cached = self.generate(model, input_ids, max_new_tokens=8)
        assert torch.equal(cached, self.generate(model, input_ids, max_new_tokens=8, use_cache=False))

    @pytest.mark.parametrize("num_return_sequences", [1, 2])
    def test_beam_search_cached_equals_uncached(self, num_return_sequences):
        model = self.make_model()
        input_ids = self.random_ids(model.config, 2, 5)
        cached = beam_search_cached_and_uncached(self.generate, model, input_ids, num_return_sequences, self.atol)
        assert cached.sequences.shape == (2 * num_return_sequences, 5 + 7)

    @pytest.mark.parametrize(
        "sampling",
        [{"temperature": 0.7}, {"top_k": 5}, {"top_p": 0.8}, {"temperature": 1.3, "top_k": 20, "top_p": 0.95}],
        ids=["temperature", "top_k", "top_p", "combined"],
    )
    def test_seeded_sampling_is_reproducible(self, sampling):
        model = self.make_model()
        seeded_sample_is_reproducible(self.generate, model, self.random_ids(model.config, 2, 5), sampling)

    def test_sampling_differs_across_seeds(self):
        model = self.make_model()
        input_ids = self.random_ids(model.config, 4, 3)
        outputs = []
        for seed in (1, 2):
            torch.manual_seed(seed)
            outputs.append(self.generate(model, input_ids, do_sample=True, max_new_tokens=12, temperature=1.5))
        assert not torch.equal(*outputs)

    def test_repetition_penalty_matches_reference(self):
        model = self.make_model()
        input_ids = self.random_ids(model.config, 2, 5)
        generated = self.generate(model, input_ids, max_new_tokens=8, repetition_penalty=1.8)
        assert torch.equal(generated, self.recompute_greedy(model, input_ids, 8, repetition_penalty=1.8))

    def test_streamer_receives_every_generated_token(self):
        model = self.make_model()
        input_ids = self.random_ids(model.config, 1, 5)
        streamer = _CollectingStreamer()
        generated = self.generate(model, input_ids, max_new_tokens=6, streamer=streamer)
        assert streamer.ended
        assert torch.equal(streamer.chunks[0].view(-1), input_ids.view(-1))  # the prompt comes first
        streamed = torch.cat([chunk.view(-1) for chunk in streamer.chunks[1:]])
        assert torch.equal(streamed, generated[0, 5:])

    def test_num_return_sequences_with_sampling(self):
        model = self.make_model()
        input_ids = self.random_ids(model.config, 2, 4)
        torch.manual_seed(0)
        generated = self.generate(
            model, input_ids, do_sample=True, num_return_sequences=3, max_new_tokens=5, temperature=2.0
        )
        assert generated.shape == (6, 4 + 5)
        # Rows come grouped by prompt: three continuations of prompt 0, then three of prompt 1.
        assert torch.equal(generated[:3, :4], input_ids[:1].expand(3, -1))
        assert torch.equal(generated[3:, :4], input_ids[1:].expand(3, -1))

    def test_left_padded_batch_equals_rows_alone(self):
        model = self.make_model()
        config = model.config
        lengths = [3, 7, 5]
        rows = [self.random_ids(config, 1, length, seed=index) for index, length in enumerate(lengths)]
        longest = max(lengths)
        input_ids = torch.full((len(rows), longest), self.pad_id(config), dtype=torch.long)
        attention_mask = torch.zeros_like(input_ids)
        for index, row in enumerate(rows):
            input_ids[index, longest - row.shape[1] :] = row[0]
            attention_mask[index, longest - row.shape[1] :] = 1

        with torch.no_grad():
            batch_logits = model(input_ids=input_ids, attention_mask=attention_mask).logits[:, -1]
        batched = self.generate(model, input_ids, attention_mask=attention_mask, max_new_tokens=8)
        for index, row in enumerate(rows):
            with torch.no_grad():
                alone_logits = model(input_ids=row).logits[:, -1]
            torch.testing.assert_close(batch_logits[index : index + 1], alone_logits, atol=self.atol, rtol=1e-4)
            alone = self.generate(model, row, max_new_tokens=8)
            assert torch.equal(batched[index, longest:], alone[0, row.shape[1] :]), f"row {index}"

    def test_pipeline_text_generation(self, tmp_path, tiny_tokenizer):
        tokenizer = tiny_tokenizer
        model = self.make_model(
            vocab_size=len(tokenizer),
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        model.save_pretrained(tmp_path)
        tokenizer.save_pretrained(tmp_path)
        generator = pipeline("text-generation", model=str(tmp_path))
        assert type(generator.model) is self.causal_lm_class
        prompt = "To be, or not to be"
        text = generator(prompt, max_new_tokens=5, do_sample=False)[0]["generated_text"]
        encoded = tokenizer(prompt, return_tensors="pt")
        expected_ids = model.generate(**encoded, max_new_tokens=5, do_sample=False)
        assert text.startswith(prompt)
        assert text == tokenizer.decode(expected_ids[0], skip_special_tokens=True)

    # ---------------------------------------------------------------------------------------- classification head
    def _classifier(self, num_labels: int = 3, **overrides):
        if self.sequence_classification_class is None:
            pytest.skip("this family has no sequence-classification head")
        return self.make_model(self.sequence_classification_class, num_labels=num_labels, **overrides)

    def test_classification_shape_and_loss(self):
        model = self._classifier()
        input_ids = self.random_ids(model.config, 4, 6)
        labels = torch.tensor([0, 2, 1, 0])
        outputs = model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), labels=labels)
        assert outputs.logits.shape == (4, 3)
        expected = torch.nn.functional.cross_entropy(outputs.logits, labels)
        torch.testing.assert_close(outputs.loss, expected)
        outputs.loss.backward()
        assert all(parameter.grad is not None for parameter in model.parameters())

    @pytest.mark.parametrize("classifier_pooling", ["last", "mean"])
    @pytest.mark.parametrize("padding_side", ["left", "right"])
    def test_classification_pooling_ignores_padding(self, padding_side, classifier_pooling):
        model = self._classifier(classifier_pooling=classifier_pooling)
        config = model.config
        rows = [self.random_ids(config, 1, length, seed=length) for length in (4, 7)]
        input_ids = torch.full((2, 7), self.pad_id(config), dtype=torch.long)
        attention_mask = torch.zeros_like(input_ids)
        for index, row in enumerate(rows):
            span = slice(7 - row.shape[1], 7) if padding_side == "left" else slice(0, row.shape[1])
            input_ids[index, span] = row[0]
            attention_mask[index, span] = 1
        with torch.no_grad():
            batched = model(input_ids=input_ids, attention_mask=attention_mask).logits
            for index, row in enumerate(rows):
                alone = model(input_ids=row, attention_mask=torch.ones_like(row)).logits
                torch.testing.assert_close(batched[index : index + 1], alone, atol=self.atol, rtol=1e-4)

    def test_classification_mean_pooling_averages_the_real_tokens(self):
        model = self._classifier(classifier_pooling="mean")
        input_ids = self.random_ids(model.config, 2, 6)
        attention_mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2])
        with torch.no_grad():
            logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
            hidden = model.base_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        expected = torch.stack([hidden[0].mean(0), hidden[1, :4].mean(0)]) @ model.score.weight.T
        if model.score.bias is not None:
            expected = expected + model.score.bias
        torch.testing.assert_close(logits, expected, atol=self.atol, rtol=1e-4)
        with pytest.raises(ValueError, match="classifier_pooling"):
            type(model.config)(**{**model.config.to_dict(), "classifier_pooling": "max"})

    def test_classification_save_load(self, tmp_path):
        model = self._classifier(num_labels=2)
        input_ids = self.random_ids(model.config, 2, 5)
        model.save_pretrained(tmp_path)
        reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
        assert type(reloaded) is self.sequence_classification_class
        with torch.no_grad():
            assert torch.equal(reloaded(input_ids=input_ids).logits, model(input_ids=input_ids).logits)


@pytest.mark.usefixtures("one_torch_thread")
class Seq2SeqLMModelTestMixin:
    """Tests shared by every encoder-decoder family; subclasses set the class attributes and `get_config`.

    `get_config` returns a TINY config (vocabulary of at least 99 tokens, room for 64 positions, dropout 0, `pad`
    0, `bos` = `decoder_start` 1, `eos` 2) and accepts any config field as an override.

    Generation tests run on `make_generation_model`: the tiny model with its output layer untied and its matrices
    re-drawn large. A freshly initialised encoder-decoder barely listens to its source and greedily repeats one
    token, which would make "cached == uncached" and "padded == unpadded" pass for the wrong reason; the re-drawn
    model's outputs vary per step and depend on the source (`test_generation_fixture_is_not_degenerate`).
    """

    config_class: type | None = None
    base_model_class: type | None = None
    seq2seq_lm_class: type | None = None

    # Tolerance for "the same computation, batched or cached differently" (float32 on CPU).
    atol = 1e-5

    def get_config(self, **overrides):
        """A tiny config of the family, with `overrides` applied."""
        raise NotImplementedError("subclasses return their tiny config here")

    # ----------------------------------------------------------------------------------------------------- helpers
    def make_model(self, model_class=None, seed: int = 0, **overrides):
        """A seeded model of `model_class` (default: the conditional-generation model) in eval mode."""
        torch.manual_seed(seed)
        return (model_class or self.seq2seq_lm_class)(self.get_config(**overrides)).eval()

    def make_generation_model(self, seed: int = 0, **overrides):
        """An untied model with large random matrices, whose greedy outputs vary and depend on the source."""
        model = self.make_model(seed=seed, tie_word_embeddings=False, **overrides)
        generator = torch.Generator().manual_seed(seed)
        input_embeddings = model.get_input_embeddings().weight
        with torch.no_grad():
            for parameter in model.parameters():
                if parameter.dim() != 2:  # biases and norms keep their init: a large bias swamps every position
                    continue
                std = 0.3 if parameter is input_embeddings else 1.5 / parameter.shape[1] ** 0.5
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * std)
        return model

    def random_ids(self, batch_size: int, length: int, seed: int = 0) -> torch.LongTensor:
        """Ids above the special tokens (pad 0, bos 1, eos 2), so no source token is padding."""
        generator = torch.Generator().manual_seed(seed)
        return torch.randint(3, self.get_config().vocab_size, (batch_size, length), generator=generator)

    @staticmethod
    def generate(model, input_ids, attention_mask=None, **kwargs) -> torch.LongTensor:
        """`generate` that never stops early on EOS, so outputs compare token by token."""
        kwargs.setdefault("do_sample", False)
        kwargs.setdefault("max_new_tokens", 8)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        return model.generate(input_ids, attention_mask=attention_mask, eos_token_id=None, **kwargs)

    @staticmethod
    def padded_batch(rows: list[torch.LongTensor], side: str) -> tuple[torch.LongTensor, torch.LongTensor]:
        """`rows` (each `(1, length)`) padded with 0 on `side` into `(input_ids, attention_mask)`."""
        longest = max(row.shape[1] for row in rows)
        input_ids = torch.zeros(len(rows), longest, dtype=torch.long)
        attention_mask = torch.zeros_like(input_ids)
        for index, row in enumerate(rows):
            span = slice(0, row.shape[1]) if side == "right" else slice(longest - row.shape[1], longest)
            input_ids[index, span] = row[0]
            attention_mask[index, span] = 1
        return input_ids, attention_mask

    # ------------------------------------------------------------------------------------------- forward, loss
    def test_forward_shapes_and_hidden_states(self):
        model = self.make_model()
        config = model.config
        source, target = self.random_ids(2, 7), self.random_ids(2, 5, seed=1)
        with torch.no_grad():
            outputs = model(input_ids=source, decoder_input_ids=target, output_hidden_states=True)
            base = self.make_model(self.base_model_class)(input_ids=source, decoder_input_ids=target)
        assert outputs.logits.shape == (2, 5, config.vocab_size)
        assert outputs.encoder_last_hidden_state.shape == (2, 7, config.hidden_size)
        assert len(outputs.encoder_hidden_states) == config.encoder_layers + 1
        assert len(outputs.decoder_hidden_states) == config.decoder_layers + 1
        assert base.last_hidden_state.shape == (2, 5, config.hidden_size)

    def test_loss_is_cross_entropy_on_labels_with_shifted_decoder_inputs(self):
        model = self.make_model()
        config = model.config
        source, labels = self.random_ids(2, 7), self.random_ids(2, 6, seed=1)
        labels[1, 4:] = -100  # padding of a shorter target
        decoder_input_ids = model.prepare_decoder_input_ids_from_labels(labels)
        assert decoder_input_ids[:, 0].tolist() == [config.decoder_start_token_id] * 2
        assert torch.equal(decoder_input_ids[0, 1:], labels[0, :-1])
        assert decoder_input_ids[1, 5].item() == config.pad_token_id  # a -100 read back as padding
        with torch.no_grad():
            outputs = model(input_ids=source, labels=labels)
            explicit = model(input_ids=source, decoder_input_ids=decoder_input_ids).logits
            # The Trainer's per-token normalisation across gradient-accumulation steps.
            summed = model(input_ids=source, labels=labels, num_items_in_batch=22).loss
        torch.testing.assert_close(outputs.logits, explicit)
        expected = torch.nn.functional.cross_entropy(
            explicit.reshape(-1, config.vocab_size), labels.reshape(-1), ignore_index=-100
        )
        torch.testing.assert_close(outputs.loss, expected)
        torch.testing.assert_close(summed, expected * 10 / 22)

    def test_return_dict_false_returns_the_same_values_as_a_tuple(self):
        # transformers' convention (`can_return_tuple`): the output's non-None fields in order, loss first.
        model = self.make_model()
        source, labels = self.random_ids(2, 7), self.random_ids(2, 5, seed=1)
        with torch.no_grad():
            outputs = model(input_ids=source, labels=labels)
            as_tuple = model(input_ids=source, labels=labels, return_dict=False)
            encoder_tuple = model.get_encoder()(input_ids=source, return_dict=False)
        assert isinstance(as_tuple, tuple) and len(as_tuple) == len(outputs.to_tuple())
        assert torch.equal(as_tuple[0], outputs.loss) and torch.equal(as_tuple[1], outputs.logits)
        assert isinstance(encoder_tuple, tuple)
        assert torch.equal(encoder_tuple[0], outputs.encoder_last_hidden_state)

    def test_cached_decoding_matches_one_full_forward(self):
        model = self.make_generation_model()
        source, target = self.random_ids(2, 7), self.random_ids(2, 6, seed=1)
        with torch.no_grad():
            full = model(input_ids=source, decoder_input_ids=target, use_cache=False).logits
            step = model(input_ids=source, decoder_input_ids=target[:, :3], use_cache=True)
            encoder_outputs = (step.encoder_last_hidden_state,)
            pieces, cache = [step.logits], step.cache
            for position in range(3, 6):
                step = model(
                    encoder_outputs=encoder_outputs,
                    decoder_input_ids=target[:, position : position + 1],
                    cache=cache,
                    use_cache=True,
                )
                pieces.append(step.logits)
                cache = step.cache
        assert cache.get_seq_length() == 6
        assert cache.cross_attention_cache.get_seq_length() == 7  # the encoder states, projected once
        torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=self.atol, rtol=1e-4)

    def _loss_at_init(self, model, length: int) -> float:
        """The loss of `model` on random (source, labels) pairs from its whole vocabulary above the special ids."""
        generator = torch.Generator().manual_seed(0)
        source, labels = torch.randint(3, model.config.vocab_size, (2, 4, length), generator=generator)
        with torch.no_grad():
            return model(input_ids=source, labels=labels).loss.item()

    @pytest.mark.parametrize("tied", [True, False])
    @pytest.mark.parametrize(("hidden_size", "vocab_size"), INIT_LOSS_SIZES)
    def test_loss_at_init_is_near_ln_vocab(self, hidden_size, vocab_size, tied):
        model = self.make_model(hidden_size=hidden_size, vocab_size=vocab_size, tie_word_embeddings=tied)
        loss = self._loss_at_init(model, 32)
        assert_loss_near_ln_vocab(loss, vocab_size, f"width {hidden_size}, tied={tied}")

    def test_loss_at_init_of_the_default_size_is_near_ln_vocab(self):
        torch.manual_seed(0)
        model = self.seq2seq_lm_class(self.config_class(vocab_size=8192)).eval()
        assert_loss_near_ln_vocab(self._loss_at_init(model, 64), 8192, "default size")

    def test_few_optimizer_steps_lower_the_loss(self):
        model = self.make_model().train()
        source = self.random_ids(8, 6)
        eos = torch.full((8, 1), model.config.eos_token_id)
        labels = torch.cat([source.flip(1), eos], dim=1)  # reverse, then EOS
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-2)
        losses = []
        for _ in range(25):
            loss = model(input_ids=source, labels=labels).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        assert losses[-1] < 0.5 * losses[0], losses

    def test_gradients_reach_every_parameter(self):
        model = self.make_model(tie_word_embeddings=False).train()
        source, labels = self.random_ids(2, 6), self.random_ids(2, 5, seed=1)
        model(input_ids=source, labels=labels).loss.backward()
        assert_every_parameter_has_a_gradient(model)

    def test_data_collator_builds_decoder_inputs_from_labels(self):
        model = self.make_model()

        class _PadOnlyTokenizer:  # DataCollatorForSeq2Seq only pads the source through the tokenizer
            pad_token_id = 0
            padding_side = "right"

            def pad(self, features, **kwargs):
                longest = max(len(feature["input_ids"]) for feature in features)
                ids = [f["input_ids"] + [0] * (longest - len(f["input_ids"])) for f in features]
                mask = [[1] * len(f["input_ids"]) + [0] * (longest - len(f["input_ids"])) for f in features]
                return {"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(mask)}

        collator = DataCollatorForSeq2Seq(_PadOnlyTokenizer(), model=model, label_pad_token_id=-100)
        batch = collator([{"input_ids": [5, 6, 7], "labels": [8, 9, 2]}, {"input_ids": [5], "labels": [4, 2]}])
        assert batch["labels"].tolist() == [[8, 9, 2], [4, 2, -100]]
        assert batch["decoder_input_ids"].tolist() == [[1, 8, 9], [1, 4, 2]]

    # --------------------------------------------------------------------------------- saving, Auto, remote code
    @pytest.mark.parametrize("tie", [True, False])
    def test_save_load_identical_logits_safetensors_only(self, tmp_path, tie):
        model = self.make_model() if tie else self.make_generation_model()
        source, target = self.random_ids(2, 7), self.random_ids(2, 4, seed=1)
        model.save_pretrained(tmp_path)
        files = os.listdir(tmp_path)
        assert "model.safetensors" in files and "generation_config.json" in files
        assert not [name for name in files if name.endswith((".bin", ".pt", ".pth", ".pkl", ".ckpt"))], files
        with safe_open(str(tmp_path / "model.safetensors"), "pt") as handle:
            shapes = {key: handle.get_slice(key).get_shape() for key in handle.keys()}  # noqa: SIM118 (not a dict)
        # One vocabulary matrix (shared by source, target and output layer) when tied, two when not.
        vocab_matrices = [key for key, shape in shapes.items() if shape[0] == model.config.vocab_size]
        assert len(vocab_matrices) == (1 if tie else 2), vocab_matrices
        with torch.no_grad():
            expected = model(input_ids=source, decoder_input_ids=target).logits
        for loader in (self.seq2seq_lm_class, AutoModelForSeq2SeqLM):
            reloaded = loader.from_pretrained(tmp_path).eval()
            assert type(reloaded) is self.seq2seq_lm_class
            embeddings = reloaded.get_input_embeddings().weight
            assert (reloaded.get_output_embeddings().weight is embeddings) is tie
            with torch.no_grad():
                assert torch.equal(reloaded(input_ids=source, decoder_input_ids=target).logits, expected)
        generation_config = json.loads((tmp_path / "generation_config.json").read_text())
        assert generation_config["decoder_start_token_id"] == model.config.decoder_start_token_id

    def test_auto_classes_resolve_to_the_family(self, tmp_path):
        config = self.get_config()
        assert_config_and_base_model_resolve(config, self.config_class, self.base_model_class, tmp_path)
        assert type(AutoModelForSeq2SeqLM.from_config(config)) is self.seq2seq_lm_class

    def test_save_writes_auto_map_and_code(self, tmp_path):
        self.make_model().save_pretrained(tmp_path)
        classes = {
            "AutoConfig": self.config_class,
            "AutoModel": self.base_model_class,
            "AutoModelForSeq2SeqLM": self.seq2seq_lm_class,
        }
        assert_auto_map_and_code(tmp_path, classes)

    def test_remote_code_load_in_a_process_without_hf_textgen(self, tmp_path):
        model = self.make_generation_model()
        inputs = {"input_ids": self.random_ids(2, 7), "decoder_input_ids": self.random_ids(2, 4, seed=1)}
        check_remote_code_loading([(model, inputs)], tmp_path)

    # ------------------------------------------------------------------------------------------------ generation
    def test_generation_fixture_is_not_degenerate(self):
        model = self.make_generation_model()
        source = self.random_ids(3, 6)
        generated = self.generate(model, source)
        assert len(set(generated[:, 1:].flatten().tolist())) > 4
        assert not torch.equal(generated, self.generate(model, source.flip(1)))

    def test_greedy_cached_equals_uncached_equals_argmax_recomputation(self):
        model = self.make_generation_model()
        source = self.random_ids(2, 6)
        cached = self.generate(model, source, max_new_tokens=10)
        assert torch.equal(cached, self.generate(model, source, max_new_tokens=10, use_cache=False))
        # Reference: run the whole decoder prefix again at every step and take the argmax.
        sequences = torch.full((2, 1), model.config.decoder_start_token_id)
        for _ in range(10):
            with torch.no_grad():
                logits = model(input_ids=source, decoder_input_ids=sequences, use_cache=False).logits[:, -1]
            sequences = torch.cat([sequences, logits.argmax(-1, keepdim=True)], dim=1)
        assert torch.equal(cached, sequences)

    @pytest.mark.parametrize("num_return_sequences", [1, 2])
    def test_beam_search_cached_equals_uncached(self, num_return_sequences):
        model = self.make_generation_model()
        source = self.random_ids(2, 6)
        cached = beam_search_cached_and_uncached(self.generate, model, source, num_return_sequences, self.atol)
        assert cached.sequences.shape == (2 * num_return_sequences, 1 + 7)

    @pytest.mark.parametrize(
        "sampling",
        [{"temperature": 0.7}, {"temperature": 1.3, "top_k": 20, "top_p": 0.9}],
        ids=["temperature", "top_k_top_p"],
    )
    def test_seeded_sampling_is_reproducible_with_and_without_cache(self, sampling):
        model = self.make_generation_model()
        source = self.random_ids(2, 6)
        first = seeded_sample_is_reproducible(self.generate, model, source, sampling)
        torch.manual_seed(99)
        assert not torch.equal(first, self.generate(model, source, do_sample=True, max_new_tokens=10, temperature=1.5))

    @pytest.mark.parametrize("side", ["right", "left"])
    def test_padded_sources_give_what_unpadded_ones_give(self, side):
        model = self.make_generation_model()
        rows = [self.random_ids(1, length, seed=index) for index, length in enumerate([3, 7, 5])]
        input_ids, attention_mask = self.padded_batch(rows, side)
        target = self.random_ids(3, 4, seed=9)
        with torch.no_grad():
            batch_logits = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=target).logits
        batched = self.generate(model, input_ids, attention_mask=attention_mask)
        for index, row in enumerate(rows):
            with torch.no_grad():
                alone_logits = model(input_ids=row, decoder_input_ids=target[index : index + 1]).logits
            torch.testing.assert_close(batch_logits[index : index + 1], alone_logits, atol=self.atol, rtol=1e-4)
            assert torch.equal(batched[index], self.generate(model, row)[0]), f"greedy, row {index}"
        # Beam search on the most padded row (the beams carry the padded encoder output and mask along).
        beams = self.generate(model, input_ids, attention_mask=attention_mask, num_beams=3)
        assert torch.equal(beams[0], self.generate(model, rows[0], num_beams=3)[0])

    def test_saved_folder_generates_through_the_inference_loader(self, tmp_path, tiny_tokenizer):
        # transformers 5 removed the text2text-generation pipeline; the user-level path for an encoder-decoder is
        # the folder loaded by `hf_textgen.generation.load_model_and_tokenizer` (what `hf-textgen generate` does).
        from hf_textgen.generation import load_model_and_tokenizer

        tokenizer = tiny_tokenizer
        model = self.make_generation_model(
            vocab_size=len(tokenizer),
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            decoder_start_token_id=tokenizer.bos_token_id,
        )
        model.save_pretrained(tmp_path)
        tokenizer.save_pretrained(tmp_path)
        loaded, loaded_tokenizer = load_model_and_tokenizer(str(tmp_path), device="cpu")
        assert type(loaded) is self.seq2seq_lm_class
        encoded = loaded_tokenizer("To be, or not to be", return_tensors="pt")
        generated = loaded.generate(**encoded, max_new_tokens=6, do_sample=False)
        expected = model.generate(**tokenizer("To be, or not to be", return_tensors="pt"), max_new_tokens=6)
        assert torch.equal(generated, expected)
        assert loaded_tokenizer.decode(generated[0], skip_special_tokens=True) == tokenizer.decode(
            expected[0], skip_special_tokens=True
        )


__all__ = [
    "CausalLMModelTestMixin",
    "Seq2SeqLMModelTestMixin",
    "check_remote_code_loading",
    "run_remote_code_loads",
    "save_with_expected_output",
]
