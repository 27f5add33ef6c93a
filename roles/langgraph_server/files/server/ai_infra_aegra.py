"""Aegra's ASGI app, made to accept what LangGraph Studio sends to continue a thread.

LangGraph's API lets a client resume a thread from where it stopped (a static breakpoint,
`interrupt_before`) with a run whose `input` is null: Studio's "Continue" button does
exactly that. Aegra 0.11 refuses such a run with 422 ("Must specify at least one of
'input', 'command', or 'checkpoint'") unless a checkpoint is named. A run on a thread
with no input, no command and no checkpoint is given `checkpoint: {"checkpoint_ns": ""}`
here, which Aegra reads as "from the thread's latest checkpoint" and LangGraph resumes
with input None: the same run LangGraph's server makes. Every other request passes
through untouched.

The systemd unit runs `uvicorn --factory ai_infra_aegra:create_app`, which also makes
Aegra's checkpoint pool recover from a PostgreSQL restart (ai_infra_pool_recovery).
"""

import json
import re

# POST /threads/{thread_id}/runs, /runs/stream and /runs/wait: the runs that have a thread
# to resume (a stateless run with no input has nothing to resume from).
THREAD_RUN = re.compile(r"^/threads/[^/]+/runs(/stream|/wait)?/?$")
LATEST_CHECKPOINT = {"checkpoint_ns": ""}


def resume_from_latest(body):
    """The request body, with the latest checkpoint named when the run has nothing to start
    from; any body that is not such a JSON object is returned as it came."""
    try:
        payload = json.loads(body)
    except ValueError:
        return body
    if not isinstance(payload, dict):
        return body
    if any(payload.get(key) is not None for key in ("input", "command", "checkpoint", "checkpoint_id")):
        return body
    payload["checkpoint"] = dict(LATEST_CHECKPOINT)
    return json.dumps(payload).encode()


class ResumeFromLatest:
    """ASGI middleware applying resume_from_latest to thread runs' bodies."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST" or not THREAD_RUN.match(scope["path"]):
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before it finished sending
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = resume_from_latest(b"".join(chunks))
        headers = [(name, value) for name, value in scope["headers"] if name.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        replayed = False

        async def replay():
            # The body once, then the client's own messages (a disconnect ends a stream).
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(dict(scope, headers=headers), replay, send)


def create_app():
    """Aegra's app (settings from the environment, as aegra_api.main reads them), wrapped."""
    import ai_infra_pool_recovery  # pylint: disable=import-outside-toplevel

    ai_infra_pool_recovery.install()
    from aegra_api.main import app  # pylint: disable=import-outside-toplevel

    return ResumeFromLatest(app)
