# -*- coding: utf-8 -*-
# Copyright: ai_infra platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""One request to a JSON API with a bearer token, for the API clients in module_utils
(Phoenix, Spheron): the status and body text of whatever the server answered, an error
status included; each client decides what a status means for its API."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import socket

from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError
from ansible.module_utils.urls import open_url


class Unreachable(Exception):
    """The server did not answer: the reason, for the client's one sentence."""


def send(url, method, token, body=None, timeout=30, validate_certs=True):
    """(status, text) of one request; body (if any) is sent as JSON. Raises Unreachable."""
    headers = {"Authorization": "Bearer " + token, "Accept": "application/json"}
    data = None
    if body is not None:
        headers["Content-Type"] = "application/json"
        data = json.dumps(body)
    try:
        response = open_url(url, method=method, data=data, headers=headers, timeout=timeout,
                            validate_certs=validate_certs, follow_redirects="none")
        status, raw = response.getcode(), response.read()
    except HTTPError as exc:
        status, raw = exc.code, exc.read() if hasattr(exc, "read") else b""
    except (URLError, socket.timeout, socket.error, ValueError) as exc:
        raise Unreachable(to_text(getattr(exc, "reason", exc)))
    return status, to_text(raw or b"", errors="surrogate_or_strict")
