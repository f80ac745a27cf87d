"""A real HTTP server for end-to-end tests: the app under waitress on a free port of 127.0.0.1,
against the test database (SQLite file or PostgreSQL), with two local networks and tokens.

    def test_something(live_server):
        r = live_server.get("/resources", token="admin")
        tok = live_server.token(["sales"], ["GZ"])        # a token of your own
        r = live_server.post("/jobs/sweep", token=tok)     # a name from .tokens or a secret

Jobs run in the server's embedded thread pool (no broker), as in the embedded default."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
import waitress
from waitress import wasyncore

from resource_mgr.config import Settings, load_settings
from resource_mgr.db import Database
from resource_mgr.inventory.services import create_local_network
from resource_mgr.security import services as security
from resource_mgr.security.models import User
from resource_mgr.states import Role

from interfaces.http.app import create_app

ALL_ROLES = [r.value for r in Role]


@dataclass
class LiveServer:
    url: str  # http://127.0.0.1:PORT
    db: Database
    settings: Settings
    networks: dict[str, str]  # local network code → id
    tokens: dict[str, str] = field(default_factory=dict)  # name → bearer secret
    http: requests.Session = field(default_factory=requests.Session)
    _users: int = 0

    @property
    def api(self) -> str:
        return self.url + "/api/v1"

    def token(self, roles: list[str], networks: list[str], name: str | None = None) -> str:
        """A new bearer token for a new user with these roles and local network codes (or "*")."""
        self._users += 1
        username = name or f"e2e-user-{self._users}"
        with self.db.unit_of_work() as uow:
            # No password (nobody logs in as these users): skips the deliberately slow argon2 hash.
            uow.session.add(User(username=username, password_hash="!", roles=sorted(roles),
                                 local_networks=sorted(networks)))
            uow.session.flush()
            _, secret = security.create_token(uow.session, roles=roles, local_networks=networks, user=username)
            uow.commit()
        if name:
            self.tokens[name] = secret
        return secret

    def headers(self, token: str | None) -> dict[str, str]:
        if token is None:
            return {}
        return {"Authorization": f"Bearer {self.tokens.get(token, token)}"}

    def request(self, method: str, path: str, token: str | None = "admin", **kwargs: Any) -> requests.Response:
        url = path if path.startswith("http") else self.api + path
        headers = {**self.headers(token), **kwargs.pop("headers", {})}
        return self.http.request(method, url, headers=headers, timeout=30, **kwargs)

    def get(self, path: str, token: str | None = "admin", **kwargs: Any) -> requests.Response:
        return self.request("GET", path, token, **kwargs)

    def post(self, path: str, token: str | None = "admin", **kwargs: Any) -> requests.Response:
        return self.request("POST", path, token, **kwargs)


def start_server(app: Any) -> tuple[Any, threading.Thread, str]:
    server = waitress.create_server(app, host="127.0.0.1", port=0, threads=4, ident="rmgr-e2e",
                                    asyncore_loop_timeout=0.2)
    server.stopping = False

    def run() -> None:
        try:
            server.run()
        except (OSError, ValueError):  # the socket closed under select() while stopping
            if not server.stopping:
                raise

    thread = threading.Thread(target=run, name="waitress-e2e", daemon=True)
    thread.start()
    return server, thread, f"http://127.0.0.1:{server.effective_port}"


def stop_server(server: Any, thread: threading.Thread) -> None:
    server.stopping = True
    server.task_dispatcher.shutdown()
    wasyncore.close_all(server._map)  # the listening socket, open channels and the trigger
    thread.join(timeout=5)


@pytest.fixture
def live_server(db: Database):
    """A running server on the (emptied) test database with local networks GZ and FS and tokens:
    admin (every role, every network), reader_gz (auditor, GZ), sales_gz (sales, GZ),
    dispatch_gz (dispatch, GZ), sales_fs (sales, FS)."""
    yield from _serve(db)


@pytest.fixture(scope="module")
def shared_live_server(module_db: Database):
    """The same server, one for a whole module whose tests only read (tests/conftest.py module_db):
    a module makes it its `live_server` with a module-scoped fixture of that name."""
    yield from _serve(module_db)


def _serve(db: Database):
    with db.unit_of_work() as uow:
        gz = create_local_network(uow.session, code="GZ", name="廣州", area_code="20", province="廣東")
        fs = create_local_network(uow.session, code="FS", name="佛山", area_code="757", province="廣東")
        networks = {"GZ": gz.id, "FS": fs.id}
        uow.commit()
    settings = load_settings(environ={}, database_url=db.url, testing=True)
    app = create_app(settings, database=db)
    server, thread, url = start_server(app)
    live = LiveServer(url=url, db=db, settings=settings, networks=networks)
    live.token(ALL_ROLES, ["*"], name="admin")
    live.token(["auditor"], ["GZ"], name="reader_gz")
    live.token(["sales"], ["GZ"], name="sales_gz")
    live.token(["dispatch"], ["GZ"], name="dispatch_gz")
    live.token(["sales"], ["FS"], name="sales_fs")
    try:
        yield live
    finally:
        live.http.close()
        stop_server(server, thread)
