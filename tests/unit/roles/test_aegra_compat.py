"""The agent server's compatibility shim in front of Aegra (roles/langgraph_server/files/
server): Studio's `input: null` on a thread run resumes from the latest checkpoint, and
nothing else changes. molecule/langgraph_server continues a real breakpoint through it."""

from __future__ import annotations

import asyncio
import json
import os
import sys

import pytest

SHIM_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "..", "roles", "langgraph_server", "files", "server")
sys.path.insert(0, os.path.abspath(SHIM_DIR))

from ai_infra_aegra import ResumeFromLatest, resume_from_latest  # noqa: E402  pylint: disable=wrong-import-position


@pytest.mark.parametrize("payload", [
    {"assistant_id": "agent", "input": None},
    {"assistant_id": "agent"},
    {"assistant_id": "agent", "input": None, "command": None, "stream_mode": ["values"]},
])
def test_a_run_with_nothing_to_start_from_resumes_from_the_latest_checkpoint(payload):
    out = json.loads(resume_from_latest(json.dumps(payload).encode()))
    assert out == dict(payload, checkpoint={"checkpoint_ns": ""})


@pytest.mark.parametrize("payload", [
    {"assistant_id": "agent", "input": {}},
    {"assistant_id": "agent", "input": {"messages": []}},
    {"assistant_id": "agent", "command": {"resume": "yes"}},
    {"assistant_id": "agent", "input": None, "checkpoint": {"checkpoint_id": "1"}},
    {"assistant_id": "agent", "checkpoint_id": "1ef0"},
])
def test_runs_that_say_where_to_start_are_untouched(payload):
    body = json.dumps(payload).encode()
    assert resume_from_latest(body) is body


@pytest.mark.parametrize("body", [b"", b"not json", b"[1, 2]", b"null", b"\xff\xfe"])
def test_bodies_that_are_not_a_json_object_pass_as_they_came(body):
    assert resume_from_latest(body) is body


def call(path, body=b"", method="POST", chunks=None, scope_type="http"):
    """Runs the middleware around an app that records what it received."""
    seen = {}

    async def app(scope, receive, send):
        seen["scope"] = scope
        message = await receive()
        seen["body"] = message.get("body")
        seen["next"] = await receive()

    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)] \
        if chunks else [{"type": "http.request", "body": body, "more_body": False}]
    messages.append({"type": "http.disconnect"})

    async def receive():
        return messages.pop(0)

    scope = {"type": scope_type, "method": method, "path": path,
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]}
    asyncio.run(ResumeFromLatest(app)(scope, receive, None))
    return seen


@pytest.mark.parametrize("path", ["/threads/t1/runs", "/threads/t1/runs/stream", "/threads/t1/runs/wait"])
def test_thread_runs_are_rewritten_with_a_matching_content_length(path):
    seen = call(path, b'{"assistant_id": "a", "input": null}')
    assert json.loads(seen["body"])["checkpoint"] == {"checkpoint_ns": ""}
    headers = dict(seen["scope"]["headers"])
    assert headers[b"content-length"] == str(len(seen["body"])).encode()
    assert [header[0] for header in seen["scope"]["headers"]].count(b"content-length") == 1
    # After the body, the app still hears the client leave (a stream stops on it).
    assert seen["next"] == {"type": "http.disconnect"}


def test_a_body_sent_in_chunks_is_read_whole():
    seen = call("/threads/t1/runs/wait", chunks=[b'{"assistant_id": ', b'"a", "input": null}'])
    assert json.loads(seen["body"]) == {"assistant_id": "a", "input": None, "checkpoint": {"checkpoint_ns": ""}}


@pytest.mark.parametrize("path,method", [
    ("/runs/wait", "POST"), ("/threads", "POST"), ("/threads/t1/runs", "GET"), ("/threads/t1/runs/r1/join", "POST"),
])
def test_other_requests_pass_untouched(path, method):
    body = b'{"assistant_id": "a", "input": null}'
    seen = call(path, body, method=method)
    assert seen["body"] == body


def test_a_client_that_leaves_before_its_body_ends_reaches_no_app():
    seen = {}

    async def app(scope, receive, send):
        seen["called"] = True

    messages = [{"type": "http.request", "body": b'{"a', "more_body": True}, {"type": "http.disconnect"}]

    async def receive():
        return messages.pop(0)

    scope = {"type": "http", "method": "POST", "path": "/threads/t/runs", "headers": []}
    asyncio.run(ResumeFromLatest(app)(scope, receive, None))
    assert not seen
