"""Unit tests for gpu_visibility on nvidia-smi outputs (fixtures/nvidia_smi/SOURCES.md says
where each comes from) and on a stand-in for pynvml."""

from __future__ import annotations

import os
import pathlib
import types
from unittest import mock

import pytest
from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ai_infra.langgraph_stack.plugins.module_utils import gpu_visibility as gv
from ansible_collections.ai_infra.langgraph_stack.plugins.modules import gpu_visibility

from ansible_collections.ai_infra.langgraph_stack.tests.unit.plugins.modules.utils import AnsibleFailJson, run_module

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "nvidia_smi"
SMI = "/usr/bin/nvidia-smi"


def fixture(name):
    path = FIXTURES / name
    return path.read_text() if path.exists() else ""


class FakeHost:
    """Answers run_command like a host whose nvidia-smi printed a fixture's outputs
    (transcriptions of published nvidia-smi outputs, not captures: SOURCES.md)."""

    def __init__(self, transcription, rc=0, remapped_rc=0, container=None, stdout=None):
        self.query = stdout if stdout is not None else fixture(transcription + ".query-gpu.txt")
        self.remapped = fixture(transcription + ".query-remapped-rows.txt")
        self.rc, self.remapped_rc, self.container = rc, remapped_rc, container
        self.calls = []

    def __call__(self, module, argv, **kwargs):
        self.calls.append(argv)
        argv = argv[2:]  # timeout N
        if argv[0].endswith("docker"):
            return self.container
        if argv[1].startswith("--query-remapped-rows"):
            return self.remapped_rc, self.remapped, ""
        return self.rc, self.query, ""


def run(host, check_mode=False, **args):
    def run_command(module, argv, **kwargs):
        return host(module, argv, **kwargs)

    with mock.patch.object(gpu_visibility, "pynvml", None), mock.patch.object(
        AnsibleModule, "run_command", run_command
    ), mock.patch.object(AnsibleModule, "get_bin_path", lambda self, name, **kw: "/usr/bin/" + name):
        return run_module(gpu_visibility.main, args, check_mode=check_mode)


def fails(host, **args):
    with pytest.raises(AnsibleFailJson) as exc:
        run(host, **args)
    return exc.value.result


# --- parsing the transcriptions -------------------------------------------------------------


def test_h100_sxm_every_field():
    result = run(FakeHost("h100_sxm"), expected_count=1, min_memory_mib=80000, require_persistence=True, mig="disabled")
    assert result["changed"] is False and result["backend"] == "nvidia-smi"
    assert result["count"] == 1 and result["driver_version"] == "550.90.07"
    assert result["gpus"] == [
        {
            "index": 0,
            "uuid": "GPU-5f2b9c3e-8a41-4d7e-b6c0-1e9f3a7d2c54",
            "name": "NVIDIA H100 80GB HBM3",
            "pci_bus_id": "00000000:19:00.0",
            "memory_total_mib": 81559,
            "driver_version": "550.90.07",
            "compute_capability": "9.0",
            "persistence_mode": True,
            "mig_mode": False,
            "ecc_uncorrected": 0,
            "remapped_rows_pending": False,
            "remapped_rows_failure": False,
            "pcie_gen": 5,
            "pcie_width": 16,
        }
    ]


def test_eight_h100_in_order():
    result = run(FakeHost("h100_sxm_x8"), expected_count=8, min_count=8)
    assert [gpu["index"] for gpu in result["gpus"]] == list(range(8))
    assert len({gpu["uuid"] for gpu in result["gpus"]}) == 8
    assert result["gpus"][7]["pci_bus_id"] == "00000000:DB:00.0"


def test_h100_pcie_without_persistence_is_named():
    result = fails(FakeHost("h100_pcie"), require_persistence=True)
    assert result["msg"] == (
        "GPU check failed: expected persistence mode on GPU 0 (NVIDIA H100 PCIe), found disabled."
    )
    assert result["gpus"][0]["persistence_mode"] is False


def test_l40s_na_mig_counts_as_disabled_and_memory_is_checked():
    result = run(FakeHost("l40s"), mig="disabled", min_memory_mib=46000)
    assert result["gpus"][0]["mig_mode"] is None
    assert result["gpus"][0]["compute_capability"] == "8.9"
    assert fails(FakeHost("l40s"), min_memory_mib=80000)["msg"] == (
        "GPU check failed: expected at least 80000 MiB on GPU 0 (NVIDIA L40S), found 46068 MiB."
    )
    assert "expected MIG enabled on GPU 0 (NVIDIA L40S), found not supported" in fails(FakeHost("l40s"), mig="enabled")["msg"]


def test_mig_enabled_gpu():
    assert run(FakeHost("h100_mig"), mig="enabled")["gpus"][0]["mig_mode"] is True
    assert "expected MIG disabled on GPU 0 (NVIDIA H100 80GB HBM3), found enabled" in fails(FakeHost("h100_mig"), mig="disabled")["msg"]


