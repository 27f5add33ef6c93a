"""A stand-in for Spheron's REST API that makes and removes real machines.

Spheron is not reachable here. This HTTP server answers the requests the collection makes
(GET /api/gpu-offers, GET /api/deployments, POST /api/deployments, DELETE
/api/deployments/{id}: the documented request fields; the answers' shape is the one
plugins/module_utils/spheron_api.py reads, see tests/unit/.../fixtures/spheron/SOURCES.md),
and each deployment is a container started by a `docker run` the caller gives (a fresh
Debian 12 machine booting systemd: run_argv copies a template host's flags and volumes;
bench/eviction_to_serving.py builds its own, with the machine image it measures): POST
starts one, DELETE removes it, and `reclaim` removes one the way Spheron takes a spot
machine back (its deployment then says EVICTED). Once a machine has booted, a listener on
port 22 stands in for its sshd (the spheron_instance module waits for it); Ansible reaches
it through Docker.
"""

from __future__ import annotations

import http.server
import json
import subprocess
import threading
import time
import urllib.parse

KEY = "fleet-standin-spheron-key"
OFFERS = [
    {"id": "off-standin-spot", "provider": "standin", "gpuType": "H100-PCIe", "gpuCount": 1, "region": "LOCAL",
     "instanceType": "SPOT", "pricePerHour": 0.8, "available": True},
    {"id": "off-standin-dedicated", "provider": "standin", "gpuType": "H100-PCIe", "gpuCount": 1, "region": "LOCAL",
     "instanceType": "DEDICATED", "pricePerHour": 2.01, "available": True},
]
SSH_STANDIN = "import socket\ns = socket.socket()\ns.bind(('0.0.0.0', 22))\ns.listen(8)\nwhile True:\n    s.accept()[0].close()\n"


def docker(*args: str, check: bool = True) -> str:
    return subprocess.run(["docker", *args], check=check, capture_output=True, text=True).stdout.strip()


def run_argv(template: str, name: str, apt_dir: str) -> list[str]:
    """`docker run` for a new machine `name` with the template container's flags and
    volumes, and an apt download folder of its own (apt fails on a lock another holds)."""
    info = json.loads(docker("inspect", template))[0]
    config, host_config = info["Config"], info["HostConfig"]
    network = next(iter(info["NetworkSettings"]["Networks"]))
    argv = ["docker", "run", "--detach", "--name", name, "--hostname", name, "--cgroupns", host_config["CgroupnsMode"],
            "--shm-size", str(host_config["ShmSize"]), "--network", network, "--label", "ai-infra-standin=1"]
    if config.get("StopSignal"):
        argv += ["--stop-signal", config["StopSignal"]]
    argv += [f"--cap-add={cap}" for cap in host_config.get("CapAdd") or []]
    argv += [f"--security-opt={opt}" for opt in host_config.get("SecurityOpt") or []]
    argv += [f"--tmpfs={path}" + (f":{opts}" if opts else "") for path, opts in (host_config.get("Tmpfs") or {}).items()]
    for bind in host_config.get("Binds") or []:
        source, target = bind.split(":")[:2]
        argv.append(f"--volume={apt_dir}:{target}:rw" if target == "/var/cache/apt/archives" else f"--volume={bind}")
    return argv + [config["Image"], *(config.get("Cmd") or [])]


