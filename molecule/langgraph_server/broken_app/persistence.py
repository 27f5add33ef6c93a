"""Valid, so that the server gets as far as importing the broken graph."""

import contextlib

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore


@contextlib.asynccontextmanager
async def checkpointer():
    yield InMemorySaver()


@contextlib.asynccontextmanager
async def store():
    yield InMemoryStore()
