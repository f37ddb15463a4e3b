#!/usr/bin/env python3
"""Test certificates: a CA, and a server certificate it signs for HOST (DNS
name) and 127.0.0.1. Writes DIR/ca.crt, DIR/server.crt and DIR/server.key.

usage: tls-certs.py DIR HOST
"""
import datetime
import ipaddress
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

DIR, HOST = sys.argv[1], sys.argv[2]
NOW = datetime.datetime.utcnow()


def name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def write(path, data):
    with open(f"{DIR}/{path}", "wb") as f:
        f.write(data)


ca_key = ec.generate_private_key(ec.SECP256R1())
ca = (
    x509.CertificateBuilder()
    .subject_name(name("berth test CA"))
    .issuer_name(name("berth test CA"))
    .public_key(ca_key.public_key())
    .serial_number(x509.random_serial_number())
    .not_valid_before(NOW - datetime.timedelta(days=1))
    .not_valid_after(NOW + datetime.timedelta(days=2))
    .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
    .add_extension(
        x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
    )
    .sign(ca_key, hashes.SHA256())
)
key = ec.generate_private_key(ec.SECP256R1())
cert = (
    x509.CertificateBuilder()
    .subject_name(name(HOST))
    .issuer_name(ca.subject)
    .public_key(key.public_key())
    .serial_number(x509.random_serial_number())
    .not_valid_before(NOW - datetime.timedelta(days=1))
    .not_valid_after(NOW + datetime.timedelta(days=2))
    .add_extension(
        x509.SubjectAlternativeName(
            [x509.DNSName(HOST), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        ),
        critical=False,
    )
    .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    .sign(ca_key, hashes.SHA256())
)
write("ca.crt", ca.public_bytes(serialization.Encoding.PEM))
write("server.crt", cert.public_bytes(serialization.Encoding.PEM))
write(
    "server.key",
    key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ),
)
