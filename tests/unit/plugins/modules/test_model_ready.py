"""model_ready against a real local HTTP server that answers like vLLM's OpenAI server
(the shapes and /metrics line are those vLLM 0.32 gave on the CPU on our build machines)."""

from __future__ import annotations

import contextlib
import http.server
import json
import socket
import threading

import pytest

from ansible_collections.ai_infra.langgraph_stack.plugins.modules import model_ready
from ansible_collections.ai_infra.langgraph_stack.tests.unit.plugins.modules.utils import AnsibleFailJson, run_module

KEY = "test-key-0123456789"
CACHE_INFO = (
    'vllm:cache_config_info{block_size="128",cache_dtype="auto",kv_cache_max_concurrency="22.75",'
    'kv_cache_size_tokens="46592",num_gpu_blocks="364"} 1.0\n'
)


class Behaviour:
    def __init__(self, **kw):
        self.health_failures = kw.get("health_failures", 0)  # answer 503 this many times first
        self.models = kw.get("models", ["smollm2"])
        self.completion = kw.get("completion", None)  # raw body to answer instead
        self.metrics = kw.get("metrics", "# HELP vllm:num_requests_waiting\n" + CACHE_INFO)
        self.seen = []


class Handler(http.server.BaseHTTPRequestHandler):
    behaviour: Behaviour

    def log_message(self, *args):
        pass

    def reply(self, code, body, content_type="application/json"):
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def authorised(self):
        if self.headers.get("Authorization") != "Bearer " + KEY:
            self.reply(401, {"error": "Unauthorized"})
            return False
        return True

    def do_GET(self):
        b = self.behaviour
        b.seen.append(self.path)
        if self.path == "/health":
            if b.health_failures > 0:
                b.health_failures -= 1
                return self.reply(503, "")
            return self.reply(200, "")
        if self.path == "/metrics":
            return self.reply(200, b.metrics, "text/plain")
        if self.path == "/v1/models" and self.authorised():
            return self.reply(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in b.models]})

    def do_POST(self):
        b = self.behaviour
        length = int(self.headers.get("Content-Length", 0))
        request = json.loads(self.rfile.read(length))
        b.seen.append(("POST", self.path, request))
        if self.path == "/v1/chat/completions" and self.authorised():
            if b.completion is not None:
                return self.reply(200, b.completion, "text/plain")
            return self.reply(200, {"object": "chat.completion", "choices": [{"message": {"role": "assistant", "content": "OK"}}]})


@contextlib.contextmanager
def server(**kw):
    behaviour = Behaviour(**kw)
    handler = type("BoundHandler", (Handler,), {"behaviour": behaviour})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield "http://127.0.0.1:%d" % httpd.server_address[1], behaviour
    finally:
        httpd.shutdown()
        httpd.server_close()


def run(url, **args):
    base = dict(url=url, model="smollm2", api_key=KEY, timeout=5, interval=0.1)
    base.update(args)
    return run_module(model_ready.main, base)


def fails(url, **args):
    with pytest.raises(AnsibleFailJson) as exc:
        run(url, **args)
    return exc.value.result


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ready_server_passes_every_stage_in_order():
    with server(health_failures=2) as (url, b):
        result = run(url, min_concurrency=8)
    assert result["models"] == ["smollm2"]
    assert result["kv_cache_max_concurrency"] == 22.75
    assert result["kv_cache_size_tokens"] == 46592
    assert result["ready_after_s"] >= 0.2  # two 503s, waited out
    assert result["changed"] is False
    paths = [p if isinstance(p, str) else p[1] for p in b.seen]
    assert paths == ["/health"] * 3 + ["/v1/models", "/v1/chat/completions", "/metrics"]
    completion = [p for p in b.seen if isinstance(p, tuple)][0][2]
    assert completion["max_tokens"] <= 3 and completion["temperature"] == 0 and completion["model"] == "smollm2"


def test_unreachable_says_what_it_last_saw():
    msg = fails("http://127.0.0.1:%d" % free_port(), timeout=1)["msg"]
    assert "was not ready within 1 seconds (waiting for health); last seen: /health:" in msg
    assert "refused" in msg.lower()


def test_health_never_200():
    with server(health_failures=10**6) as (url, _served):
        msg = fails(url, timeout=1)["msg"]
    assert msg.endswith("(waiting for health); last seen: /health answered HTTP 503.")


def test_wrong_model_lists_what_is_served():
    with server(models=["qwen3", "llama"]) as (url, _served):
        result = fails(url, model="smollm2")
    assert result["msg"] == "%s is not ready: the server does not serve 'smollm2'; it lists qwen3, llama." % url


def test_refused_key_is_not_printed():
    with server() as (url, _served):
        result = fails(url, api_key="wrong-secret-value")
    assert result["msg"] == "%s is not ready: /v1/models answered HTTP 401: the API key was refused." % url
    assert "wrong-secret-value" not in json.dumps(result)
    with server() as (url, _served):
        assert "(none was given)" in fails(url, api_key=None)["msg"]


def test_kv_cache_too_small_gives_both_numbers():
    with server() as (url, _served):
        result = fails(url, min_concurrency=30)
    assert result["msg"].endswith(
        "the KV cache holds 22.75 requests of max_model_len at once (46592 tokens), fewer than min_concurrency 30."
    )
    assert result["kv_cache_max_concurrency"] == 22.75


def test_metrics_without_cache_info():
    with server(metrics="# nothing here\n") as (url, _served):
        msg = fails(url, min_concurrency=1)["msg"]
    assert "has no vllm:cache_config_info" in msg


def test_completion_that_is_not_json_times_out_with_it_as_last_seen():
    with server(completion="<html>gateway</html>") as (url, _served):
        msg = fails(url, timeout=1)["msg"]
    assert "(waiting for completion); last seen: /v1/chat/completions answered HTTP 200 with something that is not JSON" in msg


def test_slow_completion_against_max_latency():
    with server() as (url, _served):
        msg = fails(url, max_latency_s=0.0)["msg"]
    assert "slower than max_latency_s 0.00" in msg


@pytest.mark.parametrize("url", ["127.0.0.1:8000", "ftp://host/", "http://"])
def test_bad_url(url):
    with pytest.raises(AnsibleFailJson) as exc:
        run_module(model_ready.main, dict(url=url, model="m"))
    assert exc.value.result["msg"].startswith("url must be an http:// or https:// base URL")
