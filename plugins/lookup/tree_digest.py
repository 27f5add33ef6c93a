# -*- coding: utf-8 -*-
# Copyright: ai_infra platform team
# Apache License 2.0 (galaxy.yml)
"""A SHA-256 digest of a directory tree on the controller: every file's path and content.

The langgraph_server role names a release by it, so the same application files give the
same release on every host and every run, and any change to a file (or a file added,
removed or renamed) gives a new one. Bytecode caches are left out: Python writes them
beside the sources when the application is imported on the controller.
"""

from __future__ import annotations

DOCUMENTATION = r"""
name: tree_digest
short_description: SHA-256 of every file's relative path and content under a controller directory
description:
  - Walks each directory given, in a fixed order (paths sorted as bytes), and hashes each
    regular file's path relative to that directory and its content; the same tree gives the
    same digest on any controller, and a file changed, added, removed or renamed gives another.
  - C(__pycache__) directories and C(*.pyc) files are left out. Symbolic links to files are
    followed (their target's content counts); links to directories are not walked.
options:
  _terms:
    description: Directories on the controller.
    required: true
    type: list
    elements: path
"""

EXAMPLES = r"""
- name: Name a release by its files
  ansible.builtin.set_fact:
    release: "{{ lookup('ai_infra.langgraph_stack.tree_digest', playbook_dir ~ '/app')[:12] }}"
"""

RETURN = r"""
_raw:
  description: One lowercase hex SHA-256 digest (64 characters) per directory.
  type: list
  elements: str
"""

import hashlib
import os

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase


def _skipped(name: str) -> bool:
    return name == "__pycache__" or name.endswith(".pyc")


def _raise(error: OSError) -> None:
    raise AnsibleLookupError(f"tree_digest: cannot list {error.filename}: {error.strerror}")


def tree_digest(root: str) -> str:
    """The digest of `root`'s files (see DOCUMENTATION); AnsibleLookupError when `root` is
    not a readable directory."""
    if not os.path.isdir(root):
        raise AnsibleLookupError(f"tree_digest: {root} is not a directory on the controller")
    files = []
    for directory, subdirectories, names in os.walk(root, onerror=_raise):
        subdirectories[:] = [d for d in subdirectories if not _skipped(d)]
        for name in names:
            path = os.path.join(directory, name)
            if not _skipped(name) and os.path.isfile(path):
                files.append(os.fsencode(os.path.relpath(path, root)))
    digest = hashlib.sha256()
    for relative in sorted(files):
        content = hashlib.sha256()
        try:
            with open(os.path.join(os.fsencode(root), relative), "rb") as handle:
                for block in iter(lambda: handle.read(1 << 16), b""):
                    content.update(block)
        except OSError as exc:
            raise AnsibleLookupError(f"tree_digest: cannot read {os.fsdecode(relative)} under {root}: {exc.strerror}") from exc
        # Length-prefixed path, then the content's digest: no two trees share a stream.
        digest.update(len(relative).to_bytes(4, "big") + relative + content.digest())
    return digest.hexdigest()


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        return [tree_digest(str(term)) for term in terms]
