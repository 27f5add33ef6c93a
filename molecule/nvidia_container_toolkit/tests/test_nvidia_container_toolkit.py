"""Verifies the nvidia_container_toolkit role on hosts without a GPU or NVIDIA's repository."""

from __future__ import annotations

import json
import pathlib

from conftest import apt_update_with, run_playbook, signature_refused_with_other_key

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


PACKAGES = ("nvidia-container-toolkit", "nvidia-container-toolkit-base", "libnvidia-container-tools", "libnvidia-container1")


def installed(host) -> dict:
    """{package: (version, selection)} of the four toolkit packages."""
    out = host.check_output("dpkg-query -W -f='${Package} ${Version} ${db:Status-Want}\\n' " + " ".join(PACKAGES))
    return {name: (version, want) for name, version, want in (line.split() for line in out.splitlines())}


def test_toolkit_installed_at_the_pin_and_held(host):
    # The stand-in packages of prepare.yml, from the signed local repository.
    assert installed(host) == {name: ("1.17.8-1", "hold") for name in PACKAGES}


def test_a_new_pin_moves_the_held_packages(host):
    """A rollout that pins an older toolkit: the four held packages move down together and
    stay held (apt refuses to change held packages unless told to)."""
    scenario = pathlib.Path(__file__).resolve().parent.parent
    run = run_playbook(scenario / "converge.yml", "--limit", host.backend.get_hostname(), "--skip-tags", "molecule-notest",
                       "-e", "nvidia_container_toolkit_version=1.17.7-1")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert installed(host) == {name: ("1.17.7-1", "hold") for name in PACKAGES}
