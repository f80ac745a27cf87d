"""What the event tests share: a real webhook receiver (http.server in a thread) that can fail
its first requests, and a small world (local networks) to emit events in."""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from resource_mgr.events.delivery import verify
from resource_mgr.inventory.services import create_local_network


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    raw: bytes
    status: int  # what the receiver answered

    @property
    def body(self) -> dict[str, Any]:
        return json.loads(self.raw)


@dataclass
class Receiver:
    """POSTs land in `received` (every one, with the status answered). The first `fail_first`
    requests are answered `fail_status` (or hang `hang_seconds` when set), later ones 204."""
    fail_first: int = 0
    fail_status: int = 503
    hang_seconds: float = 0.0
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: Any = None
    thread: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def accepted(self) -> list[Received]:
        with self.lock:
            return [r for r in self.received if 200 <= r.status < 300]

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.accepted()) < count:
            assert time.monotonic() < deadline, f"{len(self.accepted())} of {count} accepted: {self.received}"
            time.sleep(0.05)
        return self.accepted()

    def start(self) -> "Receiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    failing = len(receiver.received) < receiver.fail_first
                    status = receiver.fail_status if failing else 204
                    receiver.received.append(Received(self.path, dict(self.headers), raw, status))
                if failing and receiver.hang_seconds:
                    time.sleep(receiver.hang_seconds)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def signed(received: Received, secret: str) -> bool:
    return verify(secret, received.raw, received.headers.get("X-Rmgr-Signature"))


def make_networks(db) -> dict[str, str]:
    with db.unit_of_work() as uow:
        gz = create_local_network(uow.session, code="GZ", name="廣州", area_code="20")
        fs = create_local_network(uow.session, code="FS", name="佛山", area_code="757")
        uow.commit()
        return {"GZ": gz.id, "FS": fs.id}
