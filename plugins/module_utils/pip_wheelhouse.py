# -*- coding: utf-8 -*-
# Copyright: ai_infra platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""How a pinned requirement set is named in a wheelhouse, shared by the pip_wheelhouse module
and molecule/resources/images/build-vllm-cpu.sh (which loads this file by its path, so it
imports nothing from Ansible): the same set gets the same folder wherever it is built."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os

# Printed by the target's Python: what its wheels are built for.
PYTHON_TAG_SCRIPT = "import sys, sysconfig; print(sys.implementation.cache_tag + '-' + sysconfig.get_platform())"


class WheelhouseError(Exception):
    """One sentence for fail_json."""


def requirement_lines(requirements):
    """The requirement set as it decides the result: stripped, without comments, sorted."""
    lines = []
    for item in requirements:
        for line in (item or "").splitlines():
            line = line.split(" #", 1)[0].strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("-"):
                raise WheelhouseError(
                    "requirement %r is a pip option; give requirement specifiers only, so the wheelhouse's name covers them" % line
                )
            lines.append(line)
    if not lines:
        raise WheelhouseError("requirements holds no requirement: nothing to put in the wheelhouse")
    return sorted(set(lines))


def unpinned(lines):
    return [line for line in lines if "==" not in line and " @ " not in line]


def os_release_id(path="/etc/os-release"):
    fields = {}
    try:
        with open(path) as handle:
            for line in handle:
                name, sep, value = line.strip().partition("=")
                if sep:
                    fields[name] = value.strip().strip('"')
    except (IOError, OSError):
        return "unknown"
    return "%s-%s" % (fields.get("ID", "unknown"), fields.get("VERSION_ID", "unknown"))


def find_links_listing(folders):
    """The files the find_links folders offer: a new wheel there can change the result; where
    the folder is does not."""
    names = set()
    for folder in folders:
        if not os.path.isdir(folder):
            raise WheelhouseError("find_links entry %s is not a directory" % folder)
        names.update(os.listdir(folder))
    return sorted(names)


def family(os_id, python_tag):
    """The sub-folder for one distro, Python and platform: wheels built there fit those only."""
    return "%s-%s" % (os_id, python_tag)


def set_key(lines, listing, index_url):
    material = json.dumps({"requirements": lines, "find_links": listing, "index": index_url or ""}, sort_keys=True)
    return hashlib.sha256(material.encode("utf-8")).hexdigest()[:16]
