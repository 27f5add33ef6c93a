# -*- coding: utf-8 -*-
# Copyright: ai_infra platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Reading NVIDIA GPUs (nvidia-smi CSV or NVML) and checking them against expectations.

Pure functions, no Ansible imports: the gpu_visibility module and its unit tests share them,
and the unit tests feed them recorded nvidia-smi outputs.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

# (nvidia-smi --query-gpu field, key in the returned dict, converter name)
GPU_FIELDS = (
    ("index", "index", "int"),
    ("uuid", "uuid", "str"),
    ("name", "name", "str"),
    ("pci.bus_id", "pci_bus_id", "str"),
    ("memory.total", "memory_total_mib", "int"),
    ("driver_version", "driver_version", "str"),
    ("compute_cap", "compute_capability", "str"),
    ("persistence_mode", "persistence_mode", "enabled"),
    ("mig.mode.current", "mig_mode", "enabled"),
    ("ecc.errors.uncorrected.volatile.total", "ecc_uncorrected", "int"),
    ("pcie.link.gen.max", "pcie_gen", "int"),
    ("pcie.link.width.max", "pcie_width", "int"),
)
REMAPPED_FIELDS = ("gpu_uuid", "remapped_rows.pending", "remapped_rows.failure")

QUERY_GPU_ARGS = [
    "--query-gpu=" + ",".join(field for field, _key, _conv in GPU_FIELDS),
    "--format=csv,noheader,nounits",
]
QUERY_REMAPPED_ARGS = [
    "--query-remapped-rows=" + ",".join(REMAPPED_FIELDS),
    "--format=csv,noheader,nounits",
]

# What nvidia-smi prints for a value a GPU does not have or will not tell.
_MISSING = {"[n/a]", "n/a", "[not supported]", "not supported", "[unknown error]", "[insufficient permissions]", ""}
_TRUE = {"enabled", "yes", "true", "1", "on"}
_FALSE = {"disabled", "no", "false", "0", "off"}


class GpuReadError(Exception):
    """The GPUs could not be read; the message is one sentence for the operator."""


def _convert(value, kind, field):
    text = value.strip()
    if text.lower() in _MISSING:
        return None
    if kind == "int":
        try:
            return int(text)
        except ValueError:
            raise GpuReadError("nvidia-smi printed %r for %s, which is not a number." % (text, field))
    if kind == "enabled":
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise GpuReadError("nvidia-smi printed %r for %s, expected Enabled or Disabled." % (text, field))
    return text


def _csv_rows(output, width, what):
    rows = []
    for line in output.splitlines():
        if not line.strip():
            continue
        cells = [cell.strip() for cell in line.split(",")]
        if len(cells) != width:
            raise GpuReadError(
                "Unexpected %s output from nvidia-smi (%d fields where %d were asked for): %s"
                % (what, len(cells), width, line.strip()[:200])
            )
        rows.append(cells)
    return rows


def explain_failure(rc, stdout, stderr):
    """One sentence for a failed nvidia-smi run, naming the known causes."""
    text = " ".join((stderr or "").split() + (stdout or "").split())
    if "version mismatch" in text.lower():
        return (
            "nvidia-smi reports a driver/library version mismatch: the loaded kernel module and "
            "the user-space driver differ (a driver upgrade without a reboot): %s" % text
        )
    if "couldn't communicate with the nvidia driver" in text.lower() or "no devices were found" in text.lower():
        return "nvidia-smi found no usable GPU: %s" % text
    return "nvidia-smi failed (rc=%s): %s" % (rc, text or "no output")


def parse_query_gpu(output):
    """Parse `nvidia-smi --query-gpu=<GPU_FIELDS> --format=csv,noheader,nounits`."""
    gpus = []
    for cells in _csv_rows(output, len(GPU_FIELDS), "--query-gpu"):
        gpu = {}
        for (field, key, kind), cell in zip(GPU_FIELDS, cells):
            gpu[key] = _convert(cell, kind, field)
        gpu["remapped_rows_pending"] = None
        gpu["remapped_rows_failure"] = None
        gpus.append(gpu)
    return gpus


def merge_remapped_rows(gpus, output):
    """Add remapped-row states from `nvidia-smi --query-remapped-rows=<REMAPPED_FIELDS>`."""
    by_uuid = dict((gpu["uuid"], gpu) for gpu in gpus)
    for uuid, pending, failure in _csv_rows(output, len(REMAPPED_FIELDS), "--query-remapped-rows"):
        gpu = by_uuid.get(uuid)
        if gpu is not None:
            gpu["remapped_rows_pending"] = _convert(pending, "enabled", "remapped_rows.pending")
            gpu["remapped_rows_failure"] = _convert(failure, "enabled", "remapped_rows.failure")
    return gpus


def version_tuple(version):
    """'535.261.03' -> (535, 261, 3); raises ValueError on anything else."""
    if not re.match(r"^\d+(\.\d+)*$", str(version).strip()):
        raise ValueError("not a version: %r" % (version,))
    return tuple(int(part) for part in str(version).strip().split("."))