def test_na_fields_are_null_not_strings():
    gpu = run(FakeHost("na_fields", remapped_rc=3))["gpus"][0]
    for key in ("compute_capability", "persistence_mode", "mig_mode", "ecc_uncorrected", "pcie_gen", "pcie_width",
                "remapped_rows_pending", "remapped_rows_failure"):
        assert gpu[key] is None, key
    assert gpu["memory_total_mib"] == 23034


def test_remapped_rows_pending_and_failed_both_named():
    result = fails(FakeHost("remapped_rows"))
    assert "GPU 0 (GPU-0c9e4b7a-2f61-4d38-9a15-e8b3c6d2f470) has row remaps pending: reset the GPU or reboot" in result["msg"]
    assert "GPU 1 (GPU-6a1d8f3c-7e25-4b90-b4c7-1f0e9d2a8b63) has a row-remapping failure: it needs replacing" in result["msg"]
    assert [gpu["remapped_rows_pending"] for gpu in result["gpus"]] == [True, False]


def test_uncorrected_ecc_errors_fail():
    result = fails(FakeHost("ecc_errors"))
    assert "has 4 uncorrected ECC errors since the driver loaded" in result["msg"]


def test_driver_library_mismatch_is_one_sentence():
    host = FakeHost("none", rc=18, stdout=fixture("version_mismatch.stdout.txt"))
    result = fails(host)
    assert result["msg"].startswith("nvidia-smi reports a driver/library version mismatch")
    assert "NVML library version: 550.127" in result["msg"] and "\n" not in result["msg"]


def test_empty_output_means_no_gpu():
    assert fails(FakeHost("empty"))["msg"] == "GPU check failed: expected at least one GPU, found none."
    assert run(FakeHost("empty"), expected_count=0)["count"] == 0


def test_no_devices_found():
    result = fails(FakeHost("none", rc=6, stdout="No devices were found\n"))
    assert result["msg"] == "nvidia-smi found no usable GPU: No devices were found"


def test_count_and_driver_expectations_name_both_sides():
    msg = fails(FakeHost("h100_sxm"), expected_count=8, min_count=2, min_driver_version="570")["msg"]
    assert "expected 8 GPUs, found 1" in msg
    assert "expected at least 2 GPUs, found 1" in msg
    assert "expected driver 570 or newer, found 550.90.07" in msg
    assert run(FakeHost("h100_sxm"), min_driver_version="550.90.07")["count"] == 1
    assert run(FakeHost("h100_sxm"), min_driver_version="535")["count"] == 1


def test_runs_the_same_in_check_mode():
    assert run(FakeHost("h100_sxm"), check_mode=True)["count"] == 1


# --- malformed output and bad input ---------------------------------------------------------


def test_wrong_field_count_is_reported_not_a_traceback():
    msg = fails(FakeHost("none", stdout="0, GPU-1, NVIDIA H100\n"))["msg"]
    assert msg.startswith("Unexpected --query-gpu output from nvidia-smi (3 fields where 12 were asked for)")


def test_non_numeric_memory_is_reported():
    bad = fixture("h100_sxm.query-gpu.txt").replace("81559", "lots")
    assert fails(FakeHost("none", stdout=bad))["msg"] == "nvidia-smi printed 'lots' for memory.total, which is not a number."


@pytest.mark.parametrize(
    "args, message",
    [
        ({"min_count": -1}, "min_count must be 0 or more, got -1."),
        ({"timeout": 0}, "timeout must be greater than 0, got 0."),
        ({"min_driver_version": "R550"}, "min_driver_version must look like 550 or 550.90.07, got 'R550'."),
    ],
)
def test_bad_parameters(args, message):
    assert fails(FakeHost("h100_sxm"), **args)["msg"] == message


def test_missing_nvidia_smi():
    with mock.patch.object(gpu_visibility, "pynvml", None), mock.patch.object(
        AnsibleModule, "get_bin_path", lambda self, name, **kw: None
    ), pytest.raises(AnsibleFailJson) as exc:
        run_module(gpu_visibility.main, {})
    assert exc.value.result["msg"] == "nvidia-smi not found: no NVIDIA driver on this host (or it is not on PATH)."


def test_given_nvidia_smi_path_must_exist(tmp_path):
    result = fails(FakeHost("h100_sxm"), nvidia_smi=str(tmp_path / "nvidia-smi"))
    assert result["msg"] == "nvidia-smi not found: %s is not an executable file." % (tmp_path / "nvidia-smi")


def test_hung_nvidia_smi_times_out():
    assert fails(FakeHost("none", rc=124, stdout=""), timeout=5)["msg"] == "nvidia-smi did not answer within 5 seconds."


def test_nvml_requested_without_the_library():
    with mock.patch.object(gpu_visibility, "pynvml", None), pytest.raises(AnsibleFailJson) as exc:
        run_module(gpu_visibility.main, {"backend": "nvml"})
    assert "nvidia-ml-py" in exc.value.result["msg"]


# --- container check ------------------------------------------------------------------------


def uuids(transcription):
    return "".join(line.split(", ")[1] + "\n" for line in fixture(transcription + ".query-gpu.txt").splitlines())


