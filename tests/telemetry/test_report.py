"""Reports: the terminal report, the HTML page in a real headless Chromium, and the CLI."""

import subprocess
import sys

import pytest

from stalwart import Child, PoisonMessageError, Supervisor
from stalwart.telemetry import RecoveryStore
from stalwart.telemetry._report import report_text, write_html_report
from tests.browser import browser_page
from tests.support import FAST, Work, Worker


@pytest.fixture
def recorded(make_system, tmp_path):
    db = tmp_path / "incidents.db"
    system = make_system(
        Supervisor("shop", children=[Child("db", Worker, levels=FAST), Child("api", Worker)]),
        store=str(db),
    )
    system.ask("shop/db", Work(1, fail_times=2, error="connection"), timeout=10)
    with pytest.raises(PoisonMessageError):
        system.ask("shop/db", Work(2, fail_times=-1), timeout=10)
    system.ask("shop/api", Work(3))
    system.flush()
    return db


def test_the_text_report_shows_figures_worst_actors_and_learned_strategies(recorded):
    with RecoveryStore(recorded, readonly=True) as store:
        text = report_text(store)
    assert "Worst actors" in text and "shop/db" in text
    assert "Learned strategy per category" in text and "connection" in text
    assert "Open errors" in text and "flaky 2" in text


def test_the_html_report_timeline_shows_the_incidents_in_chromium(recorded, tmp_path):
    out = tmp_path / "report.html"
    with RecoveryStore(recorded, readonly=True) as store:
        write_html_report(store, out)
    assert "<script" not in out.read_text()  # self-contained, readable without a server
    with browser_page() as page:
        page.goto(out.as_uri())
        page.wait_for_selector("svg#timeline")
        lanes = page.locator("svg#timeline text.lane").all_text_contents()
        assert "shop/db" in lanes
        failures = page.locator("g.incident.failure[data-path='shop/db']")
        assert failures.count() >= 1
        levels = {int(failures.nth(i).get_attribute("data-level")) for i in range(failures.count())}
        assert {1, 2, 3} <= levels
        assert page.locator("g.incident.recovered").count() >= 1
        assert page.locator("g.incident.poison").count() >= 1
        title = failures.first.locator("title").text_content()
        assert "shop/db failure level" in title
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        assert page.errors == []
    assert (tmp_path / "report.png").stat().st_size > 5000


def test_stalwart_report_command(recorded, tmp_path):
    out = tmp_path / "r.html"
    done = subprocess.run(
        [sys.executable, "-m", "stalwart", "report", "--db", str(recorded), "--html", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "shop/db" in done.stdout and out.exists()
    bad = subprocess.run(
        [sys.executable, "-m", "stalwart", "report", "--db", "/no/such.db"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "does not exist" in bad.stderr
