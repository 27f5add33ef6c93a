#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ai_infra platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: vllm_capacity
short_description: Check that a model fits the GPUs and that vLLM's KV cache holds the fan-out
version_added: 0.1.0
description:
  - Pure computation, no network. From a Hugging Face C(config.json) (the language model's part
    of a multimodal config, C(text_config), is used when present) and the GPU memory, computes the
    weights' size, the KV-cache bytes per token, how many tokens the KV cache holds and how many
    requests of O(max_model_len) fit at once.
  - Fails, with every number in the message and what to change, when the weights do not fit or
    the KV cache cannot hold O(required_concurrency) requests. Run it before downloading anything.
  - "Memory model (vLLM's): per GPU, O(gpu_memory_mib) x O(gpu_memory_utilization), minus the weights
    divided by O(tensor_parallel_size), minus O(overhead_mib) (CUDA context, activations, CUDA
    graphs), is KV cache, in blocks of O(block_size) tokens."
author:
  - ai_infra platform team (@ai-infra)
options:
  model_config:
    description:
      - Path of the model's C(config.json), or of the model directory holding it. When the
        directory holds C(*.safetensors) files, their total size is the weights' size.
    type: path
    required: true
  params_b:
    description: Parameters in billions, when the weights are not on disk (else estimated from the config).
    type: float
  weights_bytes:
    description: Size of the weights in bytes, when known and not on disk. Wins over O(params_b).
    type: int
  dtype:
    description: Weight and activation dtype (vLLM C(--dtype)).
    type: str
    choices: [auto, bfloat16, float16, half, float32, float]
    default: bfloat16
  quantization:
    description: Weight quantization (vLLM C(--quantization)); sets bytes per parameter when the size is computed from parameters.
    type: str
    choices: [none, fp8, int8, int4, awq, gptq]
    default: none
  kv_cache_dtype:
    description: KV-cache dtype (vLLM C(--kv-cache-dtype)); C(fp8) halves the KV bytes per token.
    type: str
    choices: [auto, fp8]
    default: auto
  gpu_memory_mib:
    description: Memory of one GPU in MiB, as gpu_visibility reports it (an H100 80GB reports 81559). Required unless O(kv_cache_mib) is set.
    type: int
  gpu_count:
    description: GPUs on the host.
    type: int
    default: 1
  tensor_parallel_size:
    description: GPUs one model is split across (vLLM C(--tensor-parallel-size)).
    type: int
    default: 1
  gpu_memory_utilization:
    description: Share of each GPU's memory vLLM may use (vLLM C(--gpu-memory-utilization)), above 0 and at most 1.
    type: float
    default: 0.9
  max_model_len:
    description: Context length per request (vLLM C(--max-model-len)); default the model's C(max_position_embeddings).
    type: int
  required_concurrency:
    description: Requests of O(max_model_len) the KV cache must hold at once (the graph's fan-out).
    type: int
  overhead_mib:
    description: Memory per GPU that is neither weights nor KV cache (CUDA context, activations, CUDA graphs).
    type: int
    default: 2048
  kv_cache_mib:
    description: KV-cache space set directly, as the CPU build's C(VLLM_CPU_KVCACHE_SPACE) does (in MiB); replaces the GPU memory model.
    type: int
  block_size:
    description: Tokens per KV-cache block (16 on GPUs; the CPU build uses 128).
    type: int
    default: 16
attributes:
  check_mode:
    description: Pure computation; runs the same in check mode.
    support: full
  diff_mode:
    description: No diff is produced.
    support: none
"""

EXAMPLES = r"""
- name: Refuse Llama 4 Scout in FP8 on one H100 before downloading it
  ai_infra.langgraph_stack.vllm_capacity:
    model_config: /srv/models/Llama-4-Scout-17B-16E-Instruct/config.json
    params_b: 109
    quantization: fp8
    gpu_memory_mib: 81559
    max_model_len: 32768
    required_concurrency: 12

- name: Size the KV cache of the CPU test model
  ai_infra.langgraph_stack.vllm_capacity:
    model_config: /var/lib/vllm/models/SmolLM2-135M-Instruct
    kv_cache_mib: 1024
    block_size: 128
    max_model_len: 2048
    required_concurrency: 8
"""

RETURN = r"""
weights_bytes:
  description: Size of the weights (all ranks together).
  returned: success
  type: int
  sample: 16060522496
weights_source:
  description: Where the size came from (C(safetensors), C(weights_bytes), C(params_b) or C(config)).
  returned: success
  type: str
kv_bytes_per_token:
  description: KV-cache bytes per token on one tensor-parallel rank (2 x layers x KV heads per rank x head_dim x KV dtype bytes).
  returned: success
  type: int
  sample: 131072
kv_cache_bytes:
  description: KV-cache bytes per rank.
  returned: success
  type: int
kv_cache_tokens:
  description: Tokens the KV cache holds (whole blocks).
  returned: success
  type: int
max_model_len:
  description: The context length used.
  returned: success
  type: int
max_concurrency:
  description: Requests of max_model_len the KV cache holds at once.
  returned: success
  type: float
  sample: 3.93
"""

import glob
import json
import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ai_infra.langgraph_stack.plugins.module_utils.vllm_capacity import (
    CapacityError,
    concurrency_problem,
    plan,
)


def load_config(path):
    directory = path if os.path.isdir(path) else os.path.dirname(path)
    config_file = os.path.join(path, "config.json") if os.path.isdir(path) else path
    try:
        with open(config_file) as handle:
            config = json.load(handle)
    except IOError as exc:
        raise CapacityError("cannot read %s: %s" % (config_file, exc.strerror))
    except ValueError as exc:
        raise CapacityError("%s is not valid JSON: %s" % (config_file, exc))
    if not isinstance(config, dict):
        raise CapacityError("%s does not hold a JSON object" % config_file)
    shards = glob.glob(os.path.join(directory, "*.safetensors"))
    on_disk = sum(os.path.getsize(shard) for shard in shards) if shards else None
    return config, on_disk


def validate(p):
    for name in ("gpu_count", "tensor_parallel_size", "block_size"):
        if p[name] < 1:
            raise CapacityError("%s must be 1 or more, got %d" % (name, p[name]))
    for name in ("gpu_memory_mib", "max_model_len", "required_concurrency", "kv_cache_mib", "weights_bytes"):
        if p[name] is not None and p[name] <= 0:
            raise CapacityError("%s must be greater than 0, got %d" % (name, p[name]))
    if p["params_b"] is not None and p["params_b"] <= 0:
        raise CapacityError("params_b must be greater than 0, got %s" % p["params_b"])
    if not 0 < p["gpu_memory_utilization"] <= 1:
        raise CapacityError("gpu_memory_utilization must be above 0 and at most 1, got %s" % p["gpu_memory_utilization"])
    if p["overhead_mib"] < 0:
        raise CapacityError("overhead_mib must be 0 or more, got %d" % p["overhead_mib"])


def main():
    module = AnsibleModule(
        argument_spec=dict(
            model_config=dict(type="path", required=True),
            params_b=dict(type="float"),
            weights_bytes=dict(type="int"),
            dtype=dict(type="str", default="bfloat16", choices=["auto", "bfloat16", "float16", "half", "float32", "float"]),
            quantization=dict(type="str", default="none", choices=["none", "fp8", "int8", "int4", "awq", "gptq"]),
            kv_cache_dtype=dict(type="str", default="auto", choices=["auto", "fp8"]),
            gpu_memory_mib=dict(type="int"),
            gpu_count=dict(type="int", default=1),
            tensor_parallel_size=dict(type="int", default=1),
            gpu_memory_utilization=dict(type="float", default=0.9),
            max_model_len=dict(type="int"),
            required_concurrency=dict(type="int"),
            overhead_mib=dict(type="int", default=2048),
            kv_cache_mib=dict(type="int"),
            block_size=dict(type="int", default=16),
        ),
        required_one_of=[("gpu_memory_mib", "kv_cache_mib")],
        supports_check_mode=True,
    )
    p = module.params
    try:
        validate(p)
        config, on_disk = load_config(p["model_config"])
        if p["weights_bytes"] is not None:
            weights, source = p["weights_bytes"], "weights_bytes"
        elif on_disk is not None:
            weights, source = on_disk, "safetensors"
        else:
            weights, source = None, "params_b" if p["params_b"] is not None else "config"
        figures = plan(
            config,
            weights_bytes=weights,
            params=p["params_b"] * 1e9 if p["params_b"] is not None else None,
            dtype=p["dtype"],
            quantization=p["quantization"],
            kv_cache_dtype=p["kv_cache_dtype"],
            gpu_memory_mib=p["gpu_memory_mib"],
            gpu_count=p["gpu_count"],
            tensor_parallel_size=p["tensor_parallel_size"],
            gpu_memory_utilization=p["gpu_memory_utilization"],
            max_model_len=p["max_model_len"],
            overhead_mib=p["overhead_mib"],
            kv_cache_mib=p["kv_cache_mib"],
            block_size=p["block_size"],
        )
    except CapacityError as exc:
        module.fail_json(msg="vllm_capacity: %s." % exc)
    problems = figures.pop("problems")
    figures.pop("params")
    result = dict(changed=False, weights_source=source, **figures)
    if not problems:
        sentence = concurrency_problem(figures, p["required_concurrency"])
        if sentence:
            problems.append(sentence)
    if problems:
        module.fail_json(msg="This vLLM configuration does not fit: " + "; ".join(problems) + ".", **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
