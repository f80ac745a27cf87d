"""Uploaded bundles waiting for their import job: where they are kept (the `upload_dir` setting;
workers on other hosts need a shared directory), under a name the server makes (never the
client's), and their removal when the job ends."""
from __future__ import annotations

import re
import tempfile
import unicodedata
from pathlib import Path
from typing import Any

from resource_mgr.errors import Invalid
from resource_mgr.ids import new_id

MAX_FILENAME = 255  # what file systems allow for one name
_UPLOAD_NAME = re.compile(r"^[0-9A-Z]{26}\.bundle$")


def upload_dir(settings: Any) -> Path:
    return Path(settings.upload_dir) if settings.upload_dir else Path(tempfile.gettempdir()) / "rmgr-imports"


def new_upload(settings: Any) -> tuple[str, Path]:
    """(the upload's name, to keep in the job; its path, to save it to)."""
    directory = upload_dir(settings)
    directory.mkdir(parents=True, exist_ok=True)
    name = f"{new_id()}.bundle"
    return name, directory / name


def upload_path(settings: Any, name: str) -> Path:
    """The path of an upload named by `new_upload` (a job's parameter: nothing else is let out)."""
    if not isinstance(name, str) or not _UPLOAD_NAME.match(name):
        raise Invalid("the import job names no upload of this server", field="upload")
    return upload_dir(settings) / name


def client_filename(raw: str | None) -> str:
    """The client's name for its file, checked (it is shown, never used as a path): its last
    component, at most 255 characters, no control characters."""
    name = re.split(r"[/\\]", raw or "")[-1] or "bundle"
    if len(name) > MAX_FILENAME:
        raise Invalid(f"the file name has {len(name)} characters; at most {MAX_FILENAME}", field="file")
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in name):
        raise Invalid("the file name holds a control character (such as NUL)", field="file")
    return name
