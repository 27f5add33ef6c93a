"""The restore drill's two halves, with LangGraph's own checkpointer and store.

--write (on the state host that will be lost): a thread interrupted before its second
node (a run waiting for a human), a finished thread, and a store item; prints their ids.
--resume (on the host the dumps were restored to): the interrupted thread continues from
its checkpoint to the end, the finished one's history is whole, the store item is there;
prints what it found. Both as JSON on the last line.
"""

from __future__ import annotations

import argparse
import json
import operator
import uuid
from typing import Annotated, TypedDict

from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.graph import END, START, StateGraph
from langgraph.store.postgres import PostgresStore


class State(TypedDict):
    executions: Annotated[list[str], operator.add]


def build(saver: PostgresSaver):
    builder = StateGraph(State)
    builder.add_node("first", lambda state: {"executions": ["first"]})
    builder.add_node("second", lambda state: {"executions": ["second"]})
    builder.add_edge(START, "first")
    builder.add_edge("first", "second")
    builder.add_edge("second", END)
    return builder.compile(checkpointer=saver, interrupt_before=["second"])


def config(thread_id: str) -> dict:
    return {"configurable": {"thread_id": thread_id}}


def write(dsn: str) -> dict:
    interrupted, finished = f"drill-{uuid.uuid4()}", f"drill-{uuid.uuid4()}"
    with PostgresSaver.from_conn_string(dsn) as saver, PostgresStore.from_conn_string(dsn) as store:
        graph = build(saver)
        graph.invoke({"executions": []}, config(interrupted))
        graph.invoke({"executions": []}, config(finished))
        graph.invoke(None, config(finished))
        store.put(("drill", "user-1"), "preferences", {"language": "fr", "thread": interrupted})
        return {"interrupted": interrupted, "finished": finished,
                "next": list(graph.get_state(config(interrupted)).next)}


def resume(dsn: str, interrupted: str, finished: str) -> dict:
    with PostgresSaver.from_conn_string(dsn) as saver, PostgresStore.from_conn_string(dsn) as store:
        graph = build(saver)
        before = graph.get_state(config(interrupted))
        final = graph.invoke(None, config(interrupted))
        item = store.get(("drill", "user-1"), "preferences")
        return {
            "next_before": list(before.next),
            "values_before": before.values,
            "final": final,
            "finished_history": len(list(graph.get_state_history(config(finished)))),
            "finished_values": graph.get_state(config(finished)).values,
            "store": item.value if item else None,
        }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--resume", nargs=2, metavar=("INTERRUPTED", "FINISHED"))
    args = parser.parse_args()
    result = write(args.dsn) if args.write else resume(args.dsn, *args.resume)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
