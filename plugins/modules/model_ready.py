#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ai_infra platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: model_ready
short_description: Wait until an OpenAI-compatible model server (vLLM) really serves a model
version_added: 0.1.0
description:
  - Waits, in order, for C(/health) to answer 200 (connection refused while the weights load is
    normal), for C(/v1/models) to list O(model), for a chat completion (at most 3 tokens,
    temperature 0) to return valid JSON, and, when O(min_concurrency) is set, for vLLM's
    C(vllm:cache_config_info) on C(/metrics) to report a C(kv_cache_max_concurrency) of at least
    O(min_concurrency).
  - Fails with what it last saw when O(timeout) runs out; at once, without retrying, when the key
    is refused (401/403), when the server lists other models, or when the KV cache is too small.
  - Read-only. The completion it sends costs a few tokens of compute.
author:
  - ai_infra platform team (@ai-infra)
options:
  url:
    description: Base URL of the server, such as C(http://127.0.0.1:8000) (no C(/v1)).
    type: str
    required: true
  model:
    description: Served model name that must be listed and must answer.
    type: str
    required: true
  api_key:
    description: Bearer key of the server (vLLM C(--api-key)). Never logged or printed.
    type: str
  timeout:
    description: Total seconds to wait for the whole sequence.
    type: int
    default: 900
  interval:
    description: Seconds between attempts while the server is not ready yet.
    type: float
    default: 5
  min_concurrency:
    description: Requests of the server's max_model_len its KV cache must hold at once (the graph's fan-out).
    type: int
  max_latency_s:
    description: Longest acceptable time for the test completion, in seconds.
    type: float
  validate_certs:
    description: Verify TLS certificates for C(https) URLs.
    type: bool
    default: true
attributes:
  check_mode:
    description: Read-only; runs the same in check mode.
    support: full
  diff_mode:
    description: No diff is produced.
    support: none
"""

EXAMPLES = r"""
- name: Gate on the model serving the graph's fan-out
  ai_infra.langgraph_stack.model_ready:
    url: http://127.0.0.1:8000
    model: llama-3.1-8b
    api_key: "{{ vault_vllm_api_key }}"
    min_concurrency: 12
    timeout: 1800
"""

RETURN = r"""
models:
  description: Model ids the server lists.
  returned: success
  type: list
  elements: str
  sample: [llama-3.1-8b]
kv_cache_max_concurrency:
  description: Requests of max_model_len the KV cache holds, from C(vllm:cache_config_info) (null when not asked for).
  returned: success
  type: float
  sample: 22.75
kv_cache_size_tokens:
  description: Tokens the KV cache holds, from C(vllm:cache_config_info) (null when not asked for).
  returned: success
  type: int
  sample: 46592
ready_after_s:
  description: Seconds from the module's start until every check passed.
  returned: success
  type: float
completion_latency_s:
  description: Seconds the test completion took.
  returned: success
  type: float
