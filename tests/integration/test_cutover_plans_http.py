"""The copper-to-fibre planner over HTTP: JSON, CSV and Excel answers of the same plan, the roles
and local networks, and bad scopes as problem+json (the network is tests/planner_world.py):

    DSLAM ─ MDF-A ─┐             ┌─ DBOX-A (ADSL: rooms A, C, D2, H)
                   ├─ CROSS ─────┤
    PSTN  ─ MDF-B ─┘             └─ DBOX-B (POTS: rooms A, F, X, D1)
"""
from __future__ import annotations

import pytest

import planner_world
from design_world import DesignWorld
from resource_mgr.cutovers.files import read_mapping
from security_helpers import bearer, issue, make_app

URL = "/api/v1/cutovers/plans/copper-to-fibre"


@pytest.fixture
def http(db):
    with db.unit_of_work() as uow:
        pw = planner_world.build(uow.session)
        DesignWorld(uow.session, code="SZ")
        uow.commit()
    app = make_app(db)
    tokens = {"planner": issue(db, ["planner"], ["GZ"])[1], "admin": issue(db, ["admin"])[1],
              "sales": issue(db, ["sales"], ["GZ"])[1], "other": issue(db, ["planner"], ["SZ"])[1]}
    return app.test_client(), tokens, pw


def test_json_csv_and_xlsx_are_the_same_plan(http):
    client, tokens, pw = http
    h = bearer(tokens["planner"])
    r = client.post(URL, json={"scope_id": pw.c.cross, "one_line_per_address": True}, headers=h)
    assert r.status_code == 200, r.get_json()
    plan = r.get_json()
    assert len(plan["rows"]) == 4 and len(plan["unmapped"]) == 4 and plan["counts"]["rows"] == 4
    assert set(plan["rows"][0]) == {"old", "new", "keep_number"}
    assert {u["reason_code"] for u in plan["unmapped"]} == {"box_full", "no_fibre_coverage", "no_pon_capacity",
                                                           "budget"}

    r = client.post(URL + "?format=csv", json={"scope_id": pw.c.cross, "one_line_per_address": True}, headers=h)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert r.headers["Content-Disposition"] == f'attachment; filename="copper-to-fibre-cross_box-{pw.c.cross}.csv"'
    assert r.headers["X-Unmapped-Count"] == "4"
    assert r.data.decode("utf-8-sig").splitlines()[0].startswith("old,new,keep_number,service_id,")
    assert read_mapping(r.data, "plan.csv") == plan["rows"]

    r = client.get(f"{URL}?scope_id={pw.c.cross}&format=xlsx&one_line_per_address=true", headers=h)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert r.headers["Content-Disposition"].endswith('.xlsx"') and r.data.startswith(b"PK")
    assert read_mapping(r.data, "plan.xlsx") == plan["rows"]

    r = client.get(f"{URL}?scope_id={pw.street}&one_line_per_address=true", headers=bearer(tokens["admin"]))
    assert r.status_code == 200 and len(r.get_json()["rows"]) == 2
    r = client.post(URL, json={"scope_id": pw.c.cross, "one_line_per_address": False}, headers=h)
    assert r.status_code == 200 and len(r.get_json()["rows"]) == 2 and r.get_json()["counts"]["unmapped"] == 6


def test_roles_and_bad_scopes_are_problems(http):
    client, tokens, pw = http
    h = bearer(tokens["planner"])
    r = client.post(URL, json={"scope_id": pw.c.cross}, headers=bearer(tokens["sales"]))
    assert r.status_code == 403 and r.mimetype == "application/problem+json"
    assert client.post(URL, json={"scope_id": pw.c.cross}).status_code == 401
    r = client.post(URL, json={"scope_id": pw.c.cross}, headers=bearer(tokens["other"]))  # another city's box
    assert (r.status_code, r.get_json()["code"]) == (404, "not_found")
    cases = [({"scope_id": "01NOSUCHSCOPE0000000000000"}, "", 404, "not_found", "scope_id"),
             ({"scope_id": pw.f1.box}, "", 422, "invalid", "scope_id"),  # a fibre box
             ({"scope_id": pw.c.head}, "", 422, "invalid", "scope_id"),  # a DSLAM
             ({}, "", 422, "invalid", None),
             ({"scope_id": pw.c.cross}, "?format=pdf", 422, "invalid", None)]
    for body, query, status, code, field in cases:
        r = client.post(URL + query, json=body, headers=h)
        assert r.status_code == status, (body, query, r.get_json())
        assert r.mimetype == "application/problem+json"
        problem = r.get_json()
        assert problem["code"] == code
        if field:
            assert problem.get("field") == field, problem
    assert client.get(URL, headers=h).status_code == 422  # no scope_id


def test_cli_writes_the_plan_as_csv_and_xlsx(db, database_url, tmp_path):
    """`rmgr cutover plan --scope ID --out file.csv|.xlsx`: the same rows as the planner's."""
    import json

    from click.testing import CliRunner

    from interfaces.cli.main import cli

    with db.unit_of_work() as uow:
        pw = planner_world.build(uow.session)
        uow.commit()
    env = {"RMGR_DATABASE_URL": database_url}
    for name in ("plan.csv", "plan.xlsx"):
        out = tmp_path / name
        r = CliRunner().invoke(cli, ["cutover", "plan", "--scope", pw.c.cross, "--out", str(out),
                                     "--unmapped", str(tmp_path / "unmapped.csv"), "--share-lines"],
                               env=env, catch_exceptions=False)
        assert r.exit_code == 0, r.output
        summary = json.loads(r.stdout.strip().splitlines()[-1])
        assert summary["rows"] == 4 and summary["unmapped"] == 4 and summary["scope"]["kind"] == "cross_box"
        rows = read_mapping(out.read_bytes(), name)
        assert [r_["new"] for r_ in rows] == [pw.f1.ports[0], pw.f1.ports[0], pw.f3.ports[1], pw.f3.ports[0]]
        assert "no_pon_capacity" in (tmp_path / "unmapped.csv").read_text("utf-8-sig")
    r = CliRunner().invoke(cli, ["cutover", "plan", "--scope", pw.f1.box, "--out", str(tmp_path / "x.csv")], env=env)
    assert r.exit_code == 2 and "invalid" in r.output and "scope_id" in r.output
    r = CliRunner().invoke(cli, ["cutover", "plan", "--scope", pw.c.cross, "--out", str(tmp_path / "x.pdf")], env=env)
    assert r.exit_code == 2 and ".csv or .xlsx" in r.output
