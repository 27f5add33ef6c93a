"""A graph that needs no model: `first` -> `second` -> END.

Each node appends its name to `executions`, so the state shows which nodes ran and how
often. `second` waits `configurable.second_seconds` (default 0) before it finishes, which
leaves time to kill the server in the middle of a node; with `configurable.ask` it first
asks for a note (a dynamic interrupt, resumed with Command(resume=...)). The role runs this graph after
each deployment (a stateless run through the Postgres checkpointer); the tests interrupt,
kill and resume it.
"""

import asyncio
import operator
from typing import Annotated, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt


class SmokeState(TypedDict, total=False):
    note: str
    executions: Annotated[list[str], operator.add]


async def first(state: SmokeState) -> SmokeState:
    return {"executions": ["first"]}


async def second(state: SmokeState, config: RunnableConfig) -> SmokeState:
    configurable = config.get("configurable", {})
    update: SmokeState = {"executions": ["second"]}
    if configurable.get("ask"):
        update["note"] = interrupt("note?")
    await asyncio.sleep(float(configurable.get("second_seconds", 0)))
    return update


builder = StateGraph(SmokeState)
builder.add_node("first", first)
builder.add_node("second", second)
builder.add_edge(START, "first")
builder.add_edge("first", "second")
builder.add_edge("second", END)
graph = builder.compile()
