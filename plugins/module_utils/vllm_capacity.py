# -*- coding: utf-8 -*-
# Copyright: ai_infra platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Will a model fit, and how many requests of max_model_len can its KV cache hold?

Pure computation from a Hugging Face config.json (no network), shared by the vllm_capacity
module and bench/. The memory model is vLLM's: each GPU gives gpu_memory_utilization of its
memory to vLLM; the weights (split across tensor-parallel ranks) and a runtime overhead
come out of that; what is left holds KV-cache blocks.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

MIB = 1024 * 1024

DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "half": 2, "float32": 4, "float": 4, "auto": 2}
# Bytes per parameter of quantized weights (scales and zero points add a little; the int4
# family carries about 3% of it, which the figure below includes).
QUANTIZED_BYTES = {"fp8": 1.0, "int8": 1.0, "int4": 0.53, "awq": 0.53, "gptq": 0.53}


class CapacityError(Exception):
    """A configuration the planner cannot read; the message says what is wrong."""


def text_config(config):
    """Multimodal configs (Llama 4, Gemma 3) keep the language model under text_config."""
    nested = config.get("text_config")
    if isinstance(nested, dict) and nested.get("num_hidden_layers"):
        return nested
    return config


def _need(cfg, key):
    value = cfg.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise CapacityError("config.json has no usable %s (found %r)" % (key, value))
    return value


def attention_shape(config):
    """(layers, kv_heads, head_dim) of the language model."""
    cfg = text_config(config)
    layers = _need(cfg, "num_hidden_layers")
    heads = _need(cfg, "num_attention_heads")
    kv_heads = cfg.get("num_key_value_heads") or heads
    head_dim = cfg.get("head_dim") or _need(cfg, "hidden_size") // heads
    return layers, kv_heads, head_dim


def estimate_params(config):
    """Parameter count of a Llama-style decoder (dense or mixture-of-experts), from config.json.

    Embeddings (twice unless tied), attention projections, and per layer either a dense
    gated MLP or the experts (plus shared experts); norms and routers are rounding errors.
    Within 2% of the published totals for Llama 3.1, Llama 4 Scout, Qwen3 and SmolLM2.
    """
    cfg = text_config(config)
    hidden = _need(cfg, "hidden_size")
    vocab = _need(cfg, "vocab_size")
    layers, kv_heads, head_dim = attention_shape(config)
    heads = _need(cfg, "num_attention_heads")
    tied = bool(cfg.get("tie_word_embeddings", config.get("tie_word_embeddings", False)))
    embeddings = vocab * hidden * (1 if tied else 2)
    attention = hidden * heads * head_dim * 2 + hidden * kv_heads * head_dim * 2
    experts = cfg.get("num_local_experts") or cfg.get("num_experts") or 0
    if experts:
        expert_size = cfg.get("moe_intermediate_size") or _need(cfg, "intermediate_size")
        shared = cfg.get("num_shared_experts", 1 if cfg.get("num_local_experts") else 0)
        # Llama 4 interleaves MoE and dense layers (step 1: every layer is MoE).
        step = cfg.get("interleave_moe_layer_step") or 1
        moe_layers = layers // step
        dense_size = cfg.get("intermediate_size_mlp") or cfg.get("intermediate_size") or expert_size
        mlp = moe_layers * (experts + shared) * 3 * hidden * expert_size + (layers - moe_layers) * 3 * hidden * dense_size
        mlp += moe_layers * hidden * experts
    else:
        mlp = layers * 3 * hidden * _need(cfg, "intermediate_size")
    return embeddings + layers * attention + mlp


def bytes_per_param(dtype, quantization):
    if quantization and quantization != "none":
        return QUANTIZED_BYTES[quantization]
    return DTYPE_BYTES[dtype]


