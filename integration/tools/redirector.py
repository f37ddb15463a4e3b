#!/usr/bin/env python3
"""A registry front for tests, as registries backed by object storage behave:
every request is passed to the registry at UPSTREAM (host:port), except blob
GETs, which are answered with a 307 redirect to a second server on another
host name (localhost). That server serves the blob from the registry's
STORAGE directory and logs, a line per request, whether it carried an
Authorization header, to DIR/blob-requests.log. Prints "ready FRONT BLOBS"
(the two ports) once both listen on 127.0.0.1.

usage: redirector.py DIR UPSTREAM STORAGE
"""
import http.client
import http.server
import os
import re
import sys
import threading

DIR, UPSTREAM, STORAGE = sys.argv[1], sys.argv[2], sys.argv[3]
BLOB = re.compile(r"^/v2/.+/blobs/(sha256:[0-9a-f]{64})$")
HOP = {"connection", "transfer-encoding", "keep-alive", "host"}
LOG_LOCK = threading.Lock()


class Front(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def forward(self):
        m = BLOB.match(self.path)
        if m and self.command == "GET":
            self.send_response(307)
            self.send_header("Location", f"http://localhost:{BLOB_PORT}/blobs/{m.group(1)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = None
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            body = self.rfile.read(n)
        conn = http.client.HTTPConnection(UPSTREAM)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        conn.request(self.command, self.path, body=body, headers=headers)
        r = conn.getresponse()
        data = r.read()
        self.send_response(r.status)
        for k, v in r.getheaders():
            if k.lower() not in HOP and k.lower() != "content-length":
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_HEAD = forward


class Blobs(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_GET(self):
        auth = "auth" if self.headers.get("Authorization") else "no-auth"
        with LOG_LOCK, open(os.path.join(DIR, "blob-requests.log"), "a") as f:
            f.write(f"{self.path} {auth}\n")
        m = re.match(r"^/blobs/sha256:([0-9a-f]{64})$", self.path)
        path = m and os.path.join(
            STORAGE, "docker/registry/v2/blobs/sha256", m.group(1)[:2], m.group(1), "data"
        )
        if not path or not os.path.exists(path):
            self.send_error(404)
            return
        data = open(path, "rb").read()
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


front = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Front)
blobs = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Blobs)
BLOB_PORT = blobs.server_address[1]
for s in (front, blobs):
    threading.Thread(target=s.serve_forever, daemon=True).start()
print(f"ready {front.server_address[1]} {BLOB_PORT}", flush=True)
threading.Event().wait()