def check_expectations(gpus, expect):
    """Return a list of sentences, one per unmet expectation (empty when all hold)."""
    problems = []
    count = len(gpus)
    if expect.get("expected_count") is None and expect.get("min_count") is None and count == 0:
        problems.append("expected at least one GPU, found none")
    if expect.get("expected_count") is not None and count != expect["expected_count"]:
        problems.append("expected %d GPUs, found %d" % (expect["expected_count"], count))
    if expect.get("min_count") is not None and count < expect["min_count"]:
        problems.append("expected at least %d GPUs, found %d" % (expect["min_count"], count))
    if expect.get("min_memory_mib") is not None:
        for gpu in gpus:
            memory = gpu["memory_total_mib"]
            if memory is None or memory < expect["min_memory_mib"]:
                problems.append(
                    "expected at least %d MiB on GPU %s (%s), found %s"
                    % (expect["min_memory_mib"], gpu["index"], gpu["name"], "no figure" if memory is None else "%d MiB" % memory)
                )
    if expect.get("min_driver_version"):
        wanted = version_tuple(expect["min_driver_version"])
        for version in sorted(set(gpu["driver_version"] or "unknown" for gpu in gpus)):
            try:
                too_old = version_tuple(version) < wanted
            except ValueError:
                too_old = True
            if too_old:
                problems.append("expected driver %s or newer, found %s" % (expect["min_driver_version"], version))
    if expect.get("require_persistence"):
        for gpu in gpus:
            if gpu["persistence_mode"] is not True:
                problems.append(
                    "expected persistence mode on GPU %s (%s), found %s"
                    % (gpu["index"], gpu["name"], _state(gpu["persistence_mode"]))
                )
    mig = expect.get("mig", "any")
    if mig in ("enabled", "disabled"):
        for gpu in gpus:
            found = gpu["mig_mode"]
            # A GPU without MIG support (found None) satisfies "disabled".
            if (mig == "enabled" and found is not True) or (mig == "disabled" and found is True):
                problems.append("expected MIG %s on GPU %s (%s), found %s" % (mig, gpu["index"], gpu["name"], _state(found)))
    for gpu in gpus:
        if gpu["remapped_rows_failure"]:
            problems.append("GPU %s (%s) has a row-remapping failure: it needs replacing" % (gpu["index"], gpu["uuid"]))
        elif gpu["remapped_rows_pending"]:
            problems.append("GPU %s (%s) has row remaps pending: reset the GPU or reboot" % (gpu["index"], gpu["uuid"]))
        if gpu["ecc_uncorrected"]:
            problems.append(
                "GPU %s (%s) has %d uncorrected ECC errors since the driver loaded"
                % (gpu["index"], gpu["uuid"], gpu["ecc_uncorrected"])
            )
    return problems


def _state(value):
    return {True: "enabled", False: "disabled", None: "not supported"}[value]


def parse_uuid_list(output):
    """UUIDs printed by `nvidia-smi --query-gpu=uuid --format=csv,noheader` (in a container)."""
    uuids = [line.strip() for line in output.splitlines() if line.strip()]
    bad = [uuid for uuid in uuids if not re.match(r"^(GPU|MIG)-[0-9a-fA-F-]+$", uuid)]
    if bad:
        raise GpuReadError("The container printed something other than GPU UUIDs: %s" % bad[0][:200])
    return uuids


def read_nvml(pynvml):
    """Read the GPUs through NVML (nvidia-ml-py's pynvml, passed in so tests can stand in)."""
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        raise GpuReadError("NVML could not initialize: %s" % exc)
    try:
        driver = _text(pynvml.nvmlSystemGetDriverVersion())
        gpus = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            gpu = {"index": index, "driver_version": driver}
            gpu["uuid"] = _text(pynvml.nvmlDeviceGetUUID(handle))
            gpu["name"] = _text(pynvml.nvmlDeviceGetName(handle))
            gpu["pci_bus_id"] = _text(pynvml.nvmlDeviceGetPciInfo(handle).busId)
            gpu["memory_total_mib"] = pynvml.nvmlDeviceGetMemoryInfo(handle).total // (1024 * 1024)
            capability = _optional(pynvml, pynvml.nvmlDeviceGetCudaComputeCapability, handle)
            gpu["compute_capability"] = None if capability is None else "%d.%d" % tuple(capability)
            persistence = _optional(pynvml, pynvml.nvmlDeviceGetPersistenceMode, handle)
            gpu["persistence_mode"] = None if persistence is None else persistence == pynvml.NVML_FEATURE_ENABLED
            mig = _optional(pynvml, pynvml.nvmlDeviceGetMigMode, handle)
            gpu["mig_mode"] = None if mig is None else mig[0] == pynvml.NVML_DEVICE_MIG_ENABLE
            gpu["ecc_uncorrected"] = _optional(
                pynvml,
                pynvml.nvmlDeviceGetTotalEccErrors,
                handle,
                pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED,
                pynvml.NVML_VOLATILE_ECC,
            )
            remapped = _optional(pynvml, pynvml.nvmlDeviceGetRemappedRows, handle)
            gpu["remapped_rows_pending"] = None if remapped is None else bool(remapped[2])
            gpu["remapped_rows_failure"] = None if remapped is None else bool(remapped[3])
            gpu["pcie_gen"] = _optional(pynvml, pynvml.nvmlDeviceGetMaxPcieLinkGeneration, handle)
            gpu["pcie_width"] = _optional(pynvml, pynvml.nvmlDeviceGetMaxPcieLinkWidth, handle)
            gpus.append(gpu)
        return gpus
    except pynvml.NVMLError as exc:
        raise GpuReadError("NVML failed while reading the GPUs: %s" % exc)
    finally:
        try:
            pynvml.nvmlShutdown()
        except pynvml.NVMLError:
            pass


def _optional(pynvml, function, *args):
    """NVML calls a GPU may not support come back as None, like nvidia-smi's [N/A]."""
    try:
        return function(*args)
    except pynvml.NVMLError_NotSupported:
        return None


def _text(value):
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
