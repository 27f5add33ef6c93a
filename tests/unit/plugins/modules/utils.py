"""Helpers for module unit tests, in the style of community.docker.

Modules are run in-process: module arguments are passed the ansible-core 2.19 way
(ansible.module_utils.testing.patch_module_args), and exit_json/fail_json are replaced
by exceptions that carry the result, so a test can assert on what the module returned.
"""

from __future__ import annotations

import contextlib
import http.server
import threading
from unittest import mock

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args


class AnsibleExitJson(Exception):
    """Raised instead of exit_json; .result is what the module returned."""

    def __init__(self, result):
        super().__init__(result)
        self.result = result


class AnsibleFailJson(Exception):
    """Raised instead of fail_json; .result holds msg and the other fields."""

    def __init__(self, result):
        super().__init__(result)
        self.result = result


def _exit_json(module, **kwargs):
    kwargs.setdefault("changed", False)
    raise AnsibleExitJson(kwargs)


def _fail_json(module, msg, **kwargs):
    kwargs["failed"] = True
    kwargs["msg"] = msg
    raise AnsibleFailJson(kwargs)


@contextlib.contextmanager
def intercept_module_exit():
    with mock.patch.multiple(basic.AnsibleModule, exit_json=_exit_json, fail_json=_fail_json):
        yield


def run_module(main, args, check_mode=False):
    """Run a module's main() with args; return its result or raise AnsibleFailJson."""
    args = dict(args)
    if check_mode:
        args["_ansible_check_mode"] = True
    with patch_module_args(args), intercept_module_exit():
        try:
            main()
        except AnsibleExitJson as exc:
            return exc.result
    raise AssertionError("the module returned without calling exit_json or fail_json")


@contextlib.contextmanager
def http_server(handler_class):
    """A local HTTP server on a free port answering with handler_class, in a thread;
    yields its base URL (for modules that talk to an HTTP API)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler_class)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield "http://127.0.0.1:%d" % server.server_address[1]
    finally:
        server.shutdown()
