"""Test helpers for auth: real RSA and EC keys made here, tokens signed with them, and a
JWKS served over HTTP by a local server whose keys can be rotated."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

SECRET = "a-development-secret-of-32-bytes-at-least"


class KeyPair:
    """A private key, its PEM public key and its JWK (with `kid`)."""

    def __init__(self, kind: str = "RSA", kid: str = "k1", bits: int = 2048,
                 curve: ec.EllipticCurve | None = None) -> None:
        self.kid = kid
        if kind == "RSA":
            self.private: Any = rsa.generate_private_key(public_exponent=65537, key_size=bits)
            self.alg = "RS256"
            jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        else:
            self.private = ec.generate_private_key(curve or ec.SECP256R1())
            self.alg = {"secp256r1": "ES256", "secp384r1": "ES384",
                        "secp521r1": "ES512"}[self.private.curve.name]
            jwk = jwt.algorithms.ECAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        self.jwk = {**jwk, "kid": kid, "use": "sig"}
        self.public_pem = self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def token(self, sub: str | None = "alice", *, alg: str | None = None,
              kid: str | bool = True, ttl: float = 300, **claims: Any) -> str:
        """A signed token; `kid` True: this key's, False: none, a string: that one. Claims
        given as None are left out."""
        now = int(time.time())
        payload = {"sub": sub, "iat": now, "exp": now + ttl, **claims}
        payload = {k: v for k, v in payload.items() if v is not None}
        headers = {"kid": self.kid if kid is True else kid} if kid else None
        return jwt.encode(payload, self.private, algorithm=alg or self.alg, headers=headers)


def hs_token(sub: str = "alice", secret: str = SECRET, ttl: float = 300, **claims: Any) -> str:
    now = int(time.time())
    payload = {"sub": sub, "iat": now, "exp": now + ttl, **claims}
    return jwt.encode({k: v for k, v in payload.items() if v is not None}, secret,
                      algorithm="HS256")


class JWKSServer:
    """A JWKS at ``url`` on a local port; `keys` can be replaced (rotation); counts hits."""

    def __init__(self, *keys: KeyPair) -> None:
        self.keys = list(keys)
        self.hits = 0
        self.fail = False
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                owner.hits += 1
                if owner.fail:
                    self.send_response(503)
                    self.end_headers()
                    return
                body = json.dumps({"keys": [k.jwk for k in owner.keys]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/.well-known/jwks.json"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
