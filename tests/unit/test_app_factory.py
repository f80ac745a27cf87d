"""create_app(settings) builds the app without connecting to anything."""
from resource_mgr.config import load_settings

from interfaces.http.app import create_app


def test_create_app_does_not_touch_the_database(tmp_path):
    path = tmp_path / "never.sqlite"
    app = create_app(load_settings({}, database_url=f"sqlite:///{path}"))
    assert "/api/v1/health" in {r.rule for r in app.url_map.iter_rules()}
    assert not path.exists()  # SQLite would have created the file on the first connection
