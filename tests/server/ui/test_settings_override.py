"""A project's config.toml that sets a connection: the Settings page says its edits have no effect.

The page edits the global ``config.toml``; a trusted project's
``.modelport/config.toml`` that sets ``[connections.up]`` replaces that table
whole, so a change saved on the page would be silently ignored. The page must
say which file overrides it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelport.testing import FakeUpstream
from tests.server.ui.conftest import Served, screenshot, start_serve, stop_serve


@pytest.fixture
def project(tmp_path: Path, home: Path, upstream: FakeUpstream) -> Path:
    folder = tmp_path / "project"
    (folder / ".modelport").mkdir(parents=True)
    (folder / ".modelport" / "config.toml").write_text(
        f'[connections.up]\ncompat = "openai"\nbase_url = "{upstream.url}/v1"\ntimeout = 42.0\n'
        f'[connections.ours]\ncompat = "openai"\nbase_url = "{upstream.url}/v1"\n'
    )
    # A project's connections count only once its folder is trusted.
    subprocess.run(
        [sys.executable, "-m", "modelport", "plugins", "trust", str(folder)],
        env={**os.environ, "MODELPORT_HOME": str(home)},
        check=True,
        capture_output=True,
    )
    return folder


@pytest.fixture
def in_project(home: Path, project: Path) -> Iterator[Served]:
    gateway = start_serve(home, cwd=project)
    try:
        yield gateway
    finally:
        stop_serve(gateway)


def test_the_settings_page_says_a_project_file_overrides_the_connection(
    browser: Any, in_project: Served, project: Path, home: Path
) -> None:
    from axe_playwright_python.sync_playwright import Axe

    project_file = (project / ".modelport" / "config.toml").resolve()
    rows = httpx.get(f"{in_project.url}/admin/connections").json()["connections"]
    [up] = [row for row in rows if row["name"] == "up"]
    assert Path(up["overridden_by"]).resolve() == project_file
    assert up["timeout"] == 42.0  # the project's table is the one in use

    context = browser.new_context(base_url=in_project.url, viewport={"width": 1100, "height": 900})
    page = context.new_page()
    try:
        page.goto("/#/settings")
        note = page.locator("#override-up")
        note.wait_for()
        assert str(up["overridden_by"]) in note.inner_text()
        assert "no effect" in note.inner_text()
        page.get_by_role("button", name="Edit up").click()
        form_note = page.locator("#conn-override")
        form_note.wait_for()
        assert str(up["overridden_by"]) in form_note.inner_text()
        page.get_by_label("Timeout (seconds)").fill("5")
        page.get_by_role("button", name="Save connection").click()
        status = page.locator("#settings-status")
        status.get_by_text("has no effect").wait_for()
        assert str(up["overridden_by"]) in status.inner_text()
        page.wait_for_load_state("networkidle")
        screenshot(page, "settings-overridden")
        results = Axe().run(page)
        assert results.violations_count == 0, results.generate_report()
        # The edit went to the global file, and the project's table still wins: as the page said.
        assert "timeout = 5" in (home / "config.toml").read_text()
        rows = httpx.get(f"{in_project.url}/admin/connections").json()["connections"]
        assert [row["timeout"] for row in rows if row["name"] == "up"] == [42.0]
        # Deleting takes the global table away; the page says the project's stays in use.
        page.once("dialog", lambda dialog: dialog.accept())
        page.get_by_role("button", name="Delete up").click()
        status.get_by_text("still sets it").wait_for()
        assert str(up["overridden_by"]) in status.inner_text()
        page.locator("#override-up").wait_for()
    finally:
        context.close()


def test_a_connection_only_the_global_file_sets_is_not_overridden(
    in_project: Served, upstream: FakeUpstream
) -> None:
    saved = httpx.put(
        f"{in_project.url}/admin/connections/other",
        json={"compat": "openai", "base_url": f"{upstream.url}/v1"},
        headers={"origin": in_project.url},
    )
    assert saved.status_code == 201, saved.text
    assert saved.json()["overridden_by"] is None


def test_deleting_what_the_project_file_sets_is_never_a_silent_no_op(
    in_project: Served, project: Path, home: Path
) -> None:
    project_file = str((project / ".modelport" / "config.toml").resolve())
    origin = {"origin": in_project.url}
    # Only the project sets it: the global file has nothing to delete.
    refused = httpx.delete(f"{in_project.url}/admin/connections/ours", headers=origin)
    assert refused.status_code == 409
    message = refused.json()["error"]["message"]
    assert project_file in message and "[connections.ours]" in message
    # Both set it: the global table goes, the answer says the project's stays in use.
    deleted = httpx.delete(f"{in_project.url}/admin/connections/up", headers=origin)
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {"deleted": "up", "overridden_by": project_file}
    assert "[connections.up]" not in (home / "config.toml").read_text()
    rows = httpx.get(f"{in_project.url}/admin/connections").json()["connections"]
    assert {row["name"] for row in rows} >= {"up", "ours"}