class StandIn:
    def __init__(self, machine_argv, apt_root: str):
        """machine_argv(name, apt_dir): the `docker run` argv of a new machine; apt_root: the
        project's apt download folders (each machine gets one of its own, see _start)."""
        self.machine_argv, self.apt_root = machine_argv, apt_root
        self.deployments: list[dict] = []
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.timings: dict[str, dict] = {}

    # --- the machines ---------------------------------------------------------------
    def _start(self, deployment: dict) -> None:
        name = deployment["name"]
        started = time.monotonic()
        apt_dir = f"{self.apt_root}/standin-{name}"
        subprocess.run(["mkdir", "-p", apt_dir + "/partial"], check=True)
        # Hard links to the bookworm hosts' downloads (apt replaces files, never edits them),
        # without their lock.
        subprocess.run(["cp", "-aln", f"{self.apt_root}/bookworm/.", apt_dir + "/"], check=False, capture_output=True)
        subprocess.run(["rm", "-f", apt_dir + "/lock"], check=False)
        docker("rm", "--force", name, check=False)
        subprocess.run(self.machine_argv(name, apt_dir), check=True, capture_output=True)
        deadline = time.time() + 120
        while docker("exec", name, "systemctl", "is-system-running", check=False) not in ("running", "degraded"):
            if time.time() > deadline:
                break
            time.sleep(1)
        docker("exec", "--detach", name, "python3", "-c", SSH_STANDIN)
        address = docker("inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", name)
        with self.lock:
            if deployment["status"] == "DEPLOYING":
                deployment.update(status="RUNNING", ipAddress=address)
        self.timings[name] = {"boot_s": time.monotonic() - started}

    def reclaim(self, name: str) -> None:
        """Spheron takes a spot machine back: gone at once, its deployment EVICTED."""
        docker("rm", "--force", name)
        with self.lock:
            for deployment in self.deployments:
                if deployment["name"] == name and deployment["status"] == "RUNNING":
                    deployment["status"] = "EVICTED"

    def remove_all(self) -> None:
        for deployment in self.deployments:
            docker("rm", "--force", deployment["name"], check=False)

    def live(self) -> list[str]:
        return sorted(d["name"] for d in self.deployments if d["status"] in ("DEPLOYING", "RUNNING"))

    # --- the API --------------------------------------------------------------------
    def handler(self):
        standin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def reply(self, code, body):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def checked(self):
                url = urllib.parse.urlparse(self.path)
                standin.requests.append((self.command, url.path))
                if self.headers.get("Authorization") != "Bearer " + KEY:
                    self.reply(401, {"message": "Unauthorized"})
                    return None
                return url

            def do_GET(self):
                url = self.checked()
                if url is None:
                    return
                query = dict(urllib.parse.parse_qsl(url.query))
                if url.path == "/api/deployments":
                    page, limit = int(query.get("page", 1)), int(query.get("limit", 100))
                    with standin.lock:
                        shown = [dict(d) for d in standin.deployments]
                    return self.reply(200, {"deployments": shown[(page - 1) * limit:page * limit]})
                if url.path == "/api/gpu-offers":
                    wanted = query.get("instanceType", "").upper()
                    return self.reply(200, {"offers": [o for o in OFFERS if not wanted or o["instanceType"] == wanted]})
                self.reply(404, {"message": "Not Found"})

            def do_POST(self):
                url = self.checked()
                if url is None:
                    return
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                offer = next((o for o in OFFERS if o["id"] == body.get("offerId")), None)
                if url.path != "/api/deployments" or offer is None:
                    return self.reply(400, {"message": "unknown offer"})
                with standin.lock:
                    deployment = {"id": "dep-standin-%d" % (len(standin.deployments) + 1), "name": body["name"],
                                  "status": "DEPLOYING", "provider": body["provider"], "region": body["region"],
                                  "instanceType": body["instanceType"], "gpuType": body["gpuType"],
                                  "gpuCount": body["gpuCount"], "pricePerHour": offer["pricePerHour"]}
                    standin.deployments.append(deployment)
                threading.Thread(target=standin._start, args=(deployment,), daemon=True).start()
                self.reply(201, {"deployment": deployment})

            def do_DELETE(self):
                url = self.checked()
                if url is None:
                    return
                deployment_id = url.path.rsplit("/", 1)[-1]
                for deployment in standin.deployments:
                    if deployment["id"] == deployment_id:
                        docker("rm", "--force", deployment["name"], check=False)
                        deployment["status"] = "TERMINATED"
                        return self.reply(200, {"message": "terminated"})
                self.reply(404, {"message": "no such deployment"})

        return Handler

    def serve(self):
        """Start serving on a free port of the controller; returns the API's URL."""
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self.handler())
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return "http://127.0.0.1:%d" % self.server.server_address[1]

    def close(self):
        self.server.shutdown()
        self.remove_all()