"""

import json
import re
import socket
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError
from ansible.module_utils.six.moves.urllib.parse import urlparse
from ansible.module_utils.urls import open_url

CACHE_INFO = re.compile(r"^vllm:cache_config_info\{(?P<labels>[^}]*)\}", re.MULTILINE)
LABEL = re.compile(r'(\w+)="([^"]*)"')


class NotReady(Exception):
    """Worth waiting for: the message says what was seen."""


class Refused(Exception):
    """Waiting will not help: the message says why."""


class Client(object):
    def __init__(self, module):
        self.base = module.params["url"].rstrip("/")
        self.key = module.params["api_key"]
        self.validate_certs = module.params["validate_certs"]
        self.deadline = None

    def request(self, path, body=None):
        headers = {"Accept": "application/json"}
        if self.key:
            headers["Authorization"] = "Bearer " + self.key
        if body is not None:
            headers["Content-Type"] = "application/json"
            body = json.dumps(body)
        timeout = max(1.0, min(60.0, self.deadline - time.time()))
        try:
            response = open_url(
                self.base + path,
                data=body,
                headers=headers,
                method="POST" if body is not None else "GET",
                timeout=timeout,
                validate_certs=self.validate_certs,
                follow_redirects="none",
            )
            return response.getcode(), to_text(response.read(), errors="replace")
        except HTTPError as exc:
            text = to_text(exc.read() if hasattr(exc, "read") else b"", errors="replace")
            if exc.code in (401, 403):
                raise Refused(
                    "%s answered HTTP %d: the API key was refused%s" % (path, exc.code, "" if self.key else " (none was given)")
                )
            return exc.code, text
        except URLError as exc:
            raise NotReady("%s: %s" % (path, to_text(exc.reason)))
        except (socket.timeout, ConnectionError, OSError) as exc:
            raise NotReady("%s: %s" % (path, to_text(exc) or type(exc).__name__))


def json_body(path, code, text):
    if code != 200:
        raise NotReady("%s answered HTTP %d: %s" % (path, code, " ".join(text.split())[:200]))
    try:
        return json.loads(text)
    except ValueError:
        raise NotReady("%s answered HTTP 200 with something that is not JSON: %s" % (path, " ".join(text.split())[:200]))


def check_health(client):
    code, text = client.request("/health")
    if code != 200:
        raise NotReady("/health answered HTTP %d" % code)


def check_models(client, model):
    data = json_body("/v1/models", *client.request("/v1/models"))
    try:
        models = [entry["id"] for entry in data["data"]]
    except (KeyError, TypeError):
        raise Refused("/v1/models answered JSON without a data list of models: %s" % json.dumps(data)[:200])
    if model not in models:
        raise Refused("the server does not serve %r; it lists %s" % (model, ", ".join(models) or "no model"))
    return models


def check_completion(client, model):
    body = {"model": model, "messages": [{"role": "user", "content": "Reply with OK."}], "max_tokens": 3, "temperature": 0}
    started = time.time()
    code, text = client.request("/v1/chat/completions", body)
    latency = time.time() - started
    data = json_body("/v1/chat/completions", code, text)
    if not isinstance(data, dict) or not data.get("choices"):
        raise NotReady("/v1/chat/completions answered JSON without choices: %s" % json.dumps(data)[:200])
    return latency


def read_cache_info(client):
    code, text = client.request("/metrics")
    if code != 200:
        raise NotReady("/metrics answered HTTP %d" % code)
    match = CACHE_INFO.search(text)
    if not match:
        raise Refused("/metrics has no vllm:cache_config_info, so the KV cache cannot be checked (is this vLLM?)")
    labels = dict(LABEL.findall(match.group("labels")))
    try:
        concurrency = float(labels["kv_cache_max_concurrency"])
        tokens = int(float(labels["kv_cache_size_tokens"])) if labels.get("kv_cache_size_tokens") else None
    except (KeyError, ValueError):
        raise Refused("vllm:cache_config_info on /metrics has no numeric kv_cache_max_concurrency: %s" % match.group(0)[:300])
    return concurrency, tokens


def main():
    module = AnsibleModule(
        argument_spec=dict(
            url=dict(type="str", required=True),
            model=dict(type="str", required=True),
            api_key=dict(type="str", no_log=True),
            timeout=dict(type="int", default=900),
            interval=dict(type="float", default=5),
            min_concurrency=dict(type="int"),
            max_latency_s=dict(type="float"),
            validate_certs=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    p = module.params
    parsed = urlparse(p["url"])
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        module.fail_json(msg="url must be an http:// or https:// base URL such as http://127.0.0.1:8000, got %r." % p["url"])
    if p["timeout"] <= 0 or p["interval"] <= 0:
        module.fail_json(msg="timeout and interval must be greater than 0.")
    if p["min_concurrency"] is not None and p["min_concurrency"] < 1:
        module.fail_json(msg="min_concurrency must be 1 or more, got %d." % p["min_concurrency"])

    client = Client(module)
    started = time.time()
    client.deadline = started + p["timeout"]
    stages = ["health", "models", "completion"] + (["kv"] if p["min_concurrency"] else [])
    result = dict(changed=False, models=[], kv_cache_max_concurrency=None, kv_cache_size_tokens=None)
    last_seen = "nothing yet"
    while stages:
        stage = stages[0]
        try:
            if stage == "health":
                check_health(client)
            elif stage == "models":
                result["models"] = check_models(client, p["model"])
            elif stage == "completion":
                result["completion_latency_s"] = round(check_completion(client, p["model"]), 3)
            else:
                concurrency, tokens = read_cache_info(client)
                result["kv_cache_max_concurrency"], result["kv_cache_size_tokens"] = concurrency, tokens
                if concurrency < p["min_concurrency"]:
                    raise Refused(
                        "the KV cache holds %s requests of max_model_len at once (%s tokens), fewer than min_concurrency %d"
                        % (concurrency, tokens, p["min_concurrency"])
                    )
            stages.pop(0)
        except Refused as exc:
            module.fail_json(msg="%s is not ready: %s." % (p["url"], exc), **result)
        except NotReady as exc:
            last_seen = str(exc)
            if time.time() + p["interval"] > client.deadline:
                module.fail_json(
                    msg="%s was not ready within %d seconds (waiting for %s); last seen: %s."
                    % (p["url"], p["timeout"], stage, last_seen),
                    **result
                )
            time.sleep(p["interval"])
    if p["max_latency_s"] is not None and result["completion_latency_s"] > p["max_latency_s"]:
        module.fail_json(
            msg="%s answered the test completion in %.2f s, slower than max_latency_s %.2f."
            % (p["url"], result["completion_latency_s"], p["max_latency_s"]),
            **result
        )
    result["ready_after_s"] = round(time.time() - started, 3)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
