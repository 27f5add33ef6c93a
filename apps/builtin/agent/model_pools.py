"""Model pools: each graph node calls the model through its own pool at the model router.

The router on the agent server's host gives every pool of GPU workers its own address
(`<router>/pool/<name>`; the role writes them, from what the router published, into the
file AGENT_MODEL_POOLS_FILE names, which is read again whenever it changes). A node asks
its pool first (NODE_POOLS, overridden by AGENT_NODE_POOLS): the steps a Studio user
watches on `ondemand`, the fan-out workers on `spot`. A node whose pool
does not exist goes to `ondemand` (or the first pool) without calling that a fallback.
When its pool has no worker that answers (evicted, all of them), the router gives up
within seconds and the call goes to the next pool: a fallback, which the trace says.

Every call has a span of its own, `model call`, under the node's span: the pool wanted and
used, the pool it fell back from, and the worker that served it (the router names its
address in X-Model-Upstream; the same file maps it to the inventory name) with that
worker's hourly price. The phoenix_run_costs module shares each worker's bill between the
runs by these spans. Without tracing there are no spans; the pools work the same.
"""

import json
import logging
import os
import sys

import openai
from langchain_openai import ChatOpenAI

log = logging.getLogger(__name__)

# Which pool each node of the builtin graph asks first.
NODE_POOLS = {"supervisor": "ondemand", "collect": "ondemand", "worker": "spot"}
# Where a node whose pool does not exist goes first.
DEFAULT_POOL = "ondemand"
# What says "this pool has no worker that answers": the router could not reach one (502,
# 503, 504), or the call got no answer at all (a worker gone mid-call, a timeout).
UNAVAILABLE_STATUSES = (502, 503, 504)


def _json_setting(name):
    text = os.environ.get(name, "").strip()
    if not text:
        return {}
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("%s must be a JSON object" % name)
    return value


class PoolsFile:
    """The pools and workers file (AGENT_MODEL_POOLS_FILE), read again when it changes: the
    role rewrites it when a worker is added, replaced or removed, and restarts nothing."""

    def __init__(self, path):
        self.path, self.stamp, self.value = path, None, {"pools": {}, "workers": {}}

    def read(self):
        if not self.path:
            return self.value
        try:
            status = os.stat(self.path)
            stamp = (status.st_mtime_ns, status.st_size)
            if stamp != self.stamp:
                with open(self.path) as handle:
                    value = json.load(handle)
                if not isinstance(value, dict):
                    raise ValueError("not a JSON object")
                self.value = {"pools": dict(value.get("pools") or {}), "workers": dict(value.get("workers") or {})}
                self.stamp = stamp
        except (OSError, ValueError) as exc:
            # Keep what was read last (a file being rewritten, a bad edit): calls go on.
            log.warning("model pools file %s not read (%s); keeping the last one", self.path, exc)
        return self.value


def _tracer():
    """The tracer the server's tracing hook (sitecustomize) registered, or None."""
    return getattr(sys.modules.get("sitecustomize"), "AI_INFRA_TRACER", None)


def _node_span():
    try:
        from openinference.instrumentation.langchain import get_current_span
    except ImportError:
        return None
    return get_current_span()


def _run_ids():
    try:
        from langgraph.config import get_config
        config = get_config()
    except (ImportError, RuntimeError):
        return "", ""
    metadata, configurable = config.get("metadata") or {}, config.get("configurable") or {}
    run_id = metadata.get("run_id") or configurable.get("run_id") or ""
    thread_id = metadata.get("thread_id") or configurable.get("thread_id") or ""
    return str(run_id), str(thread_id)


def _upstream(message):
    headers = (getattr(message, "response_metadata", None) or {}).pop("headers", None) or {}
    # The headers stay out of the graph's state: nothing in them is the state's business.
    for name, value in headers.items():
        if name.lower() == "x-model-upstream":
            return value
    return ""


class ModelPools:
    def __init__(self, **chat_settings):
        self.file = PoolsFile(os.environ.get("AGENT_MODEL_POOLS_FILE", ""))
        self.node_pools = dict(NODE_POOLS, **_json_setting("AGENT_NODE_POOLS"))
        self.chat_settings = chat_settings
        self._models = {}

    @property
    def pools(self):
        # A single-host stack without a router: vLLM itself, one pool.
        return self.file.read()["pools"] or {DEFAULT_POOL: os.environ["VLLM_BASE_URL"]}

    @property
    def workers(self):
        return self.file.read()["workers"]

    def model(self, base_url):
        url = base_url.rstrip("/") + "/v1"
        if url not in self._models:
            self._models[url] = ChatOpenAI(
                base_url=url,
                # The router names the worker that answered in a header.
                include_response_headers=True,
                **self.chat_settings,
            )
        return self._models[url]

    def order(self, node, pools):
        """(pool wanted, pools to try in order)."""
        wanted = self.node_pools.get(node, DEFAULT_POOL)
        names = sorted(pools)
        first = wanted if wanted in pools else (DEFAULT_POOL if DEFAULT_POOL in pools else names[0])
        return wanted, [first] + [name for name in names if name != first]

    def worker(self, pool, address):
        """(name, hourly price) of the worker at `address`; the pool's only worker when the
        answer named none (vLLM itself on a single-host stack)."""
        workers = self.workers
        known = workers.get(address)
        if known is None:
            in_pool = [w for w in workers.values() if w.get("pool") == pool]
            known = in_pool[0] if len(in_pool) == 1 else {"name": address}
        return str(known.get("name") or ""), float(known.get("hourly_usd") or 0)

    async def ainvoke(self, node, messages):
        """The model's answer to `messages` for graph node `node`, from its pool or the next."""
        pools = self.pools
        wanted, order = self.order(node, pools)
        run_id, thread_id = _run_ids()
        tracer, parent = _tracer(), None
        if tracer is not None:
            from opentelemetry import trace

            span = _node_span()
            parent = trace.set_span_in_context(span) if span is not None else None
        failure = None
        for index, pool in enumerate(order):
            attributes = {"model_call.node": node, "model_call.pool": pool, "model_call.pool_wanted": wanted,
                          "model_call.run_id": run_id, "model_call.thread_id": thread_id}
            if index:
                attributes["model_call.fallback_from"] = order[index - 1]
                log.warning("model pool %s did not answer for node %s (%s); trying pool %s", order[index - 1], node, failure, pool)
            span = tracer.start_span("model call", context=parent, attributes=attributes) if tracer else None
            try:
                answer = await self.model(pools[pool]).ainvoke(messages)
            except (openai.APIConnectionError, openai.APIStatusError) as exc:
                if span is not None:
                    from opentelemetry.trace import Status, StatusCode

                    span.set_status(Status(StatusCode.ERROR, "pool %s: %s" % (pool, type(exc).__name__)))
                    span.end()
                status = getattr(exc, "status_code", None)
                if isinstance(exc, openai.APIStatusError) and status not in UNAVAILABLE_STATUSES:
                    raise
                failure = exc
                continue
            address = _upstream(answer)
            if span is not None:
                name, price = self.worker(pool, address)
                span.set_attributes({"model_call.worker": name, "model_call.worker_address": address,
                                     "model_call.hourly_usd": price})
                span.end()
            return answer
        # No pool answered: the node's RetryPolicy tries again.
        raise failure
