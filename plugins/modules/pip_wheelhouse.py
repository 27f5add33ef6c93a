#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ai_infra platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: pip_wheelhouse
short_description: Keep a pinned requirement set as wheels in a local folder, built once, and say how to install from it
version_added: 0.3.0
description:
  - Resolves O(requirements) once with C(pip wheel) into a folder of O(wheelhouse) named by what
    decides the result (the requirement lines, the extra wheels offered by O(find_links), the
    distribution, the Python version and the platform), and returns the C(pip install) arguments
    that install from that folder alone (C(--no-index --find-links)).
  - A folder that exists is complete (it is built under a temporary name and renamed), so a later
    run, another role or another host sharing the folder installs without reaching an index. Hosts
    that build the same set at the same time take turns (a lock file beside the folder); the second
    finds the first one's folder.
  - For fleets without Internet access, fill the folder on one connected host of the same distro
    and copy it to the others (or share it), then install with the returned arguments.
  - Creates O(virtualenv) with C(python3 -m venv) when it is missing, to run C(pip wheel) with the
    Python the packages are for.
author:
  - ai_infra platform team (@ai-infra)
options:
  requirements:
    description:
      - Requirement specifiers, one per item, as in a requirements file (comments and blank items are
        ignored).
      - Pin them (C(name==version)). An unpinned line keeps the version first built until the folder is
        removed.
      - Options (C(-r), C(-e), C(--index-url)) are refused, since the folder's name could not cover what
        they bring in.
    type: list
    elements: str
    required: true
  wheelhouse:
    description: The folder that holds one sub-folder per requirement set (an absolute path).
    type: path
    required: true
  virtualenv:
    description: The venv whose Python the wheels are for; created when missing.
    type: path
    required: true
  virtualenv_python:
    description: The Python that creates O(virtualenv) when it is missing.
    type: path
    default: /usr/bin/python3
  find_links:
    description: Folders of extra wheels offered to the resolver (a CPU build of torch, for instance).
    type: list
    elements: path
    default: []
  index_url:
    description: The package index to resolve from, instead of pip's default (a mirror; may hold credentials).
    type: str
  timeout:
    description: Seconds C(pip wheel) may take.
    type: int
    default: 1800
attributes:
  check_mode:
    description: Says whether the folder would be built, and builds nothing.
    support: full
  diff_mode:
    description: No diff is produced.
    support: none
notes:
  - The folder is never edited once renamed into place; to refresh it (new releases of unpinned
    dependencies), remove it.
"""

EXAMPLES = r"""
- name: Put Phoenix's packages in the wheelhouse (built once per distro, Python and pins)
  ai_infra.langgraph_stack.pip_wheelhouse:
    requirements: ["arize-phoenix[pg]==20.26.1"]
    wheelhouse: /var/cache/ai-infra/wheels
    virtualenv: /opt/ai-infra/phoenix/venv
  register: phoenix_wheels

- name: Install them from there only
  ansible.builtin.pip:
    name: ["arize-phoenix[pg]==20.26.1"]
    virtualenv: /opt/ai-infra/phoenix/venv
    extra_args: "{{ phoenix_wheels.pip_args | join(' ') }}"
"""

RETURN = r"""
path:
  description: The folder of wheels for this requirement set (null in check mode when the venv does not exist yet).
  returned: always
  type: str
  sample: /var/cache/ai-infra/wheels/debian-12-cpython-311-linux-x86_64/3f0c9a1b2d4e5f60
pip_args:
  description:
    - Arguments that make C(pip install) use that folder only.
    - Empty in check mode, where nothing is installed (M(ansible.builtin.pip) reports any install given
      C(extra_args) as a change in check mode, so a drift report would list every venv).
  returned: always
  type: list
  elements: str
  sample: ["--no-index", "--find-links", "/var/cache/ai-infra/wheels/debian-12-cpython-311-linux-x86_64/3f0c9a1b2d4e5f60"]
built:
  description: Whether this run built the folder (false when it was there already or was built by another host meanwhile).
  returned: always
  type: bool
wheels:
  description: Number of wheels in the folder.
  returned: when the folder exists
  type: int
  sample: 97
