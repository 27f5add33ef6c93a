#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ai_infra platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: gpu_visibility
short_description: Read the host's NVIDIA GPUs and check them against expectations
version_added: 0.1.0
description:
  - Reads every GPU through NVML (the C(nvidia-ml-py) package, when importable) or through
    C(nvidia-smi --query-gpu=... --format=csv,noheader,nounits) plus C(--query-remapped-rows).
  - Fails, naming what was expected and what was found, when an expectation does not hold, and
    always when a GPU has a row-remapping failure, row remaps pending or uncorrected ECC errors.
  - With O(container_check), also starts a container with the GPU request and requires it to see
    exactly the host's GPU UUIDs (proof that the NVIDIA container toolkit works).
  - Read-only. Fields a GPU does not support come back as C(null), not C([N/A]).
author:
  - ai_infra platform team (@ai-infra)
requirements:
  - An NVIDIA driver on the host (C(nvidia-smi), or C(libnvidia-ml.so.1) for O(backend=nvml)).
  - C(nvidia-ml-py) for O(backend=nvml).
options:
  backend:
    description:
      - How to read the GPUs. V(auto) uses NVML when C(pynvml) imports, else C(nvidia-smi).
    type: str
    choices: [auto, nvml, nvidia-smi]
    default: auto
  nvidia_smi:
    description: Path of C(nvidia-smi). Default is the one found on E(PATH) (and C(/usr/bin)).
    type: path
  expected_count:
    description: Exact number of GPUs the host must show.
    type: int
  min_count:
    description: Least number of GPUs the host must show.
    type: int
  min_memory_mib:
    description: Least memory every GPU must have, in MiB (an H100 80GB reports 81559).
    type: int
  min_driver_version:
    description: Oldest acceptable driver version, such as C(535.104.05) or C(550).
    type: str
  require_persistence:
    description: Every GPU must have persistence mode on (nvidia-persistenced running).
    type: bool
    default: false
  mig:
    description: Required MIG mode. A GPU without MIG support counts as V(disabled).
    type: str
    choices: [disabled, enabled, any]
    default: any
  container_check:
    description:
      - An image that has C(nvidia-smi) once the toolkit injects the driver (any image does, with
        the toolkit's default capabilities, such as C(ubuntu:24.04) or a CUDA base image). Empty
        skips the container check.
    type: str
  container_gpu_request:
    description:
      - How the container asks for the GPUs. V(gpus) is C(--gpus all) (the runtime hook);
        V(cdi) is C(--device nvidia.com/gpu=all) (the CDI spec).
    type: str
    choices: [gpus, cdi]
    default: gpus
  container_cli:
    description: Path of the Docker CLI for O(container_check). Default is the one on E(PATH).
    type: path
  timeout:
    description: Seconds each C(nvidia-smi) or container run may take.
    type: int
    default: 120
attributes:
  check_mode:
    description: The module changes nothing; it runs the same in check mode.
    support: full
  diff_mode:
    description: No diff is produced.
    support: none
notes:
  - A host without a driver fails with one sentence (C(nvidia-smi not found) or C(NVML could not
    initialize...)); a driver upgraded without a reboot fails naming the driver/library mismatch.
"""

EXAMPLES = r"""
- name: Require one H100 80GB with persistence on and MIG off
  ai_infra.langgraph_stack.gpu_visibility:
    expected_count: 1
    min_memory_mib: 80000
    min_driver_version: "550"
    require_persistence: true
    mig: disabled

- name: Prove that containers see the host's GPUs
  ai_infra.langgraph_stack.gpu_visibility:
    container_check: nvcr.io/nvidia/cuda:12.4.1-base-ubuntu22.04
  register: gpus

- name: Show what was found
  ansible.builtin.debug:
    msg: "{{ gpus.count }} x {{ gpus.gpus[0].name }}, driver {{ gpus.driver_version }}"
"""

RETURN = r"""
count:
  description: Number of GPUs.
  returned: success
  type: int
  sample: 1
driver_version:
  description: Driver version (null when there are no GPUs).
  returned: success
  type: str
  sample: "550.90.07"
backend:
  description: The backend that read the GPUs.
  returned: success
  type: str
  sample: nvidia-smi
gpus:
  description: One entry per GPU; a field the GPU does not support is null.
  returned: success
  type: list
  elements: dict
  sample:
    - index: 0
      uuid: GPU-4c5e8d0a-6f1b-4d2e-9a7c-3b2f1e0d9c8b
      name: NVIDIA H100 80GB HBM3
      pci_bus_id: "00000000:19:00.0"
      memory_total_mib: 81559
      driver_version: "550.90.07"
      compute_capability: "9.0"
      persistence_mode: true
      mig_mode: false
      ecc_uncorrected: 0
      remapped_rows_pending: false
      remapped_rows_failure: false
      pcie_gen: 5
      pcie_width: 16
container_uuids:
  description: GPU UUIDs seen inside the O(container_check) container.
  returned: when O(container_check) is set
  type: list
  elements: str
"""

import os
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.ai_infra.langgraph_stack.plugins.module_utils.gpu_visibility import (
    QUERY_GPU_ARGS,
    QUERY_REMAPPED_ARGS,
    GpuReadError,
    check_expectations,
    explain_failure,
    merge_remapped_rows,
    parse_query_gpu,
    parse_uuid_list,
    read_nvml,
    version_tuple,
)

PYNVML_IMPORT_ERROR = None
try:
    import pynvml
except ImportError:
    pynvml = None
    PYNVML_IMPORT_ERROR = traceback.format_exc()


def run(module, argv, timeout):
    # run_command has no timeout of its own; coreutils' timeout keeps a hung driver from
    # hanging the play.
    rc, out, err = module.run_command(["timeout", str(timeout)] + argv)
    if rc == 124:
        raise GpuReadError("%s did not answer within %d seconds." % (os.path.basename(argv[0]), timeout))
    return rc, out, err


def find_binary(module, given, name):
    if given:
        if not (os.path.isfile(given) and os.access(given, os.X_OK)):
            raise GpuReadError("%s not found: %s is not an executable file." % (name, given))
        return given
    found = module.get_bin_path(name, opt_dirs=["/usr/bin", "/usr/local/bin"])
    if not found:
        raise GpuReadError("%s not found: no NVIDIA driver on this host (or it is not on PATH)." % name)
    return found


def read_nvidia_smi(module, timeout):
    binary = find_binary(module, module.params["nvidia_smi"], "nvidia-smi")
    rc, out, err = run(module, [binary] + QUERY_GPU_ARGS, timeout)
    if rc != 0:
        raise GpuReadError(explain_failure(rc, out, err))
    gpus = parse_query_gpu(out)
    if gpus:
        rc, out, err = run(module, [binary] + QUERY_REMAPPED_ARGS, timeout)
        # GPUs before Ampere have no row remapping; the fields then stay null.
        if rc == 0:
            merge_remapped_rows(gpus, out)
    return gpus


def container_uuids(module, timeout):
    cli = find_binary(module, module.params["container_cli"], "docker")
    request = ["--gpus", "all"] if module.params["container_gpu_request"] == "gpus" else ["--device", "nvidia.com/gpu=all"]
    argv = [cli, "run", "--rm"] + request + [module.params["container_check"], "nvidia-smi", "--query-gpu=uuid", "--format=csv,noheader"]
    rc, out, err = run(module, argv, timeout)
    if rc != 0:
        raise GpuReadError(
            "The container check failed (rc=%d) running %s: %s" % (rc, " ".join(argv[1:]), " ".join((err or out).split())[:500])
        )
    return parse_uuid_list(out)


def validate(params):
    for name in ("expected_count", "min_count", "min_memory_mib"):
        if params[name] is not None and params[name] < 0:
            raise GpuReadError("%s must be 0 or more, got %d." % (name, params[name]))
    if params["timeout"] <= 0:
        raise GpuReadError("timeout must be greater than 0, got %d." % params["timeout"])
    if params["min_driver_version"]:
        try:
            version_tuple(params["min_driver_version"])
        except ValueError:
            raise GpuReadError("min_driver_version must look like 550 or 550.90.07, got %r." % params["min_driver_version"])


def main():
    module = AnsibleModule(
        argument_spec=dict(
            backend=dict(type="str", choices=["auto", "nvml", "nvidia-smi"], default="auto"),
            nvidia_smi=dict(type="path"),
            expected_count=dict(type="int"),
            min_count=dict(type="int"),
            min_memory_mib=dict(type="int"),
            min_driver_version=dict(type="str"),
            require_persistence=dict(type="bool", default=False),
            mig=dict(type="str", choices=["disabled", "enabled", "any"], default="any"),
            container_check=dict(type="str"),
            container_gpu_request=dict(type="str", choices=["gpus", "cdi"], default="gpus"),
            container_cli=dict(type="path"),
            timeout=dict(type="int", default=120),
        ),
        supports_check_mode=True,
    )
    params = module.params
    backend = params["backend"]
    if backend == "nvml" and pynvml is None:
        module.fail_json(msg=missing_required_lib("nvidia-ml-py"), exception=PYNVML_IMPORT_ERROR)
    if backend == "auto":
        backend = "nvml" if pynvml is not None else "nvidia-smi"

    try:
        validate(params)
        gpus = read_nvml(pynvml) if backend == "nvml" else read_nvidia_smi(module, params["timeout"])
    except GpuReadError as exc:
        module.fail_json(msg=str(exc), backend=backend)

    driver_versions = sorted(set(gpu["driver_version"] for gpu in gpus if gpu["driver_version"]))
    result = dict(
        changed=False,
        backend=backend,
        gpus=gpus,
        count=len(gpus),
        driver_version=driver_versions[0] if driver_versions else None,
    )
    problems = check_expectations(gpus, params)
    if problems:
        module.fail_json(msg="GPU check failed: " + "; ".join(problems) + ".", **result)

    if params["container_check"]:
        try:
            result["container_uuids"] = container_uuids(module, params["timeout"])
        except GpuReadError as exc:
            module.fail_json(msg=str(exc), **result)
        host_uuids = sorted(gpu["uuid"] for gpu in gpus)
        if sorted(result["container_uuids"]) != host_uuids:
            module.fail_json(
                msg="The container sees GPUs %s, the host has %s." % (sorted(result["container_uuids"]) or "none", host_uuids or "none"),
                **result
            )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
