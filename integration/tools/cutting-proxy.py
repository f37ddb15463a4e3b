#!/usr/bin/env python3
"""A registry front for tests that breaks one upload off, as a flaky network
does: every request is passed to the registry at UPSTREAM (host:port) with
its Host header kept (so the registry's upload locations point back here),
except the first blob-upload PATCH of at least 64 KiB. Of that one only the
first half reaches the registry; then the client's connection is closed
without an answer. The cut is logged to DIR/cuts.log as "cut OFFSET". Prints
"ready PORT" once it listens on 127.0.0.1.

usage: cutting-proxy.py DIR UPSTREAM
"""
import http.client
import http.server
import os
import sys
import threading

DIR, UPSTREAM = sys.argv[1], sys.argv[2]
HOP = {"connection", "transfer-encoding", "keep-alive"}
STATE = {"cut": False}
LOCK = threading.Lock()


class Front(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def forward(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        cut = False
        if self.command == "PATCH" and body and len(body) >= 65536:
            with LOCK:
                cut = not STATE["cut"]
                STATE["cut"] = True
        if cut:
            half = len(body) // 2
            start = int((self.headers.get("Content-Range") or "0-0").split("-")[0])
            body = body[:half]
            headers = {k: v for k, v in headers.items() if k.lower() not in ("content-length", "content-range")}
            headers["Content-Length"] = str(half)
            headers["Content-Range"] = f"{start}-{start + half - 1}"
        conn = http.client.HTTPConnection(UPSTREAM)
        conn.request(self.command, self.path, body=body, headers=headers)
        r = conn.getresponse()
        data = r.read()
        if cut:
            with open(os.path.join(DIR, "cuts.log"), "a") as f:
                f.write(f"cut {start + half} of a {n}-byte chunk, registry said {r.status}\n")
            # The registry has half; the client hears nothing.
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.send_response(r.status)
        for k, v in r.getheaders():
            if k.lower() not in HOP and k.lower() != "content-length":
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = forward


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Front)
print(f"ready {server.server_address[1]}", flush=True)
server.serve_forever()