"""

import contextlib
import fcntl
import os
import shutil
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.ai_infra.langgraph_stack.plugins.module_utils.pip_wheelhouse import (
    PYTHON_TAG_SCRIPT,
    WheelhouseError,
    family as family_name,
    find_links_listing,
    os_release_id,
    requirement_lines,
    set_key,
    unpinned,
)


def count_wheels(path):
    return len([name for name in os.listdir(path) if name.endswith(".whl")])


@contextlib.contextmanager
def locked(path):
    # flock works across containers that bind-mount the same folder (one kernel).
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def last_line(text):
    lines = [line for line in (text or "").splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no output"


class Wheelhouse(object):
    def __init__(self, module):
        self.module = module
        self.params = module.params

    def run(self, argv, what):
        # run_command has no timeout of its own: coreutils' timeout bounds a hung download.
        rc, out, err = self.module.run_command(["timeout", str(self.params["timeout"])] + argv)
        if rc == 124:
            raise WheelhouseError("%s did not finish within %d seconds" % (what, self.params["timeout"]))
        return rc, out, err

    def venv_python(self):
        return os.path.join(self.params["virtualenv"], "bin", "python")

    def ensure_venv(self):
        python = self.venv_python()
        if os.path.exists(python):
            return python
        creator = self.params["virtualenv_python"]
        if not (os.path.isfile(creator) and os.access(creator, os.X_OK)):
            raise WheelhouseError("%s is not an executable file, so the venv %s cannot be made" % (creator, self.params["virtualenv"]))
        rc, out, err = self.run([creator, "-m", "venv", self.params["virtualenv"]], "python3 -m venv")
        if rc != 0:
            raise WheelhouseError("%s -m venv %s failed: %s" % (creator, self.params["virtualenv"], last_line(err or out)))
        return python

    def python_tag(self, python):
        rc, out, err = self.run([python, "-c", PYTHON_TAG_SCRIPT], "python")
        tag = out.strip()
        if rc != 0 or not tag or "/" in tag or len(tag.splitlines()) != 1:
            raise WheelhouseError("%s did not say its version and platform: %s" % (python, last_line(err or out)))
        return tag

    def build(self, python, lines, destination):
        parent = os.path.dirname(destination)
        staging = tempfile.mkdtemp(dir=parent, prefix=".building-")
        try:
            requirements_file = os.path.join(staging, "requirements.txt")
            with open(requirements_file, "w") as handle:
                handle.write("\n".join(lines) + "\n")
            # --use-pep517: an sdist without pyproject.toml (forbiddenfruit, under langgraph-api)
            # is built in an isolated environment that gets setuptools and wheel; without it,
            # Debian 12's pip runs `setup.py bdist_wheel`, which fails in a venv without wheel.
            argv = [python, "-m", "pip", "wheel", "--disable-pip-version-check", "--no-input", "--use-pep517", "--wheel-dir", staging]
            for folder in self.params["find_links"]:
                argv += ["--find-links", folder]
            if self.params["index_url"]:
                argv += ["--index-url", self.params["index_url"]]
            argv += ["-r", requirements_file]
            rc, out, err = self.run(argv, "pip wheel")
            if rc != 0:
                if "No module named pip" in (err or ""):
                    raise WheelhouseError("%s has no pip; give a venv made with python3 -m venv" % python)
                self.module.fail_json(
                    msg="pip wheel failed for %s (exit %d): %s" % (", ".join(lines), rc, last_line(err or out)),
                    stderr=err,
                    stdout=out,
                )
            # mkdtemp made it 0700: hosts that share the folder read it as other users too.
            os.chmod(staging, 0o755)
            try:
                os.rename(staging, destination)
            except OSError:
                # A builder that does not take the lock (the vLLM test image's build script)
                # finished first: its folder is as good; this one is dropped.
                if not os.path.isdir(destination):
                    raise
                return False
            staging = None
            return True
        finally:
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)

    def apply(self):
        params = self.params
        if not os.path.isabs(params["wheelhouse"]):
            raise WheelhouseError("wheelhouse must be an absolute path, not %s" % params["wheelhouse"])
        lines = requirement_lines(params["requirements"])
        for line in unpinned(lines):
            self.module.warn("%s is not pinned: the wheelhouse keeps the version first built until its folder is removed" % line)
        listing = find_links_listing(params["find_links"])
        key = set_key(lines, listing, params["index_url"])

        if self.module.check_mode and not os.path.exists(self.venv_python()):
            # Nothing to ask which Python the wheels are for, and nothing to build in a dry run.
            return dict(changed=True, built=False, path=None, pip_args=[])
        python = self.venv_python() if self.module.check_mode else self.ensure_venv()
        family = os.path.join(params["wheelhouse"], family_name(os_release_id(), self.python_tag(python)))
        path = os.path.join(family, key)
        # No arguments in a dry run, where nothing is installed: ansible.builtin.pip reports
        # every install given extra_args as a change in check mode, and a drift report
        # (reprovision.yml) would list every venv as drifted.
        pip_args = [] if self.module.check_mode else ["--no-index", "--find-links", path]
        result = dict(changed=False, built=False, path=path, pip_args=pip_args)
        if os.path.isdir(path):
            result["wheels"] = count_wheels(path)
            return result
        if self.module.check_mode:
            result["changed"] = True
            return result
        try:
            if not os.path.isdir(family):
                os.makedirs(family, 0o755)
            with locked(os.path.join(family, ".%s.lock" % key)):
                # Another host may have built it while this one waited.
                if not os.path.isdir(path) and self.build(python, lines, path):
                    result.update(changed=True, built=True)
        except (IOError, OSError) as exc:
            raise WheelhouseError("cannot write the wheelhouse %s: %s" % (params["wheelhouse"], to_native(exc)))
        result["wheels"] = count_wheels(path)
        return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            requirements=dict(type="list", elements="str", required=True),
            wheelhouse=dict(type="path", required=True),
            virtualenv=dict(type="path", required=True),
            virtualenv_python=dict(type="path", default="/usr/bin/python3"),
            find_links=dict(type="list", elements="path", default=[]),
            index_url=dict(type="str", no_log=True),
            timeout=dict(type="int", default=1800),
        ),
        supports_check_mode=True,
    )
    if module.params["timeout"] <= 0:
        module.fail_json(msg="timeout must be a positive number of seconds, not %d" % module.params["timeout"])
    try:
        result = Wheelhouse(module).apply()
    except WheelhouseError as exc:
        module.fail_json(msg="%s." % to_native(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
