"""CPU matrix features: parsed from /proc/cpuinfo, capped by PyTorch's kernels; the emulated-precision warning."""

import pytest

from hf_textgen import cpu_features
from hf_textgen.commands import demo
from hf_textgen.cpu_features import features_from, parse_cpu_flags
from hf_textgen.training.arguments import TrainingArguments

AVX2_ONLY = "fpu sse4_2 avx avx2 fma"  # an AMD EPYC of the Zen 2 kind
AVX512_BF16 = AVX2_ONLY + " avx512f avx512bw avx512_vnni avx512_bf16"  # Zen 4
SAPPHIRE_RAPIDS = AVX512_BF16 + " avx512_fp16 amx_tile amx_bf16 amx_int8"


def cpuinfo(flags: str) -> str:
    return f"processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n"


def test_avx2_only_has_no_native_half_precision():
    features = features_from(parse_cpu_flags(cpuinfo(AVX2_ONLY)), "AVX2")
    assert features.avx2 and not features.avx512 and not features.native_bf16 and not features.native_fp16
    assert features.describe() == "AVX2, no AMX"


def test_avx512_bf16_is_native_bf16_but_not_fp16():
    features = features_from(parse_cpu_flags(cpuinfo(AVX512_BF16)), "AVX512")
    assert features.native_bf16 and not features.native_fp16
    assert features.describe() == "AVX2, AVX-512, AVX-512 BF16, no AMX"


def test_amx_machine_has_both():
    features = features_from(parse_cpu_flags(cpuinfo(SAPPHIRE_RAPIDS)), "AVX512")
    assert features.amx_bf16 and features.native_bf16 and features.native_fp16
    assert features.describe() == "AVX2, AVX-512, AVX-512 BF16, AVX-512 FP16, AMX (BF16)"


def test_avx512_that_pytorch_may_not_use_counts_as_avx2_only():
    # ATEN_CPU_CAPABILITY=avx2 (emulating an AVX2-only machine) lowers PyTorch's capability: bf16 is emulated then.
    features = features_from(parse_cpu_flags(cpuinfo(AVX512_BF16)), "AVX2")
    assert not features.avx512 and not features.native_bf16 and features.avx512_unused
    assert "disabled for PyTorch" in features.describe()


def test_no_flags_line_means_no_features():
    assert parse_cpu_flags("processor\t: 0\n") == set()
    assert not features_from(set(), "DEFAULT").avx2


@pytest.fixture
def avx2_machine(monkeypatch):
    monkeypatch.setattr(cpu_features, "_warned", set())
    monkeypatch.setattr(cpu_features.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(
        cpu_features, "detect_cpu_features", lambda: features_from(parse_cpu_flags(cpuinfo(AVX2_ONLY)), "AVX2")
    )


def test_bf16_on_an_avx2_cpu_warns_once_with_the_fix(avx2_machine, capsys):
    cpu_features.warn_if_half_precision_is_emulated(bf16=True)
    cpu_features.warn_if_half_precision_is_emulated(bf16=True)
    err = capsys.readouterr().err
    assert err.count("warning:") == 1
    assert "--bf16" in err and "AVX2, no AMX" in err and "40x slower" in err and "Drop --bf16" in err


def test_fp16_warns_separately(avx2_machine, capsys):
    cpu_features.warn_if_half_precision_is_emulated(bf16=False, fp16=True)
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and "Drop --fp16" in err


def test_native_bf16_and_fp32_do_not_warn(monkeypatch, capsys):
    monkeypatch.setattr(cpu_features, "_warned", set())
    monkeypatch.setattr(
        cpu_features, "detect_cpu_features", lambda: features_from(parse_cpu_flags(cpuinfo(AVX512_BF16)), "AVX512")
    )
    cpu_features.warn_if_half_precision_is_emulated(bf16=True)
    cpu_features.warn_if_half_precision_is_emulated(bf16=False)
    assert capsys.readouterr().err == ""


def test_training_arguments_with_bf16_on_the_cpu_warn(avx2_machine, capsys, tmp_path):
    # pretrain and finetune (and seq2seq) all build these arguments.
    TrainingArguments(output_dir=str(tmp_path), bf16=True, use_cpu=True)
    assert "Drop --bf16" in capsys.readouterr().err
    TrainingArguments(output_dir=str(tmp_path), use_cpu=True)
    assert capsys.readouterr().err == ""


def test_demo_runs_as_many_steps_as_fit_its_budget():
    setting = {"min_steps": 100, "max_steps": 600}
    assert demo.steps_within_budget(0.48, 135, setting) == 281  # an AVX2-only 2-core CPU in fp32
    assert demo.steps_within_budget(0.2, 135, setting) == 600  # capped: a faster CPU finishes sooner
    assert demo.steps_within_budget(5.0, 135, setting) == 100


def test_demo_times_a_step_of_its_model():
    setting = {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32}
    seconds = demo.seconds_per_step({**setting, "block_size": 16, "batch_size": 2}, vocab_size=50, bf16=False)
    assert 0 < seconds < 60
