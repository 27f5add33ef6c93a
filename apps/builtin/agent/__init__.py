"""The default application of the langgraph_server role: the hand-written guide's supervisor ->
worker graph in today's LangGraph API (graph.py), and a graph that needs no model
(smoke.py), which the role runs after each deployment and the tests use for durability."""
