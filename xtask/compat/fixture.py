"""Stand-in for PyCap's `tests/integration/conftest.py`, which its doctest conftest imports
but its PyPI package does not ship. Written for redcap-rs from what PyCap's fixture does:
create the doctest project through the super token (content=project with the project XML as
`odm`, the token being the last 32 characters of the answer), give the first exported user
record delete/rename and locking rights, and put two files in the File Repository (one in a
new folder "test"). The URL and super token come from `cargo xtask compat`.
"""

import os
import tempfile
from pathlib import Path

import requests

SUPER_TOKEN = os.environ["REDCAP_COMPAT_SUPER_TOKEN"]


def redcapdemo_url() -> str:
    """The emulator's API URL."""
    return os.environ["REDCAP_COMPAT_URL"]


def create_project(url: str, super_token: str, project_xml_path: Path) -> str:
    """Creates the project from its XML; returns its token."""
    info = (
        '<?xml version="1.0" encoding="UTF-8" ?><item>'
        f"<project_title>PyCap {project_xml_path.stem}</project_title>"
        "<purpose>0</purpose></item>"
    )
    res = requests.post(
        url=url,
        data={
            "token": super_token,
            "content": "project",
            "format": "xml",
            "data": info,
            "odm": project_xml_path.read_text(encoding="UTF-8"),
        },
        timeout=60,
    )
    res.raise_for_status()
    return res.text[-32:]


def grant_superuser_rights(proj):
    """Record delete/rename and locking for the project's first user."""
    superuser = proj.export_users()[0]
    for right in ("record_delete", "record_rename", "lock_records_all_forms", "lock_records"):
        superuser[right] = 1
    assert proj.import_users([superuser]) == 1
    return proj


def add_files_to_repository(proj):
    """A file at the top of the File Repository and one in a new folder."""
    folder = proj.create_folder_in_repository("test").pop()
    with tempfile.NamedTemporaryFile() as tmp:
        Path(tmp.name).write_text("hello", encoding="utf-8")
        proj.import_file_into_repository(file_name="test.txt", file_object=tmp)
        proj.import_file_into_repository(
            file_name="test_in_folder.txt", file_object=tmp, folder_id=folder["folder_id"]
        )
    return proj
