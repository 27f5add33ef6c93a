"""Verifies what the nvidia_driver role does on a host without a GPU (the CI machine)."""

from __future__ import annotations

import pytest
import testinfra.modules.ansible

testinfra_hosts = ["ansible://molecule_hosts"]

DEBIAN_PACKAGES = ["nvidia-open-kernel-dkms", "firmware-nvidia-gsp", "nvidia-smi", "libnvidia-ml1", "libcuda1",
                   "nvidia-persistenced", "nvidia-modprobe"]
BRANCH = {"12": "535", "13": "550"}


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
    # (testinfra raises on failed results when the callback reports "failed"; the ad-hoc
    # result it gets here carries only the module's own keys, so both shapes are accepted.)
    try:
        result = host.ansible("ai_infra.langgraph_stack.gpu_visibility", "backend=nvidia-smi", check=False)
    except testinfra.modules.ansible.AnsibleException as exc:
        result = exc.result
    assert "gpus" not in result  # the failure path returns no GPU list
    assert result["msg"].startswith("nvidia-smi found no usable GPU: NVIDIA-SMI has failed because it couldn't communicate")
    assert "Traceback" not in str(result)
