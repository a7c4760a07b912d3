"""Keys and certificates for a Flower deployment with TLS and SuperNode authentication.

``python -m byzadam.flower.certs DIR --nodes N [--host NAME …]`` writes into ``DIR``:

- ``ca.crt``, ``ca.key``: a local certificate authority (give ``ca.crt`` to every
  SuperNode and to ``flwr``, as ``--root-certificates``/``root-certificates``);
- ``server.pem``, ``server.key``: the SuperLink's certificate, signed by the CA, for
  ``localhost``, ``127.0.0.1``, ``::1`` and every ``--host`` (a name or an IP address of
  the SuperLink's machine that the nodes use);
- ``node_I`` and ``node_I.pub`` for I = 0 … N−1: each SuperNode's authentication key pair
  (EC, SECP384R1, OpenSSH format): register the public key with ``flwr supernode
  register node_I.pub`` and start the node with ``--auth-supernode-private-key node_I``.

Existing files are kept (so re-running adds nodes without changing the CA); private keys
are written readable by their owner only.
"""
from __future__ import annotations

import argparse
import datetime
import ipaddress
import os
import sys
from typing import List, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _write(path: str, data: bytes, private: bool) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def _load_key(path: str) -> ec.EllipticCurvePrivateKey:
    with open(path, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def make(directory: str, nodes: int, hosts: Sequence[str] = (), days: int = 365) -> List[str]:
    """Writes what is missing in ``directory``; returns the paths written."""
    if nodes < 0:
        raise ValueError("nodes must be >= 0")
    os.makedirs(directory, exist_ok=True)
    written: List[str] = []
    now = datetime.datetime.now(datetime.timezone.utc)
    valid = (now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=days))
    ca_crt, ca_key = os.path.join(directory, "ca.crt"), os.path.join(directory, "ca.key")
    if not os.path.exists(ca_crt):
        key = ec.generate_private_key(ec.SECP384R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "byzadam local CA")])
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(valid[0]).not_valid_after(valid[1])
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(key, hashes.SHA256()))
        _write(ca_key, _pem_key(key), True)
        _write(ca_crt, cert.public_bytes(serialization.Encoding.PEM), False)
        written += [ca_crt, ca_key]
    server_pem = os.path.join(directory, "server.pem")
    if not os.path.exists(server_pem):
        ca_key_obj = _load_key(ca_key)
        with open(ca_crt, "rb") as f:
            ca = x509.load_pem_x509_certificate(f.read())
        key = ec.generate_private_key(ec.SECP384R1())
        names: List[x509.GeneralName] = [x509.DNSName("localhost"),
                                         x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                         x509.IPAddress(ipaddress.ip_address("::1"))]
        for h in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(h)))
            except ValueError:
                names.append(x509.DNSName(h))
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "superlink")]))
                .issuer_name(ca.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(valid[0]).not_valid_after(valid[1])
                .add_extension(x509.SubjectAlternativeName(names), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .sign(ca_key_obj, hashes.SHA256()))
        _write(os.path.join(directory, "server.key"), _pem_key(key), True)
        _write(server_pem, cert.public_bytes(serialization.Encoding.PEM), False)
        written += [server_pem, os.path.join(directory, "server.key")]
    for i in range(nodes):
        private = os.path.join(directory, f"node_{i}")
        if os.path.exists(private):
            continue
        key = ec.generate_private_key(ec.SECP384R1())
        _write(private, key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.OpenSSH,
                                          serialization.NoEncryption()), True)
        _write(private + ".pub", key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH) + b"\n", False)
        written += [private, private + ".pub"]
    return written


def main(argv: Sequence[str] = ()) -> int:
    p = argparse.ArgumentParser(prog="python -m byzadam.flower.certs",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("directory", help="where to write the keys and certificates")
    p.add_argument("--nodes", type=int, default=0, help="SuperNode key pairs to make")
    p.add_argument("--host", action="append", default=[],
                   help="another name or IP address of the SuperLink's machine (repeatable)")
    p.add_argument("--days", type=int, default=365, help="certificate validity")
    a = p.parse_args(list(argv) or None)
    for path in make(a.directory, a.nodes, a.host, a.days):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