def plan(
    config,
    weights_bytes=None,
    params=None,
    dtype="bfloat16",
    quantization="none",
    kv_cache_dtype="auto",
    gpu_memory_mib=None,
    gpu_count=1,
    tensor_parallel_size=1,
    gpu_memory_utilization=0.9,
    max_model_len=None,
    overhead_mib=2048,
    kv_cache_mib=None,
    block_size=16,
):
    """Return the figures; problems (a list of sentences) say why it does not fit."""
    layers, kv_heads, head_dim = attention_shape(config)
    cfg = text_config(config)
    problems = []
    if tensor_parallel_size > gpu_count:
        problems.append(
            "tensor_parallel_size %d needs %d GPUs, the host has %d" % (tensor_parallel_size, tensor_parallel_size, gpu_count)
        )
    max_positions = cfg.get("max_position_embeddings")
    if max_model_len is None:
        max_model_len = max_positions
    if not max_model_len:
        raise CapacityError("max_model_len is not set and config.json has no max_position_embeddings")
    if max_positions and max_model_len > max_positions:
        problems.append(
            "max_model_len %d is longer than the model's %d positions (max_position_embeddings)" % (max_model_len, max_positions)
        )

    if weights_bytes is None:
        if params is None:
            params = estimate_params(config)
        weights_bytes = int(params * bytes_per_param(dtype, quantization))
    # KV heads are split across tensor-parallel ranks; with fewer KV heads than ranks
    # each rank keeps a copy of one.
    kv_heads_per_rank = max(1, -(-kv_heads // tensor_parallel_size))
    kv_element = 1 if kv_cache_dtype == "fp8" else DTYPE_BYTES[dtype]
    kv_bytes_per_token = 2 * layers * kv_heads_per_rank * head_dim * kv_element

    weights_per_rank = weights_bytes / tensor_parallel_size
    if kv_cache_mib is not None:
        # The CPU build sets the KV space directly (VLLM_CPU_KVCACHE_SPACE).
        kv_budget = kv_cache_mib * MIB
        usable = None
    else:
        if not gpu_memory_mib:
            raise CapacityError("gpu_memory_mib is needed unless kv_cache_mib is given")
        usable = gpu_memory_mib * MIB * gpu_memory_utilization
        kv_budget = usable - weights_per_rank - overhead_mib * MIB
        if weights_per_rank + overhead_mib * MIB > usable:
            problems.append(
                "the weights need %.1f GiB per GPU (%.1f GiB over %d GPU(s)) plus %.1f GiB of runtime "
                "overhead, but each GPU gives vLLM only %.1f GiB (%d MiB x %.2f): use a smaller or more "
                "strongly quantized model, more GPUs (tensor_parallel_size), or a larger GPU"
                % (
                    weights_per_rank / 1024**3,
                    weights_bytes / 1024**3,
                    tensor_parallel_size,
                    overhead_mib / 1024.0,
                    usable / 1024**3,
                    gpu_memory_mib,
                    gpu_memory_utilization,
                )
            )
    blocks = max(0, int(kv_budget // (kv_bytes_per_token * block_size)))
    kv_cache_tokens = blocks * block_size
    max_concurrency = kv_cache_tokens / float(max_model_len)
    return dict(
        weights_bytes=int(weights_bytes),
        params=params,
        kv_bytes_per_token=kv_bytes_per_token,
        kv_cache_bytes=int(max(0, kv_budget)),
        kv_cache_tokens=kv_cache_tokens,
        max_model_len=max_model_len,
        max_concurrency=round(max_concurrency, 2),
        problems=problems,
    )


def concurrency_problem(figures, required_concurrency):
    """The sentence for a KV cache that cannot hold the fan-out, or None."""
    if required_concurrency is None or figures["max_concurrency"] >= required_concurrency:
        return None
    per_request = figures["kv_bytes_per_token"] * figures["max_model_len"]
    return (
        "the KV cache holds %d tokens (%.1f GiB at %d bytes per token), which is %.2f requests of "
        "max_model_len %d, fewer than the %d required: %d requests need %.1f GiB; lower max_model_len, "
        "use kv_cache_dtype fp8, raise gpu_memory_utilization, or add GPUs"
        % (
            figures["kv_cache_tokens"],
            figures["kv_cache_bytes"] / 1024**3,
            figures["kv_bytes_per_token"],
            figures["max_concurrency"],
            figures["max_model_len"],
            required_concurrency,
            required_concurrency,
            required_concurrency * per_request / 1024**3,
        )
    )