def test_container_sees_exactly_the_host_gpus():
    host = FakeHost("h100_sxm_x8", container=(0, uuids("h100_sxm_x8"), ""))
    result = run(host, container_check="cuda:base", container_gpu_request="cdi")
    assert len(result["container_uuids"]) == 8
    docker_call = host.calls[-1][2:]
    assert docker_call[:5] == ["/usr/bin/docker", "run", "--rm", "--device", "nvidia.com/gpu=all"]
    assert docker_call[5] == "cuda:base"


def test_container_seeing_fewer_gpus_fails():
    host = FakeHost("h100_sxm_x8", container=(0, uuids("h100_sxm_x8").split("\n", 1)[1], ""))
    msg = fails(host, container_check="cuda:base")["msg"]
    assert msg.startswith("The container sees GPUs [") and "the host has [" in msg


def test_container_without_runtime_reports_docker_error():
    error = 'docker: Error response from daemon: could not select device driver "" with capabilities: [[gpu]].\n'
    host = FakeHost("h100_sxm", container=(125, "", error))
    msg = fails(host, container_check="cuda:base")["msg"]
    assert msg.startswith("The container check failed (rc=125) running run --rm --gpus all cuda:base nvidia-smi")
    assert "could not select device driver" in msg


def test_container_printing_garbage_is_reported():
    host = FakeHost("h100_sxm", container=(0, "exec: nvidia-smi: not found\n", ""))
    assert fails(host, container_check="cuda:base")["msg"].startswith("The container printed something other than GPU UUIDs")


# --- NVML backend ---------------------------------------------------------------------------


def fake_pynvml(init_error=None, unsupported=()):
    """A stand-in for pynvml shaped after nvidia-ml-py's API, answering as one H100 SXM."""

    class NVMLError(Exception):
        pass

    class NVMLError_NotSupported(NVMLError):  # noqa: N801 (pynvml's own name)
        pass

    def call(name, value):
        def function(*args):
            if name in unsupported:
                raise NVMLError_NotSupported("Not Supported")
            return value

        return function

    def init():
        if init_error:
            raise NVMLError(init_error)

    return types.SimpleNamespace(
        NVMLError=NVMLError,
        NVMLError_NotSupported=NVMLError_NotSupported,
        NVML_FEATURE_ENABLED=1,
        NVML_DEVICE_MIG_ENABLE=1,
        NVML_MEMORY_ERROR_TYPE_UNCORRECTED=1,
        NVML_VOLATILE_ECC=0,
        nvmlInit=init,
        nvmlShutdown=lambda: None,
        nvmlSystemGetDriverVersion=call("driver", "550.90.07"),
        nvmlDeviceGetCount=call("count", 1),
        nvmlDeviceGetHandleByIndex=call("handle", object()),
        nvmlDeviceGetUUID=call("uuid", "GPU-5f2b9c3e-8a41-4d7e-b6c0-1e9f3a7d2c54"),
        nvmlDeviceGetName=call("name", b"NVIDIA H100 80GB HBM3"),
        nvmlDeviceGetPciInfo=call("pci", types.SimpleNamespace(busId=b"00000000:19:00.0")),
        nvmlDeviceGetMemoryInfo=call("memory", types.SimpleNamespace(total=81559 * 1024 * 1024)),
        nvmlDeviceGetCudaComputeCapability=call("cc", (9, 0)),
        nvmlDeviceGetPersistenceMode=call("persistence", 1),
        nvmlDeviceGetMigMode=call("mig", [0, 0]),
        nvmlDeviceGetTotalEccErrors=call("ecc", 0),
        nvmlDeviceGetRemappedRows=call("remapped", (0, 0, 0, 0)),
        nvmlDeviceGetMaxPcieLinkGeneration=call("gen", 5),
        nvmlDeviceGetMaxPcieLinkWidth=call("width", 16),
    )


def test_nvml_gives_the_same_gpu_as_nvidia_smi():
    with mock.patch.object(gpu_visibility, "pynvml", fake_pynvml()):
        nvml = run_module(gpu_visibility.main, {"backend": "auto"})
    smi = run(FakeHost("h100_sxm"))
    assert nvml["backend"] == "nvml"
    assert nvml["gpus"] == smi["gpus"]


def test_nvml_unsupported_fields_are_null():
    gpu = gv.read_nvml(fake_pynvml(unsupported={"mig", "remapped", "ecc", "cc"}))[0]
    assert gpu["mig_mode"] is None and gpu["remapped_rows_pending"] is None and gpu["ecc_uncorrected"] is None
    assert gpu["compute_capability"] is None


def test_nvml_that_cannot_initialize():
    with mock.patch.object(gpu_visibility, "pynvml", fake_pynvml(init_error="Driver Not Loaded")), pytest.raises(
        AnsibleFailJson
    ) as exc:
        run_module(gpu_visibility.main, {"backend": "nvml"})
    assert exc.value.result["msg"] == "NVML could not initialize: Driver Not Loaded"


def test_fixture_sources_are_documented():
    documented = (FIXTURES / "SOURCES.md").read_text()
    for name in os.listdir(FIXTURES):
        if name != "SOURCES.md":
            assert "`%s" % name.split(".")[0] in documented, name
