"""Verifies the nvidia_container_toolkit role on hosts without a GPU or NVIDIA's repository."""

from __future__ import annotations

import json

from conftest import apt_update_with, signature_refused_with_other_key

testinfra_hosts = ["ansible://molecule_hosts"]

SOURCES = "/etc/apt/sources.list.d/ai-infra-nvidia-container-toolkit.sources"
KEYRING = "/etc/apt/keyrings/ai-infra-nvidia-container-toolkit.asc"


def daemon_json(host):
    return json.loads(host.file("/etc/docker/daemon.json").content_string)


def test_daemon_json_merged_keeping_unrelated_keys(host):
    config = daemon_json(host)
    assert config["log-driver"] == "json-file"
    assert config["log-opts"] == {"max-size": "10m", "max-file": "3"}
    assert config["runtimes"]["runc-debug"] == {"path": "/usr/bin/runc", "runtimeArgs": ["--debug"]}
    assert config["runtimes"]["nvidia"] == {"path": "nvidia-container-runtime", "args": []}
    assert "default-runtime" not in config
    assert host.file("/etc/docker/daemon.json").mode == 0o644


def test_docker_running_with_the_nvidia_runtime(host):
    docker = host.service("docker")
    assert docker.is_running and docker.is_enabled
    runtimes = json.loads(host.check_output("docker info --format '{{json .Runtimes}}'"))
    assert runtimes["nvidia"]["path"] == "nvidia-container-runtime"
    assert "runc-debug" in runtimes
    # The unrelated settings reached the daemon too, not just the file.
    assert host.check_output("docker info --format '{{.LoggingDriver}}'") == "json-file"


def test_docker_restarted_once_not_on_every_run(host):
    # Converge restarted Docker once for the new runtime; idempotence (a second converge
    # with no change) must not have restarted it again: one start since the first.
    starts = host.check_output("journalctl -u docker --no-pager -o cat | grep -c 'Daemon has completed initialization'")
    assert int(starts) == 2  # the package's first start, then the handler's restart


def test_repository_deb822_with_its_own_keyring(host):
    sources = host.file(SOURCES)
    assert sources.mode == 0o644
    text = sources.content_string
    assert "URIs: file:/srv/nvidia-mirror/stable/deb/$(ARCH)" in text
    assert "Suites: /" in text and "Components" not in text
    assert f"Signed-By: {KEYRING}" in text
    assert host.file(KEYRING).content_string.startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")


def test_repository_signature_checked_against_that_keyring(host):
    good = apt_update_with(host, SOURCES)
    assert good.rc == 0 and "W:" not in good.stdout + good.stderr, good.stdout + good.stderr
    assert signature_refused_with_other_key(host, SOURCES)
