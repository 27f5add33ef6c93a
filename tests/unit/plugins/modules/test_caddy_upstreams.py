"""Unit tests of the caddy_upstreams module: the fragment it writes, drain and restore, refusals.

Caddy itself reads the fragment in molecule/caddy and molecule/fleet (a reload with a drained
server, requests in flight finishing); here the file logic runs on a temporary directory.
"""

from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.ai_infra.langgraph_stack.plugins.modules import caddy_upstreams
from ansible_collections.ai_infra.langgraph_stack.tests.unit.plugins.modules.utils import (
    AnsibleFailJson,
    run_module,
)

FLEET = [
    {"name": "worker-1", "address": "10.0.0.5:8123"},
    {"name": "worker-2", "address": "10.0.0.6:8123"},
    {"name": "worker-3", "address": "[fd00::7]:8123"},
]


@pytest.fixture()
def fragment(tmp_path):
    return str(tmp_path / "upstreams.caddy")


def run(fragment, check_mode=False, **args):
    return run_module(caddy_upstreams.main, dict(path=fragment, _ansible_diff=True, **args), check_mode=check_mode)


def to_lines(fragment):
    with open(fragment) as handle:
        return [line for line in handle.read().splitlines() if not line.startswith("# Managed") and "Drained servers" not in line]


def test_first_write_lists_every_server(fragment):
    result = run(fragment, upstreams=FLEET)
    assert result["changed"] is True
    assert result["serving"] == ["worker-1", "worker-2", "worker-3"]
    assert result["drained"] == []
    assert to_lines(fragment) == [
        "to 10.0.0.5:8123 # upstream worker-1",
        "to 10.0.0.6:8123 # upstream worker-2",
        "to [fd00::7]:8123 # upstream worker-3",
    ]
    assert result["diff"]["before"] == ""


def test_same_list_again_changes_nothing(fragment):
    run(fragment, upstreams=FLEET)
    result = run(fragment, upstreams=FLEET)
    assert result["changed"] is False


def test_drain_keeps_the_server_as_a_comment_and_restore_brings_it_back(fragment):
    run(fragment, upstreams=FLEET)
    drained = run(fragment, drain=["worker-2"])
    assert drained["changed"] is True
    assert drained["serving"] == ["worker-1", "worker-3"]
    assert drained["drained"] == ["worker-2"]
    assert "# drained: to 10.0.0.6:8123 # upstream worker-2" in to_lines(fragment)
    assert run(fragment, drain=["worker-2"])["changed"] is False
    restored = run(fragment, restore=["worker-2"])
    assert restored["changed"] is True
    assert restored["drained"] == []
    assert "to 10.0.0.6:8123 # upstream worker-2" in to_lines(fragment)


def test_a_full_list_keeps_what_was_drained(fragment):
    """A site.yml run (the role passes every server) must not undo a rollout's drain."""
    run(fragment, upstreams=FLEET)
    run(fragment, drain=["worker-1"])
    result = run(fragment, upstreams=FLEET)
    assert result["changed"] is False
    assert result["drained"] == ["worker-1"]


def test_a_server_gone_from_the_inventory_is_forgotten(fragment):
    run(fragment, upstreams=FLEET)
    run(fragment, drain=["worker-3"])
    result = run(fragment, upstreams=FLEET[:2])
    assert result["serving"] == ["worker-1", "worker-2"]
    assert result["drained"] == []


def test_an_address_change_is_written(fragment):
    run(fragment, upstreams=FLEET)
    moved = [dict(FLEET[0], address="10.0.0.9:8123")] + FLEET[1:]
    result = run(fragment, upstreams=moved)
    assert result["changed"] is True
    assert "to 10.0.0.9:8123 # upstream worker-1" in to_lines(fragment)


def test_check_mode_writes_nothing_and_shows_the_diff(fragment):
    run(fragment, upstreams=FLEET)
    with open(fragment) as handle:
        before = handle.read()
    result = run(fragment, check_mode=True, drain=["worker-1"])
    assert result["changed"] is True
    assert "# drained: to 10.0.0.5:8123" in result["diff"]["after"]
    with open(fragment) as handle:
        assert handle.read() == before


def test_check_mode_on_a_fresh_host_creates_nothing(fragment):
    result = run(fragment, check_mode=True, upstreams=FLEET)
    assert result["changed"] is True
    assert not os.path.exists(fragment)


def test_file_mode_is_applied(fragment):
    run(fragment, upstreams=FLEET, mode="0640")
    assert stat.S_IMODE(os.stat(fragment).st_mode) == 0o640
    assert run(fragment, upstreams=FLEET, mode="0640")["changed"] is False


def fails(fragment, **args):
    with pytest.raises(AnsibleFailJson) as failure:
        run(fragment, **args)
    return failure.value.result["msg"]


def test_refuses_to_drain_the_last_serving_server(fragment):
    run(fragment, upstreams=FLEET[:1])
    msg = fails(fragment, drain=["worker-1"])
    assert "no LangGraph server to send requests to" in msg
    assert "worker-1" in msg


def test_refuses_to_drain_everything_at_once(fragment):
    run(fragment, upstreams=FLEET)
    assert "no LangGraph server" in fails(fragment, drain=["worker-1", "worker-2", "worker-3"])


def test_unknown_names_are_named(fragment):
    run(fragment, upstreams=FLEET)
    msg = fails(fragment, drain=["worker-9"])
    assert "no upstream named worker-9" in msg
    assert "worker-1, worker-2, worker-3" in msg


def test_drain_and_restore_of_one_name(fragment):
    run(fragment, upstreams=FLEET)
    assert "cannot be drained and restored at once" in fails(fragment, drain=["worker-1"], restore=["worker-1"])


def test_drain_without_a_file(fragment):
    assert "does not exist and no upstreams were given" in fails(fragment, drain=["worker-1"])


def test_empty_list(fragment):
    assert "at least one upstream" in fails(fragment, upstreams=[])


@pytest.mark.parametrize(
    "address",
    ["10.0.0.5", "10.0.0.5:8123 extra", "fd00::7:8123", "host:port", "10.0.0.5:8123#x", "{10.0.0.5}:8123", ""],
)
def test_bad_addresses(fragment, address):
    msg = fails(fragment, upstreams=[{"name": "worker-1", "address": address}])
    assert "expected host:port" in msg


@pytest.mark.parametrize("name", ["worker 1", "worker#1", "w{1}", ""])
def test_bad_names(fragment, name):
    assert "characters a Caddyfile cannot hold" in fails(fragment, upstreams=[{"name": name, "address": "10.0.0.5:8123"}])


def test_duplicate_names(fragment):
    assert "listed twice: worker-1" in fails(fragment, upstreams=[FLEET[0], FLEET[0]])


def test_a_hand_edited_file_is_refused(fragment):
    with open(fragment, "w") as handle:
        handle.write("to 10.0.0.5:8123\n")
    msg = fails(fragment, drain=["worker-1"])
    assert "line 1 is not one this module writes" in msg


def test_an_unreadable_path(tmp_path):
    directory = tmp_path / "a-directory"
    directory.mkdir()
    assert "cannot read" in fails(str(directory), upstreams=FLEET)


def test_a_missing_directory(tmp_path):
    assert "does not exist" in fails(str(tmp_path / "nowhere" / "upstreams.caddy"), upstreams=FLEET)
