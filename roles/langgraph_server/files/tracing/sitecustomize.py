"""Traces of the LangGraph server process, sent to Arize Phoenix.

Python imports this module at start because the server's unit puts its directory on
PYTHONPATH when tracing is on; the graphs' own code is not touched. Every span gets the
GPU's instance type and hourly price (from the inventory, through the env file), so a
run's cost is price / 3600 x its root span's duration. thread_id and run_id reach the
spans as run metadata, which the LangGraph server sets on every run.

A tracing failure never stops the server: it logs one line and the server runs untraced.
"""

import os
import sys

# The tracer for the graphs' own spans (the builtin app's `model call` spans, one per model
# call: the worker and its price, for the cost per run); None while tracing is off.
AI_INFRA_TRACER = None


def _setup():
    global AI_INFRA_TRACER
    endpoint = os.environ.get("AI_INFRA_PHOENIX_ENDPOINT", "")
    api_key = os.environ.get("AI_INFRA_PHOENIX_API_KEY", "")
    if not endpoint or not api_key:
        return
    from openinference.instrumentation.langchain import LangChainInstrumentor
    from opentelemetry.sdk.trace import SpanProcessor
    from phoenix.otel import register

    attributes = {}
    if os.environ.get("AI_INFRA_GPU_INSTANCE_TYPE"):
        attributes["gpu.instance_type"] = os.environ["AI_INFRA_GPU_INSTANCE_TYPE"]
    if os.environ.get("AI_INFRA_GPU_HOURLY_USD"):
        attributes["gpu.hourly_usd"] = float(os.environ["AI_INFRA_GPU_HOURLY_USD"])

    class GpuCostAttributes(SpanProcessor):
        def on_start(self, span, parent_context=None):
            span.set_attributes(attributes)

    provider = register(
        endpoint=endpoint.rstrip("/") + "/v1/traces",
        api_key=api_key,
        project_name=os.environ.get("AI_INFRA_PHOENIX_PROJECT", "langgraph"),
        batch=True,
        # Not the process's global provider: the server's web framework traces every HTTP
        # request through that one (Caddy's health checks every 10 s, each a root span
        # that run_costs would read as a run). Only the graphs' spans are sent.
        set_global_tracer_provider=False,
        verbose=False,
    )
    # Keep register()'s exporter: without replace_default_processor=False it is dropped.
    provider.add_span_processor(GpuCostAttributes(), replace_default_processor=False)
    try:
        # Aegra's own processor: the run's graph_id (which Aegra leaves out of the run's
        # metadata), thread and user on every span of a run, for run_costs.
        from aegra_api.observability.span_enrichment import SpanEnrichmentProcessor
    except ImportError:  # langgraph dev: its run metadata has the graph already
        pass
    else:
        provider.add_span_processor(SpanEnrichmentProcessor(), replace_default_processor=False)
    LangChainInstrumentor().instrument(tracer_provider=provider)
    AI_INFRA_TRACER = provider.get_tracer("ai_infra.model_pools")


try:
    _setup()
except Exception as exc:  # pylint: disable=broad-except
    print("ai-infra tracing disabled: %s: %s" % (type(exc).__name__, exc), file=sys.stderr)
