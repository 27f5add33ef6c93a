"""The hand-written guide's supervisor -> worker graph, in today's LangGraph API.

supervisor  reads the newest user message and fans out, with Send, to AGENT_FANOUT workers
            at once, each answering from one perspective;
worker      recalls long-term notes (a tool with a hard timeout, its result cached in Redis
            with a TTL: the in-session tier) and asks the model served by vLLM, in the
            `spot` model pool when there is one (model_pools.py);
collect     asks the model to combine the workers' answers (in the `ondemand` pool: a
            Studio user watches this step), replies, and keeps the answer as a long-term
            note in the Postgres store;
trim        drops old messages so the state does not grow without bound.

Model calls and the tool are retried with RetryPolicy (langgraph.types, `retry_policy=`).
The run's max_concurrency is AGENT_MAX_CONCURRENCY, which the role sets to vLLM's
--max-num-seqs, so a fan-out never queues more requests than vLLM keeps in flight.
Settings come from the environment (the role's 0600 env file); no secret enters the state.
"""

import asyncio
import hashlib
import importlib.util
import json
import logging
import os
import sys
from typing import Annotated, TypedDict

import openai
import redis.asyncio as aioredis
from langchain_core.messages import AnyMessage, HumanMessage, RemoveMessage, SystemMessage, trim_messages
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import REMOVE_ALL_MESSAGES, add_messages
from langgraph.runtime import Runtime
from langgraph.types import RetryPolicy, Send

log = logging.getLogger(__name__)


def _sibling(name):
    """A module beside this file: the servers load graphs by file path, not as a package."""
    qualified = "ai_infra_builtin_" + name
    if qualified not in sys.modules:
        spec = importlib.util.spec_from_file_location(qualified, os.path.join(os.path.dirname(os.path.abspath(__file__)), name + ".py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[qualified] = module
    return sys.modules[qualified]


ModelPools = _sibling("model_pools").ModelPools

PERSPECTIVES = {
    "facts": "State the key facts that answer the question.",
    "risks": "Name what could go wrong or is uncertain.",
    "steps": "Give the concrete next steps.",
    "assumptions": "List the assumptions the question makes.",
    "alternatives": "Suggest one alternative approach.",
    "summary": "Answer in one short sentence.",
}
CLEAR = "\x00clear"


def setting(name, default):
    return type(default)(os.environ.get(name, default))


def results_reducer(current: list, update: list) -> list:
    """Workers append; collect clears with CLEAR, so results never outlive their turn."""
    if CLEAR in update:
        return [item for item in update if item != CLEAR]
    return current + update


class AgentState(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    question: str
    results: Annotated[list[str], results_reducer]


class WorkerInput(TypedDict):
    question: str
    perspective: str


_pools = None
_redis = None


def pools() -> ModelPools:
    """The model, through each node's model pool (model_pools.py)."""
    global _pools
    if _pools is None:
        _pools = ModelPools(
            model=os.environ["VLLM_MODEL"],
            api_key=os.environ["VLLM_API_KEY"],
            temperature=0,
            max_tokens=setting("AGENT_MAX_TOKENS", 64),
            timeout=setting("AGENT_LLM_TIMEOUT_S", 60.0),
            # Retries are the graph's RetryPolicy, not the client's.
            max_retries=0,
        )
    return _pools


def redis_client():
    global _redis
    if _redis is None and os.environ.get("LANGGRAPH_APP_REDIS_URI"):
        _redis = aioredis.from_url(os.environ["LANGGRAPH_APP_REDIS_URI"], socket_timeout=2)
    return _redis


async def cached_tool(name, arguments, call):
    """Runs a tool with a hard timeout; its result is cached in Redis with a TTL.

    The cache is an optimisation: when Redis is unreachable the tool still runs."""
    key = "tool:%s:%s" % (name, hashlib.sha256(json.dumps(arguments, sort_keys=True).encode()).hexdigest())
    client = redis_client()
    if client is not None:
        try:
            cached = await client.get(key)
            if cached is not None:
                return json.loads(cached)
        except aioredis.RedisError as exc:
            log.warning("tool cache unavailable: %s", exc)
    result = await asyncio.wait_for(call(**arguments), timeout=setting("AGENT_TOOL_TIMEOUT_S", 10.0))
    if client is not None:
        try:
            await client.set(key, json.dumps(result), ex=setting("AGENT_TOOL_CACHE_TTL_S", 900))
        except aioredis.RedisError as exc:
            log.warning("tool cache unavailable: %s", exc)
    return result


async def supervisor(state: AgentState) -> AgentState:
    question = next((m.content for m in reversed(state["messages"]) if isinstance(m, HumanMessage)), "")
    return {"question": str(question)}


def fan_out(state: AgentState) -> list[Send]:
    names = list(PERSPECTIVES)
    fanout = setting("AGENT_FANOUT", 3)
    return [Send("worker", {"question": state["question"], "perspective": names[i % len(names)]}) for i in range(fanout)]


async def worker(state: WorkerInput, runtime: Runtime) -> AgentState:
    async def recall_notes(query):
        if runtime.store is None:
            return []
        items = await runtime.store.asearch(("notes",), limit=3)
        return [item.value.get("answer", "") for item in items]

    notes = await cached_tool("recall_notes", {"query": state["question"]}, recall_notes)
    prompt = [
        SystemMessage(PERSPECTIVES[state["perspective"]] + (" Earlier answers: " + " | ".join(notes) if notes else "")),
        HumanMessage(state["question"]),
    ]
    answer = await pools().ainvoke("worker", prompt)
    return {"results": ["%s: %s" % (state["perspective"], answer.content)]}


async def collect(state: AgentState, runtime: Runtime) -> AgentState:
    combined = "\n".join(sorted(state.get("results", [])))
    reply = await pools().ainvoke(
        "collect", [SystemMessage("Combine these answers into one short reply:\n" + combined), HumanMessage(state["question"])]
    )
    if runtime.store is not None:
        key = hashlib.sha256(state["question"].encode()).hexdigest()[:32]
        await runtime.store.aput(("notes",), key, {"question": state["question"], "answer": reply.content})
    return {"messages": [reply], "results": [CLEAR]}


async def trim(state: AgentState) -> AgentState:
    kept = trim_messages(
        state["messages"],
        max_tokens=setting("AGENT_KEEP_MESSAGES", 20),
        token_counter=len,
        strategy="last",
        start_on="human",
    )
    if len(kept) == len(state["messages"]):
        return {}
    return {"messages": [RemoveMessage(id=REMOVE_ALL_MESSAGES), *kept]}


MODEL_ERRORS = (
    openai.APIConnectionError,
    openai.APITimeoutError,
    openai.InternalServerError,
    openai.RateLimitError,
    asyncio.TimeoutError,
)
retry = RetryPolicy(max_attempts=3, initial_interval=1.0, retry_on=MODEL_ERRORS)

builder = StateGraph(AgentState)
builder.add_node("supervisor", supervisor)
builder.add_node("worker", worker, retry_policy=retry)
builder.add_node("collect", collect, retry_policy=retry)
builder.add_node("trim", trim)
builder.add_edge(START, "supervisor")
builder.add_conditional_edges("supervisor", fan_out, ["worker"])
builder.add_edge("worker", "collect")
builder.add_edge("collect", "trim")
builder.add_edge("trim", END)
# No checkpointer here: the server supplies the Postgres one (langgraph.json).
graph = builder.compile(name="agent").with_config({"max_concurrency": setting("AGENT_MAX_CONCURRENCY", 8)})
