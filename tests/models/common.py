"""The common test suite every hf_textgen causal-LM family runs.

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
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import save_file
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    pipeline,
)
from transformers.generation.streamers import BaseStreamer

import hf_textgen  # noqa: F401  (registers the Auto classes)

# The subprocess for the remote-code tests: hf_textgen is made unimportable before transformers loads the saved
# folders, and the test fails if it still imports, so only the code saved next to the weights can be running. Each
# entry of the JSON manifest names an Auto class, a saved folder, and a safetensors file with the model's inputs and
# the expected first output (logits or last hidden state), or no file when only the loaded class is checked.
_REMOTE_CODE_SCRIPT = textwrap.dedent(
    """
    import importlib.abc
    import json
    import sys


    class _HideHfTextgen(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "hf_textgen" or name.startswith("hf_textgen."):
                raise ModuleNotFoundError(f"{name} is hidden for this test", name=name)
            return None


    sys.meta_path.insert(0, _HideHfTextgen())
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
    """Save each `(model, input_ids)` under `folder` and reload them all in ONE fresh Python process that cannot
    import hf_textgen, via `AutoModelForCausalLM.from_pretrained(..., trust_remote_code=True)`; the logits must be
    identical.
    """
    entries = []
    for index, (model, input_ids) in enumerate(models_and_inputs):
        model_folder, tensors_file = save_with_expected_output(
            model, {"input_ids": input_ids}, folder, f"model_{index}"
        )
        entries.append({"auto_class": "AutoModelForCausalLM", "folder": model_folder, "tensors": tensors_file})
    for report in run_remote_code_loads(entries, folder):
        assert report["max_abs_diff"] == 0.0, report


class _CollectingStreamer(BaseStreamer):
    """Records every `put` so the test can compare what was streamed with what `generate` returned."""

    def __init__(self):
        self.chunks: list[torch.Tensor] = []
        self.ended = False

    def put(self, value: torch.Tensor) -> None:
        self.chunks.append(value.detach().clone())

    def end(self) -> None:
        self.ended = True


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

    @pytest.fixture(autouse=True)
    def _single_thread(self):
        # Tiny models run fastest on one thread, and the test box is shared: extra threads only contend.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        yield
        torch.set_num_threads(threads)

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

    def test_gradients_reach_every_parameter(self):
        model = self.make_model().train()
        input_ids = self.random_ids(model.config, 2, 8)
        model(input_ids=input_ids, labels=input_ids).loss.backward()
        for name, parameter in model.named_parameters():
            assert parameter.grad is not None, f"no gradient for {name}"
            assert torch.isfinite(parameter.grad).all(), f"non-finite gradient for {name}"
            assert parameter.grad.abs().sum() > 0, f"zero gradient for {name}"

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
        assert isinstance(AutoConfig.for_model(self.config_class.model_type), self.config_class)
        config.save_pretrained(tmp_path)
        assert type(AutoConfig.from_pretrained(tmp_path)) is self.config_class
        assert type(AutoModel.from_config(config)) is self.base_model_class
        assert type(AutoModelForCausalLM.from_config(config)) is self.causal_lm_class
        if self.sequence_classification_class is not None:
            model = AutoModelForSequenceClassification.from_config(config)
            assert type(model) is self.sequence_classification_class

    def test_save_writes_auto_map_and_code(self, tmp_path):
        model = self.make_model()
        model.save_pretrained(tmp_path)
        auto_map = json.loads((tmp_path / "config.json").read_text())["auto_map"]
        assert auto_map["AutoConfig"].endswith(self.config_class.__name__)
        assert auto_map["AutoModelForCausalLM"].endswith(self.causal_lm_class.__name__)
        for module_name in {value.split(".")[0] for value in auto_map.values()}:
            assert (tmp_path / f"{module_name}.py").is_file()

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
        kwargs = {
            "num_beams": 3,
            "num_return_sequences": num_return_sequences,
            "max_new_tokens": 7,
            "return_dict_in_generate": True,
            "output_scores": True,
        }
        cached = self.generate(model, input_ids, use_cache=True, **kwargs)
        uncached = self.generate(model, input_ids, use_cache=False, **kwargs)
        assert cached.sequences.shape == (2 * num_return_sequences, 5 + 7)
        assert torch.equal(cached.sequences, uncached.sequences)
        torch.testing.assert_close(cached.sequences_scores, uncached.sequences_scores, atol=self.atol, rtol=1e-4)

    @pytest.mark.parametrize(
        "sampling",
        [{"temperature": 0.7}, {"top_k": 5}, {"top_p": 0.8}, {"temperature": 1.3, "top_k": 20, "top_p": 0.95}],
        ids=["temperature", "top_k", "top_p", "combined"],
    )
    def test_seeded_sampling_is_reproducible(self, sampling):
        model = self.make_model()
        input_ids = self.random_ids(model.config, 2, 5)

        def sample(**kwargs):
            torch.manual_seed(1234)
            return self.generate(model, input_ids, do_sample=True, max_new_tokens=10, **sampling, **kwargs)

        first = sample()
        assert torch.equal(first, sample())
        # Same seed, same distribution: the cache must not change what is sampled.
        assert torch.equal(first, sample(use_cache=False))

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

    @pytest.mark.parametrize("padding_side", ["left", "right"])
    def test_classification_pooling_ignores_padding(self, padding_side):
        model = self._classifier()
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

    def test_classification_save_load(self, tmp_path):
        model = self._classifier(num_labels=2)
        input_ids = self.random_ids(model.config, 2, 5)
        model.save_pretrained(tmp_path)
        reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
        assert type(reloaded) is self.sequence_classification_class
        with torch.no_grad():
            assert torch.equal(reloaded(input_ids=input_ids).logits, model(input_ids=input_ids).logits)


__all__ = [
    "CausalLMModelTestMixin",
    "check_remote_code_loading",
    "run_remote_code_loads",
    "save_with_expected_output",
]
