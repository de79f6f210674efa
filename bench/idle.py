#!/usr/bin/env python3
"""Memory of idle keep-alive connections: start Portico, open N connections, send one request
on each and read its response, keep them all open and idle, then read Portico's RSS.

    bench/idle.py                    # 10,000 connections, target/release/portico
    bench/idle.py --connections 2000 --binary target/debug/portico

Prints RSS before any connection, with all of them idle, and the cost per connection. The
client side runs in this process (one thread, non-blocking sockets), so it needs a limit on
open files above N (ulimit -n)."""

import argparse
import os
import re
import selectors
import socket
import subprocess
import sys
import tempfile
import time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--connections", type=int, default=10_000)
    ap.add_argument("--binary", default="target/release/portico")
    args = ap.parse_args()

    config = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
    config.write(
        "listen: 127.0.0.1:0\nworkers: 1\naccess_log: off\n"
        f"limits: {{max_connections: {args.connections + 100}, idle_timeout: 1h}}\n"
        "routes:\n  - {name: echo, path: /echo, methods: [GET], handler: echo}\n"
    )
    config.close()
    proc = subprocess.Popen([args.binary, "serve", "--config", config.name], stderr=subprocess.PIPE, text=True)
    addr = None
    for line in proc.stderr:
        m = re.search(r"address=(\S+)", line)
        if m:
            addr = m.group(1)
            break
    host, port = addr.rsplit(":", 1)
    time.sleep(0.2)  # let start-up allocations settle before the baseline (not a test)
    before = rss_kib(proc.pid)

    request = b"GET /echo HTTP/1.1\r\nHost: a\r\n\r\n"
    sel = selectors.DefaultSelector()
    socks = []
    pending = 0
    for _ in range(args.connections):
        s = socket.create_connection((host, int(port)))
        s.setblocking(False)
        s.sendall(request)
        sel.register(s, selectors.EVENT_READ, bytearray())
        socks.append(s)
        pending += 1
        # Keep the number of unanswered requests bounded.
        while pending > 256 or (len(socks) == args.connections and pending):
            for key, _ in sel.select(timeout=10):
                buf = key.data
                buf += key.fileobj.recv(65536)
                head_end = buf.find(b"\r\n\r\n")
                if head_end >= 0:
                    m = re.search(rb"Content-Length: (\d+)", bytes(buf[:head_end]))
                    if m and len(buf) >= head_end + 4 + int(m.group(1)):
                        sel.unregister(key.fileobj)
                        pending -= 1
    time.sleep(1.0)  # let the last responses go out before measuring (not a test)
    idle = rss_kib(proc.pid)
    per = (idle - before) * 1024 / args.connections
    print(f"connections: {args.connections}")
    print(f"RSS before: {before / 1024:.1f} MiB")
    print(f"RSS with all idle: {idle / 1024:.1f} MiB")
    print(f"per idle connection: {per:.0f} bytes")
    for s in socks:
        s.close()
    proc.terminate()
    proc.wait(timeout=10)
    os.unlink(config.name)


if __name__ == "__main__":
    sys.exit(main())
