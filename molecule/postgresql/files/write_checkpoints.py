"""Writes real LangGraph checkpoints for the postgresql scenario.

Runs a small two-node graph with the official PostgresSaver over --recent threads (one
with an interrupted run, so it also has pending writes), then copies --old of those
threads into new threads aged --age-days, through the checkpointer's own API (put and
put_writes), the way a restore or a migration writes existing history. Prints the thread
ids as JSON.
"""

from __future__ import annotations

import argparse
import datetime
import json
import operator
import uuid
from collections import defaultdict
from typing import Annotated, TypedDict

from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.graph import END, START, StateGraph


class State(TypedDict):
    steps: Annotated[list[str], operator.add]
    notes: dict


def plan(state: State) -> dict:
    return {"steps": ["plan"], "notes": {"plan": "look things up"}}


def work(state: State) -> dict:
    return {"steps": ["work"], "notes": {**state["notes"], "work": "x" * 200}}


def build(saver: PostgresSaver, interrupt: bool = False):
    builder = StateGraph(State)
    builder.add_node("plan", plan)
    builder.add_node("work", work)
    builder.add_edge(START, "plan")
    builder.add_edge("plan", "work")
    builder.add_edge("work", END)
    return builder.compile(checkpointer=saver, interrupt_before=["work"] if interrupt else None)


def age_copy(saver: PostgresSaver, source: str, target: str, days: int) -> None:
    history = list(saver.list({"configurable": {"thread_id": source}}))
    history.reverse()  # oldest first, so each checkpoint's parent exists when it is written
    parent_id = None
    for snapshot in history:
        checkpoint = dict(snapshot.checkpoint)
        ts = datetime.datetime.fromisoformat(checkpoint["ts"])
        checkpoint["ts"] = (ts - datetime.timedelta(days=days)).isoformat()
        config = {"configurable": {"thread_id": target, "checkpoint_ns": "", "checkpoint_id": parent_id}}
        written = saver.put(config, checkpoint, snapshot.metadata, checkpoint["channel_versions"])
        by_task = defaultdict(list)
        for task_id, channel, value in snapshot.pending_writes or []:
            by_task[task_id].append((channel, value))
        for task_id, writes in by_task.items():
            saver.put_writes(written, writes, task_id)
        parent_id = checkpoint["id"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--recent", type=int, default=4)
    parser.add_argument("--old", type=int, default=3)
    parser.add_argument("--age-days", type=int, default=40)
    args = parser.parse_args()

    with PostgresSaver.from_conn_string(args.dsn) as saver:
        recent = [str(uuid.uuid4()) for _index in range(args.recent)]
        for index, thread_id in enumerate(recent):
            # The first thread stops before "work": an interrupted run with pending writes.
            graph = build(saver, interrupt=index == 0)
            graph.invoke({"steps": [], "notes": {}}, {"configurable": {"thread_id": thread_id}})
        old = [str(uuid.uuid4()) for _index in range(args.old)]
        for index, thread_id in enumerate(old):
            age_copy(saver, recent[index % len(recent)], thread_id, args.age_days)
    print(json.dumps({"recent": recent, "old": old}))


if __name__ == "__main__":
    main()
