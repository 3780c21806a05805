"""A MinIO admin API on a loopback port, answering as MinIO's documented API does.

No MinIO server exists on these machines, so the admin calls the platform makes go to this
recording server instead, through the real ``minio.MinioAdmin`` client: the same URLs, query
parameters, SigV4 headers and encrypted bodies (madmin's argon2id + AES-GCM/ChaCha20 sealing,
keyed by the admin's secret) that a MinIO server receives and sends. Only the calls the
platform uses are answered: canned policies, users, policy attachment; anything else is 400.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from minio.crypto import DecryptReader, encrypt

PREFIX = "/minio/admin/v3/"


class _Body:
    """What ``DecryptReader`` reads a sealed body from."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def read(self, n: int) -> bytes:
        return self._data.read(n)

    def close(self) -> None:
        pass

    def release_conn(self) -> None:
        pass


def unseal(data: bytes, secret: str) -> bytes:
    with DecryptReader(_Body(data), secret.encode()) as reader:
        return b"".join(reader.stream())


@dataclass
class MinioAdminState:
    access_key: str
    secret_key: str
    policies: dict[str, dict] = field(default_factory=dict)
    users: dict[str, dict] = field(default_factory=dict)  # access key -> secret, policies
    calls: list[tuple[str, str]] = field(default_factory=list)


def serve(state: MinioAdminState) -> tuple[ThreadingHTTPServer, str]:
    """Start the server on a free loopback port; returns it and its endpoint URL."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # quiet test output
            pass

        def do_GET(self) -> None:
            self._handle()

        def do_PUT(self) -> None:
            self._handle()

        def do_POST(self) -> None:
            self._handle()

        def do_DELETE(self) -> None:
            self._handle()

        def _handle(self) -> None:
            url = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            command = url.path.removeprefix(PREFIX)
            state.calls.append((self.command, command))
            auth = self.headers.get("authorization", "")
            if not auth.startswith(f"AWS4-HMAC-SHA256 Credential={state.access_key}/"):
                return self._error(403, "InvalidAccessKeyId", "not the admin's key")
            if self.headers.get("x-amz-content-sha256") != hashlib.sha256(body).hexdigest():
                return self._error(400, "XAmzContentSHA256Mismatch", "body digest")
            answer = self._answer(self.command, command, query, body)
            if isinstance(answer, tuple):
                return self._error(*answer)
            self.send_response(200)
            self.send_header("content-length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def _answer(self, method: str, command: str, query: dict, body: bytes):
            secret = state.secret_key
            if (method, command) == ("PUT", "add-canned-policy"):
                state.policies[query["name"]] = json.loads(body)
                return b""
            if (method, command) == ("PUT", "add-user"):
                request = json.loads(unseal(body, secret))
                user = state.users.setdefault(query["accessKey"], {"policies": []})
                user.update(secret=request["secretKey"], status=request["status"])
                return b""
            if (method, command) == ("POST", "idp/builtin/policy/attach"):
                request = json.loads(unseal(body, secret))
                if request["user"] not in state.users:
                    return 404, "XMinioAdminNoSuchUser", "The specified user does not exist."
                missing = [p for p in request["policies"] if p not in state.policies]
                if missing:
                    return 404, "XMinioAdminNoSuchPolicy", "The canned policy does not exist."
                state.users[request["user"]]["policies"] += request["policies"]
                answer = {"policiesAttached": request["policies"], "user": request["user"]}
                return encrypt(json.dumps(answer).encode(), secret)
            if (method, command) == ("GET", "list-users"):
                listed = {
                    name: {"policyName": ",".join(u["policies"]), "status": u["status"]}
                    for name, u in state.users.items()
                }
                return encrypt(json.dumps(listed).encode(), secret)
            if (method, command) == ("DELETE", "remove-user"):
                if state.users.pop(query["accessKey"], None) is None:
                    return 404, "XMinioAdminNoSuchUser", "The specified user does not exist."
                return b""
            return 400, "XMinioAdminNotImplemented", f"{method} {command} is not recorded"

        def _error(self, status: int, code: str, message: str) -> None:
            payload = json.dumps({"Code": code, "Message": message}).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}"
