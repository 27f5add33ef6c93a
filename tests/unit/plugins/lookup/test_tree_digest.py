"""The tree_digest lookup: the same files give the same digest wherever they are; any
change to a file's content, name or presence gives another; bytecode caches do not count."""

from __future__ import annotations

import builtins
import os
import shutil

import pytest
from ansible.errors import AnsibleLookupError

from ansible_collections.ai_infra.langgraph_stack.plugins.lookup.tree_digest import LookupModule, tree_digest


@pytest.fixture(name="app")
def app_fixture(tmp_path):
    root = tmp_path / "app"
    (root / "agent").mkdir(parents=True)
    (root / "agent" / "graph.py").write_text("graph = 1\n")
    (root / "langgraph.json").write_text("{}\n")
    (root / "requirements.txt").write_text("")
    return root


def test_the_same_files_elsewhere_give_the_same_digest(app, tmp_path):
    copy = tmp_path / "elsewhere" / "app"
    shutil.copytree(app, copy)
    assert tree_digest(str(app)) == tree_digest(str(copy))
    assert len(tree_digest(str(app))) == 64


@pytest.mark.parametrize("change", [
    lambda root: (root / "agent" / "graph.py").write_text("graph = 2\n"),
    lambda root: (root / "agent" / "nodes.py").write_text(""),
    lambda root: (root / "requirements.txt").unlink(),
    lambda root: (root / "agent" / "graph.py").rename(root / "agent" / "graph2.py"),
    lambda root: (root / "agent" / "graph.py").rename(root / "graph.py"),
    lambda root: (root / "empty").mkdir() or (root / "empty" / "x").write_text(""),
])
def test_any_change_gives_another_digest(app, change):
    before = tree_digest(str(app))
    change(app)
    assert tree_digest(str(app)) != before


def test_bytecode_caches_do_not_count(app):
    before = tree_digest(str(app))
    (app / "agent" / "__pycache__").mkdir()
    (app / "agent" / "__pycache__" / "graph.cpython-311.pyc").write_bytes(b"\x00")
    (app / "stray.pyc").write_bytes(b"\x00")
    assert tree_digest(str(app)) == before


def test_path_and_content_cannot_trade_places(tmp_path):
    # "a" holding "bc" and "ab" holding "c" must not hash alike.
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    (one / "a").write_text("bc")
    (two / "ab").write_text("c")
    assert tree_digest(str(one)) != tree_digest(str(two))


def test_a_missing_directory_is_one_sentence(tmp_path):
    with pytest.raises(AnsibleLookupError, match=r"is not a directory on the controller"):
        tree_digest(str(tmp_path / "missing"))
    (tmp_path / "file").write_text("")
    with pytest.raises(AnsibleLookupError, match=r"is not a directory"):
        tree_digest(str(tmp_path / "file"))


def test_an_unreadable_file_is_named(app, monkeypatch):
    real_open = builtins.open

    def refusing_open(path, *args, **kwargs):
        if os.fsdecode(path).endswith("graph.py"):
            raise PermissionError(13, "Permission denied")
        return real_open(path, *args, **kwargs)
    monkeypatch.setattr(builtins, "open", refusing_open)
    with pytest.raises(AnsibleLookupError, match=r"cannot read agent/graph.py under .*: Permission denied"):
        tree_digest(str(app))


def test_the_lookup_answers_one_digest_per_directory(app, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    answer = LookupModule().run([str(app), str(other)], variables={})
    assert answer == [tree_digest(str(app)), tree_digest(str(other))]
