#!/usr/bin/env python3
"""Memory of idle keep-alive connections: start Portico, open N connections, send one request
on each and read its response, keep them all open and idle, then read Portico's RSS.

    bench/idle.py                    # 10,000 connections, target/release/portico
    bench/idle.py --http2            # the same over HTTP/2 (prior knowledge), one stream each
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


def h1_answered(buf):
    head_end = buf.find(b"\r\n\r\n")
    if head_end < 0:
        return False
    m = re.search(rb"Content-Length: (\d+)", bytes(buf[:head_end]))
    return bool(m) and len(buf) >= head_end + 4 + int(m.group(1))


def h2_frame(kind, flags, stream, payload):
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload


def h2_literal(name, value):
    # HPACK literal without indexing, new name (RFC 7541 §6.2.2), lengths < 127.
    return bytes([0x00, len(name)]) + name + bytes([len(value)]) + value


# Preface, empty SETTINGS, SETTINGS ACK (for the server's), and GET /echo on stream 1.
H2_REQUEST = (
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    + h2_frame(0x4, 0, 0, b"")
    + h2_frame(0x4, 0x1, 0, b"")
    + h2_frame(
        0x1,
        0x1 | 0x4,
        1,
        h2_literal(b":method", b"GET")
        + h2_literal(b":scheme", b"http")
        + h2_literal(b":path", b"/echo")
        + h2_literal(b":authority", b"a"),
    )
)


def h2_answered(buf):
    """Whether a frame with END_STREAM on stream 1 has arrived."""
    at = 0
    while at + 9 <= len(buf):
        length = int.from_bytes(buf[at : at + 3], "big")
        kind, flags = buf[at + 3], buf[at + 4]
        stream = int.from_bytes(buf[at + 5 : at + 9], "big") & 0x7FFFFFFF
        if at + 9 + length > len(buf):
            return False
        if stream == 1 and kind in (0x0, 0x1) and flags & 0x1:
            return True
        at += 9 + length
    return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--connections", type=int, default=10_000)
    ap.add_argument("--binary", default="target/release/portico")
    ap.add_argument("--http2", action="store_true", help="HTTP/2 by prior knowledge")
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

    request = H2_REQUEST if args.http2 else b"GET /echo HTTP/1.1\r\nHost: a\r\n\r\n"
    answered = h2_answered if args.http2 else h1_answered
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
                if answered(buf):
                    sel.unregister(key.fileobj)
                    pending -= 1
    time.sleep(1.0)  # let the last responses go out before measuring (not a test)
    idle = rss_kib(proc.pid)
    per = (idle - before) * 1024 / args.connections
    print(f"connections: {args.connections} ({'HTTP/2' if args.http2 else 'HTTP/1.1'})")
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
