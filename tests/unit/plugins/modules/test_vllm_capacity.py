"""Unit tests for vllm_capacity on public model configs (fixtures/model_configs/SOURCES.md)."""

from __future__ import annotations

import json
import pathlib

import pytest

from ansible_collections.ai_infra.langgraph_stack.plugins.module_utils import vllm_capacity as vc
from ansible_collections.ai_infra.langgraph_stack.plugins.modules import vllm_capacity
from ansible_collections.ai_infra.langgraph_stack.tests.unit.plugins.modules.utils import AnsibleFailJson, run_module

CONFIGS = pathlib.Path(__file__).parents[4] / "roles" / "vllm" / "files" / "model_configs"
H100 = 81559  # MiB, as nvidia-smi reports an H100 80GB
L40S = 46068


def config(name):
    return str(CONFIGS / (name + ".json"))


def run(name, **args):
    return run_module(vllm_capacity.main, dict(model_config=config(name), **args))


def fails(name, **args):
    with pytest.raises(AnsibleFailJson) as exc:
        run(name, **args)
    return exc.value.result


def load(name):
    return json.loads((CONFIGS / (name + ".json")).read_text())


@pytest.mark.parametrize(
    "name, published_billions",
    [
        ("SmolLM2-135M-Instruct", 0.135),
        ("Llama-3.1-8B-Instruct", 8.03),
        ("Llama-3.1-70B-Instruct", 70.6),
        ("Llama-4-Scout-17B-16E-Instruct", 108.0),  # 109 B with the vision tower
        ("Qwen3-30B-A3B", 30.5),
    ],
)
def test_parameter_estimate_within_two_percent(name, published_billions):
    estimate = vc.estimate_params(load(name)) / 1e9
    assert estimate == pytest.approx(published_billions, rel=0.02)


def test_smollm2_matches_what_vllm_logged_on_the_cpu():
    # vLLM CPU with VLLM_CPU_KVCACHE_SPACE=1: "CPU KV cache size: 46,592 tokens, Maximum
    # concurrency for 2,048 tokens per request: 22.75x" (vLLM CPU on our build machines).
    result = run("SmolLM2-135M-Instruct", kv_cache_mib=1024, block_size=128, max_model_len=2048, required_concurrency=8)
    assert result["kv_bytes_per_token"] == 23040
    assert result["kv_cache_tokens"] == 46592
    assert result["max_concurrency"] == 22.75
    assert result["weights_source"] == "config"


def test_smollm2_refused_when_the_fan_out_exceeds_one_gib():
    result = fails("SmolLM2-135M-Instruct", kv_cache_mib=1024, block_size=128, max_model_len=2048, required_concurrency=30)
    assert result["msg"] == (
        "This vLLM configuration does not fit: the KV cache holds 46592 tokens (1.0 GiB at 23040 bytes per token), "
        "which is 22.75 requests of max_model_len 2048, fewer than the 30 required: 30 requests need 1.3 GiB; "
        "lower max_model_len, use kv_cache_dtype fp8, raise gpu_memory_utilization, or add GPUs."
    )
    assert result["max_concurrency"] == 22.75


def test_llama_8b_bf16_on_one_h100():
    result = run("Llama-3.1-8B-Instruct", gpu_memory_mib=H100, max_model_len=32768, required_concurrency=12)
    assert result["kv_bytes_per_token"] == 2 * 32 * 8 * 128 * 2 == 131072
    assert result["weights_bytes"] == pytest.approx(16.06e9, rel=0.01)
    # 81559 MiB x 0.9 - 14.96 GiB weights - 2 GiB overhead = 54.7 GiB of KV
    assert result["kv_cache_tokens"] == pytest.approx(448_000, rel=0.01)
    assert 13 < result["max_concurrency"] < 14


def test_fp8_kv_cache_halves_the_bytes_per_token():
    auto = run("Llama-3.1-8B-Instruct", gpu_memory_mib=H100, max_model_len=32768)
    fp8 = run("Llama-3.1-8B-Instruct", gpu_memory_mib=H100, max_model_len=32768, kv_cache_dtype="fp8")
    assert fp8["kv_bytes_per_token"] * 2 == auto["kv_bytes_per_token"]
    assert fp8["kv_cache_tokens"] == pytest.approx(2 * auto["kv_cache_tokens"], rel=0.001)


def test_llama_70b_bf16_refused_on_one_h100_and_fits_on_two():
    msg = fails("Llama-3.1-70B-Instruct", gpu_memory_mib=H100, max_model_len=8192)["msg"]
    assert msg.startswith("This vLLM configuration does not fit: the weights need 131.4 GiB per GPU (131.4 GiB over 1 GPU(s))")
    assert "each GPU gives vLLM only 71.7 GiB (81559 MiB x 0.90)" in msg
    two = run("Llama-3.1-70B-Instruct", gpu_memory_mib=H100, gpu_count=2, tensor_parallel_size=2, max_model_len=8192)
    # KV heads split over the two ranks: 4 per rank.
    assert two["kv_bytes_per_token"] == 2 * 80 * 4 * 128 * 2
    assert two["max_concurrency"] > 1


