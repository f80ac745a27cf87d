"""GET /jobs/{id} over the app: a job is seen only by principals of every local network it
touches (not by whoever shares the creator's name), GET /jobs/sweep is a 405 problem, and a job
never shows where its upload waits."""
from __future__ import annotations

import pytest

from resource_mgr.inventory import services as inv
from resource_mgr.jobs import services as jobs

from security_helpers import bearer, ensure_security_tables, issue, make_app


@pytest.fixture
def world(db):
    ensure_security_tables(db)
    with db.unit_of_work() as uow:
        gz = inv.create_local_network(uow.session, code="GZ", name="廣州", area_code="20").id
        fs = inv.create_local_network(uow.session, code="FS", name="佛山", area_code="757").id
        made = {
            "gz": jobs.create_job(uow.session, "sweep_expired", {"local_network_ids": [gz]}, created_by="system:bss",
                                  local_network_id=gz).id,
            "fs": jobs.create_job(uow.session, "sweep_expired", {"local_network_ids": [fs]}, created_by="system:bss",
                                  local_network_id=fs).id,
            "both": jobs.create_job(uow.session, "sweep_expired", {"local_network_ids": [gz, fs]},
                                    created_by="system:bss", local_network_ids=[gz, fs]).id,
            "any": jobs.create_job(uow.session, "import", {"path": "/srv/rmgr/uploads/01X-b.zip", "filename": "b.zip"},
                                   created_by="system:bss").id,
        }
        uow.commit()
    app = make_app(db)
    tokens = {
        "gz": issue(db, ["dispatch"], ["GZ"], system="bss")[1],  # every --system bss token is "system:bss"
        "fs": issue(db, ["dispatch"], ["FS"], system="bss")[1],
        "both": issue(db, ["dispatch"], ["GZ", "FS"], system="bss")[1],
        "all": issue(db, ["admin"], ["*"], system="bss")[1],
    }
    return app.test_client(), tokens, made


def test_a_job_is_seen_by_its_local_networks_only(world):
    client, tokens, made = world
    seen = {(who, what): client.get(f"/api/v1/jobs/{job}", headers=bearer(tokens[who])).status_code
            for who in tokens for what, job in made.items()}
    assert seen == {
        ("gz", "gz"): 200, ("gz", "fs"): 404, ("gz", "both"): 404, ("gz", "any"): 404,
        ("fs", "gz"): 404, ("fs", "fs"): 200, ("fs", "both"): 404, ("fs", "any"): 404,
        ("both", "gz"): 200, ("both", "fs"): 200, ("both", "both"): 200, ("both", "any"): 404,
        ("all", "gz"): 200, ("all", "fs"): 200, ("all", "both"): 200, ("all", "any"): 200,
    }
    r = client.get(f"/api/v1/jobs/{made['fs']}", headers=bearer(tokens["gz"]))
    assert r.json["code"] == "not_found" and r.json["detail"] == f"no job with id {made['fs']}"


def test_a_sweep_started_by_a_scoped_principal_is_scoped_to_its_networks(world):
    client, tokens, made = world
    r = client.post("/api/v1/jobs/sweep", headers=bearer(tokens["both"]))
    assert r.status_code == 202, r.json
    job_id = r.json["id"]
    assert client.get(f"/api/v1/jobs/{job_id}", headers=bearer(tokens["both"])).status_code == 200
    assert client.get(f"/api/v1/jobs/{job_id}", headers=bearer(tokens["gz"])).status_code == 404


def test_get_jobs_sweep_is_method_not_allowed(world):
    client, tokens, _ = world
    r = client.get("/api/v1/jobs/sweep", headers=bearer(tokens["all"]))
    assert r.status_code == 405 and r.headers["Content-Type"].startswith("application/problem+json")
    assert r.json["code"] == "method_not_allowed" and "POST" in r.json["detail"]
    assert r.headers["Allow"] == "POST"


def test_a_job_does_not_show_server_paths(world):
    client, tokens, made = world
    r = client.get(f"/api/v1/jobs/{made['any']}", headers=bearer(tokens["all"]))
    assert r.status_code == 200 and r.json["params"] == {"filename": "b.zip"} and "/srv" not in r.get_data(as_text=True)
    assert r.json["attempts"] == 0
