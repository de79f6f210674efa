#!/usr/bin/env python3
"""Admin API latency at a fixed request rate (open loop): start `portico serve` with the admin
API on a SQLite store, send a mix of admin requests at RATE per second for DURATION seconds,
and print latency percentiles measured from each request's scheduled time (so a stall is
counted against every request it delays, not hidden by a closed loop).

    bench/admin.py                                  # 200 req/s, 30 s, target/release/portico
    bench/admin.py --rate 200 --duration 30 --storage postgres://postgres@127.0.0.1/test

The mix: 40% GET of one project, 30% GET of a page of 20, 20% PATCH, 10% POST. Portico is
pinned to cpu0 and this client to cpu1 (taskset), as in the proxy rig."""

import argparse
import http.client
import json
import os
import queue
import random
import re
import subprocess
import sys
import tempfile
import threading
import time

TOKEN = "bench-admin-token-0123456789"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=200)
    ap.add_argument("--duration", type=float, default=30)
    ap.add_argument("--binary", default="target/release/portico")
    ap.add_argument("--storage", default=None, help="default: sqlite in a temporary directory")
    ap.add_argument("--workers", type=int, default=16)
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="portico-admin-bench-")
    storage = args.storage or f"sqlite://{work}/portico.db"
    config = os.path.join(work, "admin.yaml")
    with open(config, "w") as f:
        f.write(
            "listen: 127.0.0.1:0\nworkers: 1\naccess_log: off\n"
            f"admin: {{listen: 127.0.0.1:0}}\nstorage: {storage}\n"
            "routes:\n  - {name: e, path: /e, methods: [GET], handler: echo}\n"
        )
    env = dict(os.environ, PORTICO_ADMIN_TOKEN=TOKEN)
    proc = subprocess.Popen(
        ["taskset", "-c", "0", args.binary, "serve", "--config", config],
        stderr=subprocess.PIPE, text=True, env=env,
    )
    os.sched_setaffinity(0, {1})
    addr = None
    for line in proc.stderr:
        m = re.search(r"address=(\S+)", line)
        if m and "admin API listening" in line:
            addr = m.group(1)
            break
    # Portico logs each admin request on stderr: keep reading it, or the pipe fills and
    # Portico waits on it.
    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
    host, port = addr.rsplit(":", 1)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}

    def conn():
        return http.client.HTTPConnection(host, int(port), timeout=10)

    # Some projects to read and change.
    c = conn()
    ids = []
    for i in range(200):
        c.request("POST", "/admin/v1/projects", json.dumps({"name": f"seed-{i}"}), headers)
        r = c.getresponse()
        ids.append(json.loads(r.read())["id"])
    counter = [0]
    lock = threading.Lock()

    def request(c):
        roll = random.random()
        if roll < 0.4:
            c.request("GET", f"/admin/v1/projects/{random.choice(ids)}", headers=headers)
        elif roll < 0.7:
            c.request("GET", "/admin/v1/projects?limit=20", headers=headers)
        elif roll < 0.9:
            body = json.dumps({"description": f"d{random.random()}"})
            c.request("PATCH", f"/admin/v1/projects/{random.choice(ids)}", body, headers)
        else:
            with lock:
                counter[0] += 1
                n = counter[0]
            c.request("POST", "/admin/v1/projects", json.dumps({"name": f"new-{n}"}), headers)
        r = c.getresponse()
        r.read()
        return r.status

    jobs = queue.Queue()
    latencies = []
    errors = []

    def worker():
        c = conn()
        while True:
            due = jobs.get()
            if due is None:
                return
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                status = request(c)
                if status >= 400:
                    errors.append(status)
            except Exception as e:  # a broken connection counts, and is replaced
                errors.append(str(e))
                c = conn()
            done = time.monotonic()
            with lock:
                latencies.append(done - due)

    threads = [threading.Thread(target=worker) for _ in range(args.workers)]
    for t in threads:
        t.start()
    start = time.monotonic() + 0.5
    total = int(args.rate * args.duration)
    for i in range(total):
        jobs.put(start + i / args.rate)
    for _ in threads:
        jobs.put(None)
    for t in threads:
        t.join()
    proc.terminate()
    proc.wait(timeout=10)

    latencies.sort()
    pct = lambda p: latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1000
    print(f"requests: {len(latencies)} at {args.rate:.0f}/s for {args.duration:.0f} s, storage {storage.split('://')[0]}")
    print(f"errors: {len(errors)} {sorted(set(map(str, errors)))[:5]}")
    print(f"latency from schedule: p50 {pct(50):.2f} ms, p90 {pct(90):.2f} ms, p99 {pct(99):.2f} ms, max {latencies[-1] * 1000:.2f} ms")


if __name__ == "__main__":
    sys.exit(main())
