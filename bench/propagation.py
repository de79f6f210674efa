#!/usr/bin/env python3
"""Config-change propagation: how long after the admin API acknowledges a change (its 201) the
data plane serves it. Starts `portico serve` with the admin API (one node, or two on one
PostgreSQL), then COUNT times creates a route `/p<i>` (echo handler) through the admin API of
the first node and polls the last node's data plane every 2 ms until that path answers 200;
prints the percentiles of the time from the 201 to the first 200.

    bench/propagation.py                                    # SQLite, one node
    bench/propagation.py --nodes 2 --storage postgres://postgres@127.0.0.1:5432/test

With PostgreSQL the tables are created in the database given (each run uses its own route
names, so earlier runs' routes stay but do not collide: they are deleted at the end)."""

import argparse
import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import time

TOKEN = "bench-admin-token-0123456789"


def start(binary, config, log_path):
    """Starts a node with its log in a file (never a pipe: nobody must have to drain it)."""
    log = open(log_path, "w")
    env = dict(os.environ, PORTICO_ADMIN_TOKEN=TOKEN)
    proc = subprocess.Popen(
        [binary, "serve", "--config", config],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log, env=env,
    )
    deadline = time.monotonic() + 30
    admin = data = None
    while time.monotonic() < deadline and not (admin and data):
        with open(log_path) as f:
            for line in f:
                m = re.search(r"address=(\S+)", line)
                if m and "admin API listening" in line:
                    admin = m.group(1)
                elif m and "portico listening" in line:
                    data = m.group(1)
        if proc.poll() is not None:
            sys.exit(f"portico exited: see {log_path}")
        time.sleep(0.05)
    if not (admin and data):
        proc.kill()
        sys.exit(f"portico did not start: see {log_path}")
    return proc, admin, data


def connect(addr):
    host, port = addr.rsplit(":", 1)
    return http.client.HTTPConnection(host, int(port), timeout=10)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=50)
    ap.add_argument("--nodes", type=int, default=1)
    ap.add_argument("--binary", default="target/release/portico")
    ap.add_argument("--storage", default=None, help="default: SQLite in a temporary directory")
    args = ap.parse_args()
    if args.nodes > 1 and not (args.storage or "").startswith("postgres"):
        sys.exit("several nodes need --storage postgres://...")

    work = tempfile.mkdtemp(prefix="portico-propagation-")
    storage = args.storage or f"sqlite://{work}/portico.db"
    nodes = []
    for n in range(args.nodes):
        config = os.path.join(work, f"node{n}.yaml")
        with open(config, "w") as f:
            f.write(
                "listen: 127.0.0.1:0\naccess_log: off\n"
                f"admin: {{listen: 127.0.0.1:0}}\nstorage: {storage}\n"
                "routes:\n  - {name: e, path: /e, methods: [GET], handler: echo}\n"
            )
        nodes.append(start(args.binary, config, os.path.join(work, f"node{n}.log")))
    admin = connect(nodes[0][1])
    data = connect(nodes[-1][2])
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    tag = f"{os.getpid()}x{int(time.time())}"
    created = []
    samples = []
    try:
        for i in range(args.count):
            path = f"/p{tag}-{i}"
            body = json.dumps({"name": f"p{tag}-{i}", "path": path, "methods": ["GET"], "handler": "echo"})
            admin.request("POST", "/admin/v1/routes", body, headers)
            r = admin.getresponse()
            r.read()
            acknowledged = time.monotonic()
            if r.status != 201:
                sys.exit(f"admin API answered {r.status}")
            created.append(r.getheader("Location"))
            while True:
                data.request("GET", path)
                answer = data.getresponse()
                answer.read()
                if answer.status == 200:
                    break
                if time.monotonic() - acknowledged > 10:
                    sys.exit(f"{path} not served 10 s after its 201")
                time.sleep(0.002)
            samples.append((time.monotonic() - acknowledged) * 1000)
            # Changes land at random points of the data plane's poll interval.
            time.sleep(0.05 + (i % 7) * 0.031)
    finally:
        for location in created:
            admin.request("DELETE", location, headers=headers)
            admin.getresponse().read()
        for proc, _, _ in nodes:
            proc.terminate()
            proc.wait()
    samples.sort()

    def pct(p):
        return samples[min(len(samples) - 1, int(round(p / 100 * (len(samples) - 1))))]

    kind = storage.split(":", 1)[0]
    print(f"storage={kind} nodes={args.nodes} changes={len(samples)}")
    print(f"201 -> first 200 (ms): p50 {pct(50):.0f}  p90 {pct(90):.0f}  p99 {pct(99):.0f}  max {samples[-1]:.0f}")


if __name__ == "__main__":
    main()
