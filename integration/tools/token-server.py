#!/usr/bin/env python3
"""A registry token server for tests (docker distribution's token auth):
issues RS256 JWTs with an x5c header to clients that send the given Basic
credentials, for the scopes they ask. Writes its certificate to DIR/token.crt
(the registry's rootcertbundle), prints "ready", serves on 127.0.0.1:PORT.

usage: token-server.py DIR PORT USER PASSWORD
"""
import base64
import datetime
import http.server
import json
import sys
import time
from urllib.parse import parse_qs, urlparse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

DIR, PORT, USER, PASSWORD = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
NAME = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "berth-test-token")])
NOW = datetime.datetime.utcnow()
CERT = (
    x509.CertificateBuilder()
    .subject_name(NAME)
    .issuer_name(NAME)
    .public_key(KEY.public_key())
    .serial_number(1)
    .not_valid_before(NOW - datetime.timedelta(days=1))
    .not_valid_after(NOW + datetime.timedelta(days=1))
    .sign(KEY, hashes.SHA256())
)
with open(DIR + "/token.crt", "wb") as f:
    f.write(CERT.public_bytes(serialization.Encoding.PEM))
X5C = base64.b64encode(CERT.public_bytes(serialization.Encoding.DER)).decode()
WANT = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        q = parse_qs(urlparse(self.path).query)
        if self.headers.get("Authorization", "") != WANT:
            self.send_response(401)
            self.end_headers()
            return
        access = []
        for scope in q.get("scope", []):
            kind, name, actions = scope.split(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        header = {"alg": "RS256", "typ": "JWT", "x5c": [X5C]}
        claims = {"iss": "berth-test", "sub": USER, "aud": q.get("service", [""])[0],
                  "exp": now + 600, "nbf": now - 10, "iat": now, "jti": f"{now}-{id(self)}",
                  "access": access}
        signing = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
        sig = KEY.sign(signing.encode(), padding.PKCS1v15(), hashes.SHA256())
        token = signing + "." + b64url(sig)
        body = json.dumps({"token": token, "access_token": token, "expires_in": 600}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


server = http.server.HTTPServer(("127.0.0.1", PORT), Handler)
print("ready", flush=True)
server.serve_forever()