def test_llama_70b_fp8_on_one_h100_holds_little_context():
    result = run("Llama-3.1-70B-Instruct", gpu_memory_mib=H100, quantization="fp8", max_model_len=8192)
    assert result["weights_bytes"] == pytest.approx(70.6e9, rel=0.01)
    assert 0 < result["max_concurrency"] < 2


def test_llama4_scout_fp8_refused_on_one_h100():
    # The hand-written guide's table says 55-60 GB in FP8; it is about 109 GB.
    result = fails("Llama-4-Scout-17B-16E-Instruct", params_b=109, quantization="fp8", gpu_memory_mib=H100, max_model_len=32768)
    assert "the weights need 101.5 GiB per GPU" in result["msg"]
    assert result["weights_source"] == "params_b"
    # Estimated from the config (text model only) it is refused all the same.
    assert "does not fit" in fails("Llama-4-Scout-17B-16E-Instruct", quantization="fp8", gpu_memory_mib=H100, max_model_len=32768)["msg"]


def test_llama4_scout_int4_fits_one_h100():
    result = run("Llama-4-Scout-17B-16E-Instruct", params_b=109, quantization="int4", gpu_memory_mib=H100, max_model_len=32768)
    # The nested text_config gives the attention shape.
    assert result["kv_bytes_per_token"] == 2 * 48 * 8 * 128 * 2
    assert result["max_concurrency"] > 1


def test_qwen3_moe_fp8_is_about_31_gb_not_16():
    result = run("Qwen3-30B-A3B", quantization="fp8", gpu_memory_mib=L40S, max_model_len=32768)
    assert result["weights_bytes"] == pytest.approx(30.5e9, rel=0.02)
    assert result["kv_bytes_per_token"] == 2 * 48 * 4 * 128 * 2


def test_weights_on_disk_win_over_the_estimate(tmp_path):
    (tmp_path / "config.json").write_text((CONFIGS / "SmolLM2-135M-Instruct.json").read_text())
    (tmp_path / "model.safetensors").write_bytes(b"\0" * 4096)
    result = run_module(vllm_capacity.main, dict(model_config=str(tmp_path), kv_cache_mib=64, max_model_len=2048))
    assert result["weights_bytes"] == 4096 and result["weights_source"] == "safetensors"


def test_max_model_len_longer_than_the_model():
    msg = fails("Qwen3-30B-A3B", quantization="fp8", gpu_memory_mib=H100, max_model_len=131072)["msg"]
    assert "max_model_len 131072 is longer than the model's 40960 positions" in msg


def test_tensor_parallel_needs_the_gpus():
    msg = fails("Llama-3.1-8B-Instruct", gpu_memory_mib=H100, tensor_parallel_size=2, max_model_len=8192)["msg"]
    assert "tensor_parallel_size 2 needs 2 GPUs, the host has 1" in msg


@pytest.mark.parametrize(
    "args, message",
    [
        ({"gpu_memory_utilization": 1.5}, "gpu_memory_utilization must be above 0 and at most 1, got 1.5"),
        ({"max_model_len": 0}, "max_model_len must be greater than 0, got 0"),
        ({"tensor_parallel_size": 0}, "tensor_parallel_size must be 1 or more, got 0"),
        ({"params_b": -1.0}, "params_b must be greater than 0, got -1.0"),
    ],
)
def test_bad_numbers(args, message):
    args.setdefault("gpu_memory_mib", H100)
    assert fails("Llama-3.1-8B-Instruct", **args)["msg"] == "vllm_capacity: %s." % message


def test_missing_and_malformed_configs(tmp_path):
    with pytest.raises(AnsibleFailJson) as exc:
        run_module(vllm_capacity.main, dict(model_config=str(tmp_path / "nope.json"), gpu_memory_mib=H100))
    assert exc.value.result["msg"].startswith("vllm_capacity: cannot read %s" % (tmp_path / "nope.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(AnsibleFailJson) as exc:
        run_module(vllm_capacity.main, dict(model_config=str(bad), gpu_memory_mib=H100))
    assert "is not valid JSON" in exc.value.result["msg"]
    empty = tmp_path / "empty.json"
    empty.write_text('{"model_type": "llama"}')
    with pytest.raises(AnsibleFailJson) as exc:
        run_module(vllm_capacity.main, dict(model_config=str(empty), gpu_memory_mib=H100))
    assert exc.value.result["msg"] == "vllm_capacity: config.json has no usable num_hidden_layers (found None)."


def test_gpu_memory_or_kv_space_required():
    with pytest.raises(AnsibleFailJson) as exc:
        run("Llama-3.1-8B-Instruct")
    assert "one of the following is required: gpu_memory_mib, kv_cache_mib" in exc.value.result["msg"]
