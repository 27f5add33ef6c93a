// What LangGraph Studio asks of a server, with the official JS SDK, through the edge.
// Run by test_langgraph_server.py with node, from a folder where the pinned
// @langchain/langgraph-sdk is installed; EDGE_URL and EDGE_TOKEN in the environment,
// NODE_EXTRA_CA_CERTS the edge's internal root. Prints one JSON object: what each step saw.
import { Client } from "@langchain/langgraph-sdk";

const headers = { Authorization: `Bearer ${process.env.EDGE_TOKEN}` };
const client = new Client({ apiUrl: process.env.EDGE_URL, defaultHeaders: headers });
const seen = {};

async function events(stream) {
  const kinds = {};
  for await (const chunk of stream) kinds[chunk.event] = (kinds[chunk.event] ?? 0) + 1;
  return kinds;
}

// Studio's first calls: the server's info, the assistants, a graph with xray, schemas.
seen.info = await (await fetch(`${process.env.EDGE_URL}/info`, { headers })).json();
const assistants = await client.assistants.search({ limit: 100 });
seen.graphs = assistants.map((a) => a.graph_id).sort();
const smoke = assistants.find((a) => a.graph_id === "smoke");
const graph = await client.assistants.getGraph(smoke.assistant_id, { xray: true });
seen.graphNodes = graph.nodes.map((n) => n.id).sort();
const schemas = await client.assistants.getSchemas(smoke.assistant_id);
seen.schemaKeys = Object.keys(schemas).sort();

// A thread run streamed in the modes Studio uses. Its second node waits 2 s: once in CI
// this stream came back empty with an instant run. The likely cause, from Aegra 0.11.0's
// code: it replays a run's stored events, then subscribes to the live ones, and a run that
// another replica's worker finished between the two is missed. Studio's runs call a model
// and last longer than that gap.
const thread = await client.threads.create({ metadata: { from: "js-sdk" } });
seen.streamEvents = await events(client.runs.stream(thread.thread_id, "smoke", {
  input: {}, streamMode: ["values", "updates", "debug"], config: { configurable: { second_seconds: 2 } },
}));
seen.search = (await client.threads.search({ metadata: { from: "js-sdk" }, limit: 10 })).map((t) => t.thread_id);
seen.threadId = thread.thread_id;
seen.state = (await client.threads.getState(thread.thread_id)).values;
seen.historyLength = (await client.threads.getHistory(thread.thread_id)).length;

// The model's messages as they come (messages-tuple), on the agent graph.
const chat = await client.threads.create();
seen.messageEvents = await events(client.runs.stream(chat.thread_id, "agent", {
  input: { messages: [{ role: "user", content: "Name one colour." }] }, streamMode: ["messages-tuple"],
}));

// A static breakpoint, then Studio's Continue: a run with input null.
const paused = await client.threads.create();
await client.runs.wait(paused.thread_id, "smoke", { input: {}, interruptBefore: ["second"] });
seen.pausedNext = (await client.threads.getState(paused.thread_id)).next;
seen.continued = await client.runs.wait(paused.thread_id, "smoke", { input: null });

// A dynamic interrupt, resumed with Command(resume=...).
const asking = await client.threads.create();
const config = { configurable: { ask: true } };
await client.runs.wait(asking.thread_id, "smoke", { input: {}, config });
seen.interrupts = (await client.threads.getState(asking.thread_id)).tasks.flatMap((t) => t.interrupts.map((i) => i.value));
seen.resumed = await client.runs.wait(asking.thread_id, "smoke", { command: { resume: "from js" }, config });

console.log(JSON.stringify(seen));
