"""The dashboard in a real headless Chromium, against the shop example's tree."""

from playwright.sync_api import expect

from examples.shop.backend import new_backend
from examples.shop.messages import Job
from examples.shop.tree import shop_tree
from stalwart import Child, Supervisor
from stalwart.telemetry._api import ApiServer, StoreBackend
from tests.browser import browser_page
from tests.support import FAST, Work, Worker, wait_for

TOKEN = "dashboard-test-token"


def node(path: str) -> str:
    return f'#tree li[data-path="{path}"] > .node'


def test_the_dashboard_follows_the_shop_live_and_acts_only_with_the_token(make_system, tmp_path):
    backend = new_backend(str(tmp_path))
    system = make_system(shop_tree(backend.path), chaos=True)
    server = system.serve_api(token=TOKEN)
    with browser_page() as page:
        page.goto(f"{server.url}/")
        page.locator("body[data-ready='1']").wait_for()
        # the whole tree, nested like the tree
        shown = page.eval_on_selector_all(
            "#tree li[data-path]", "els => els.map(e => e.dataset.path)"
        )
        assert sorted(shown) == sorted(s.path for s in system.status())
        assert page.locator(f'{node("shop/workers")} + ul li[data-path="shop/workers/w.1"]').count()
        assert page.inner_text(f"{node('shop/db')} .state") == "running"
        assert page.inner_text("#h-breakers") == "0"
        # the memory gauge says what it measures against, and the PSI (or that there is none)
        sample = system.memory().sample
        expect(page.locator("#mem-text")).to_contain_text(f"({sample.limit_from})")
        psi = "PSI some" if sample.pressure is not None else "PSI not available"
        assert psi in page.inner_text("#mem-text")
        page.evaluate("window.pageMarker = 'not reloaded'")

        # a failure climbs to level 3: the actor's level and the timeline change in place
        system.inject("shop/workers/w.1", "raise", count=3)
        assert system.ask("shop/workers/w.1", Job(1), timeout=10).worker == "shop/workers/w.1"
        expect(page.locator(f"{node('shop/workers/w.1')} .level")).to_have_text("level 3")
        assert page.inner_text(f"{node('shop/workers/w.1')} .restarts") == "↻ 1"
        episode = page.locator('#timeline li[data-path="shop/workers/w.1"]')
        episode.locator(".outcome", has_text="recovered").wait_for(timeout=5000)
        assert page.inner_text('#timeline li[data-path="shop/workers/w.1"] .answered') == (
            "level 3 · restart"
        )
        episode.click()
        page.locator("#details-panel").wait_for(state="visible")
        details = page.inner_text("#details")
        assert "fault injected by chaos" in details and "level 3 (restart)" in details
        assert len(page.locator("#steps tr").all()) == 4  # levels 1, 2, 3 and the recovery
        page.locator("#attempts tr").first.wait_for(timeout=5000)  # read from the store
        assert page.evaluate("window.pageMarker") == "not reloaded"

        # a restart asked for with the token
        page.fill("#token", TOKEN)
        page.click(node("shop/db"))
        page.select_option("#level", "3")
        page.click("#recover")
        page.locator("#action-result.done").wait_for(timeout=10000)
        assert "level 3 on shop/db: done" in page.inner_text("#action-result")
        assert system.status()["shop/db"].restarts == 1
        expect(page.locator(f"{node('shop/db')} .restarts")).to_have_text("↻ 1")
        page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
        assert (tmp_path / "dashboard.png").stat().st_size > 10_000
        assert page.errors == []
        assert page.evaluate("window.pageMarker") == "not reloaded"

        # without the token the same action is refused, and nothing restarts
        page.fill("#token", "")
        page.click("#recover")
        page.locator("#action-result.refused").wait_for(timeout=10000)
        assert page.inner_text("#action-result") == "refused: this action needs the API token"
        assert system.status()["shop/db"].restarts == 1
        # the browser reports the refused request itself (a 401), and nothing else
        assert all("401" in e for e in page.errors), page.errors
    wait_for(lambda: system.status()["shop/db"].state == "running")


def test_the_state_badge_follows_the_system_and_a_store_is_never_live(make_system, tmp_path):
    db = tmp_path / "recovery.db"
    system = make_system(Supervisor("s", children=[Child("w", Worker, levels=FAST)]), store=str(db))
    for i in range(3):  # one error, three incidents: one line with a count
        system.ask("s/w", Work(i, fail_times=1), timeout=10)
    server = system.serve_api()
    with browser_page() as page:
        page.goto(f"{server.url}/")
        page.locator("body[data-ready='1']").wait_for()
        expect(page.locator("#phase")).to_have_text("running")
        line = page.locator('#timeline li[data-path="s/w"]')
        expect(line).to_have_attribute("data-count", "3")
        assert "\u00d73" in line.inner_text() and "first" in line.inner_text()
        system.shutdown()  # the server goes with it: the page must not keep saying running
        expect(page.locator("#phase")).to_have_text("disconnected")
        expect(page.locator("#connection")).to_contain_text("disconnected")
    with ApiServer(StoreBackend(str(db))) as stored, browser_page() as page:
        page.goto(f"{stored.url}/")
        page.locator("body[data-ready='1']").wait_for()
        expect(page.locator("#phase")).to_have_text("stopped")
        expect(page.locator("#connection")).to_contain_text("the system has stopped")
        assert "live" not in page.inner_text("#connection")
        expect(page.locator('#timeline li[data-path="s/w"] .outcome')).to_have_text("recovered")
        assert page.errors == []


def test_a_system_without_a_store_shows_its_tree_and_says_its_figures_are_off(make_system):
    system = make_system(Supervisor("s", children=[Child("w", Worker)]), store=None)
    server = system.serve_api()
    with browser_page() as page:
        page.goto(f"{server.url}/")
        page.locator("body[data-ready='1']").wait_for()
        expect(page.locator(node("s/w") + " .state")).to_have_text("running")
        # no figures are kept: the headline says so rather than showing zeros
        expect(page.locator("#h-attempts")).to_contain_text("telemetry off")
        assert page.inner_text("#h-restarts") == "\u2013"  # (the dash of a missing figure)
        assert page.errors == []
