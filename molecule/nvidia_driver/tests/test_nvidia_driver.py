"""Verifies what the nvidia_driver role does on a host without a GPU (the CI machine)."""

from __future__ import annotations

import pathlib

import pytest

from conftest import module_result, run_playbook

testinfra_hosts = ["ansible://molecule_hosts"]

DEBIAN_PACKAGES = ["nvidia-open-kernel-dkms", "firmware-nvidia-gsp", "nvidia-smi", "libnvidia-ml1", "libcuda1",
                   "nvidia-persistenced", "nvidia-modprobe"]
BRANCH = {"12": "535", "13": "550"}
SCENARIO = pathlib.Path(__file__).resolve().parent.parent


def major(host):
    return host.system_info.release.split(".")[0]


def test_nonfree_components_from_debian_signed_source(host):
    sources = host.file("/etc/apt/sources.list.d/ai-infra-debian-nonfree.sources")
    assert sources.mode == 0o644
    assert "Components: contrib non-free non-free-firmware" in sources.content_string
    assert "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" in sources.content_string


@pytest.mark.parametrize("package", DEBIAN_PACKAGES + ["dkms"])
def test_open_driver_packages_of_the_distro_branch(host, package):
    pkg = host.package(package)
    assert pkg.is_installed
    if package in ("nvidia-smi", "nvidia-open-kernel-dkms", "libcuda1"):
        assert pkg.version.startswith(BRANCH[major(host)] + "."), pkg.version


def test_driver_packages_held(host):
    held = set(host.check_output("apt-mark showhold").split())
    assert set(DEBIAN_PACKAGES) <= held
    assert "dkms" not in held


def test_proprietary_modules_not_installed(host):
    assert not host.package("nvidia-kernel-dkms").is_installed


def test_nouveau_blacklisted(host):
    conf = host.file("/etc/modprobe.d/ai-infra-blacklist-nouveau.conf")
    assert "blacklist nouveau" in conf.content_string
    assert "options nouveau modeset=0" in conf.content_string
    assert host.check_output("modprobe --showconfig | grep -c '^blacklist nouveau$' || true") != "0"


def test_persistenced_enabled_for_boot(host):
    assert host.service("nvidia-persistenced").is_enabled


def test_no_fabric_manager_without_nvswitch(host):
    assert not host.package("nvidia-fabricmanager-535").is_installed


def test_gpu_visibility_fails_in_one_sentence_without_a_gpu(host):
    # The driver's user space is installed but no kernel module is loaded: the real
    # nvidia-smi fails, and the module says so without a traceback.
    result = module_result(host, "ai_infra.langgraph_stack.gpu_visibility", "backend=nvidia-smi")
    assert "gpus" not in result  # the failure path returns no GPU list
    assert result["msg"].startswith("nvidia-smi found no usable GPU: NVIDIA-SMI has failed because it couldn't communicate")
    assert "Traceback" not in str(result)


STAND_IN_MODINFO = "/usr/local/sbin/modinfo"


def reboot_decision(host, installed: str, *extra) -> str:
    """reboot_decision.yml on this host with a stand-in modinfo that reports `installed`;
    its output (the play is expected to stop)."""
    host.check_output(f"printf '#!/bin/sh\\necho {installed}\\n' > {STAND_IN_MODINFO} && chmod 0755 {STAND_IN_MODINFO}")
    try:
        run = run_playbook(SCENARIO / "reboot_decision.yml", "--limit", host.backend.get_hostname(), *extra, timeout=300)
    finally:
        host.check_output(f"rm -f {STAND_IN_MODINFO}")
    assert run.returncode != 0, run.stdout[-3000:]
    return run.stdout + run.stderr


def test_a_new_driver_with_none_loaded_stops_before_a_reboot_the_connection_cannot_survive(host):
    output = reboot_decision(host, "550.163.01")
    assert "NVIDIA driver 550.163.01 is installed but no driver is loaded." in output
    assert "(the role does not: the connection is " in output
    assert "Reboot into the new driver" in output and "changed=0" in output


def test_a_new_driver_with_reboots_turned_off_says_so(host):
    output = reboot_decision(host, "550.163.01", "-e", "nvidia_driver_reboot=false", "-e", "molecule_loaded_version=535.247.01")
    assert "NVIDIA driver 550.163.01 is installed but 535.247.01 is loaded." in output
    assert "nvidia_driver_reboot is false" in output


def test_the_loaded_driver_is_the_installed_one_no_reboot(host):
    """No reboot due: the play goes on to the next step (starting nvidia-persistenced,
    which has no kernel module to talk to here, so it stops there instead)."""
    output = reboot_decision(host, "550.163.01", "-e", "molecule_loaded_version=550.163.01")
    assert "is installed but" not in output
    assert "Start nvidia-persistenced" in output
