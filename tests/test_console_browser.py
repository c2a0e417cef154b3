"""The admin console in a real browser (Debian's Chromium through Playwright): log in, the Add
Channel wizard for Twilio voice / WhatsApp / web against the provider emulators (what the console
claims is read back from the emulator), a provider's rejection in words, deactivate/activate
without a reload, delete with confirmation, flows' validation errors at the node, Activity.

One control plane (``converse control`` subprocess, SQLite) and one browser for the module.
Screenshots of every page, desktop and 360 px wide, go to test-artifacts/console/.
"""
from __future__ import annotations

import contextlib
import os
import re

import httpx
import pytest

from conftest import ROOT, require
from fixtures_control import start_control_server

CHROMIUM = "/usr/bin/chromium"
SHOTS = ROOT / "test-artifacts" / "console"
WAIT_MS = 20_000         # generous upper bounds for a loaded box; never a measurement


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from control.secrets import generate_key
    from emulators import MetaEmulator, TwilioEmulator

    workdir = tmp_path_factory.mktemp("console")
    with contextlib.ExitStack() as stack:
        emus = {"twilio": stack.enter_context(TwilioEmulator()),
                "meta": stack.enter_context(MetaEmulator())}
        env = {"TWILIO_API_BASE": emus["twilio"].url, "META_GRAPH_BASE": emus["meta"].base,
               "CONVERSE_SECRET_KEY": generate_key(), "CONVERSE_PROVIDER_DEADLINE_S": "5",
               "GATEWAY_PUBLIC_URL": "wss://gw.example.test"}
        srv = start_control_server(workdir, f"sqlite:///{workdir / 'converse.db'}", env, emus)
        stack.callback(srv.stop)
        yield srv


@pytest.fixture(scope="module")
def api(server):
    with server.client() as client:
        yield client


@pytest.fixture(scope="module")
def agent_id(api) -> str:
    r = api.post("/api/v1/agents", json={"name": "Echo", "kind": "echo"})
    assert r.status_code == 201, r.text
    return r.json()["id"]


@pytest.fixture(scope="module")
def browser():
    require(os.path.exists(CHROMIUM), f"{CHROMIUM} not installed (Debian package chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require(False, "playwright (Python package) not installed")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, timeout=60_000, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run"])
        yield b
        b.close()


def _login(page, server, key: str | None = None) -> None:
    page.goto(server.base_url + "/console/channels")
    page.wait_for_url(re.compile(r"/console/login"))
    page.get_by_label("API key").fill(key or server.api_key)
    page.get_by_label("API key").press("Enter")          # keyboard: Enter submits the form
    page.wait_for_url(re.compile(r"/console/channels$"))


@pytest.fixture(scope="module")
def page(browser, server, agent_id):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(WAIT_MS)
    p = context.new_page()
    errors = []
    p.on("pageerror", lambda exc: errors.append(f"{p.url}: {exc.stack}"))
    _login(p, server)
    yield p
    context.close()
    assert not errors, f"JavaScript errors: {errors}"


UNLABELLED = """[...document.querySelectorAll("input:not([type=hidden]), select, textarea")]
    .filter((el) => !el.labels.length && !el.getAttribute("aria-label")).map((el) => el.id || el.name)"""


def shoot(page, name: str) -> None:
    """Desktop and 360 px screenshots of the current page (and two checks every page must pass)."""
    assert page.evaluate(UNLABELLED) == [], f"{name}: form fields without a label"
    page.screenshot(path=str(SHOTS / f"{name}-desktop.png"), full_page=True)
    size = page.viewport_size
    page.set_viewport_size({"width": 360, "height": 780})
    page.screenshot(path=str(SHOTS / f"{name}-360.png"), full_page=True)
    # Readable at 360 px: nothing pushes the page wider than the screen (no sideways scrolling).
    width = page.evaluate("document.documentElement.scrollWidth")
    page.set_viewport_size(size)
    assert width <= 360, f"{name}: {width} px wide at a 360 px viewport"


def _channel_count(api) -> int:
    return len(api.get("/api/v1/channels").json()["items"])


def _start_wizard(page, server, kind: str, name: str) -> None:
    page.goto(server.base_url + "/console/channels/new")
    page.get_by_label(kind).check()
    page.get_by_label("Channel name").fill(name)
    page.get_by_role("button", name="Next").click()


def _creds(page):
    """The credential fields of the provider chosen in step 1 (the others are hidden)."""
    return page.locator("[data-creds]:not([hidden])")


def _mark_page(page) -> None:
    """A marker that a reload would erase: proves an update happened in place."""
    page.evaluate("window.__noReload = true")


def _assert_no_reload(page) -> None:
    assert page.evaluate("window.__noReload === true"), "the page was reloaded"


# ---------------------------------------------------------------------------------- tests
def test_login_required_then_wrong_key_then_login(browser, server):
    context = browser.new_context()
    p = context.new_page()
    p.goto(server.base_url + "/console/flows")
    p.wait_for_url(re.compile(r"/console/login\?next=/console/flows"))
    shoot(p, "login")
    p.get_by_label("API key").fill("cvk_not-a-key")
    p.get_by_role("button", name="Log in").click()
    error = p.locator("#api_key-error")
    assert "not valid" in error.inner_text()
    assert p.get_by_label("API key").get_attribute("aria-invalid") == "true"
    p.get_by_label("API key").fill(server.api_key)
    p.get_by_role("button", name="Log in").click()
    p.wait_for_url(re.compile(r"/console/flows$"))           # back where it was going
    cookies = {c["name"]: c for c in context.cookies()}
    session = cookies["converse_console"]
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    assert server.api_key not in session["value"]
    p.get_by_role("button", name="Log out").click()
    p.wait_for_url(re.compile(r"/console/login"))
    p.goto(server.base_url + "/console/channels")
    p.wait_for_url(re.compile(r"/console/login"))
    context.close()


def test_twilio_voice_wizard_configures_the_number(page, server, api, agent_id):
    tw = server.twilio
    shoot(page, "channels-empty")
    _start_wizard(page, server, "Voice: Twilio", "Front desk")
    _creds(page).get_by_label("Account SID").fill(tw.creds["account_sid"])
    _creds(page).get_by_label("Auth Token").fill(tw.creds["auth_token"])
    shoot(page, "wizard-credentials")
    page.get_by_role("button", name="Verify").click()
    page.get_by_label("+15005550006").check()            # the numbers came from the emulator
    assert page.get_by_label("+15005550007").is_visible()
    shoot(page, "wizard-number")
    page.get_by_role("button", name="Next").click()
    # agent XOR flow: the flow select is disabled (never submitted) while "An agent" is chosen
    assert page.get_by_label("Flow", exact=True).is_disabled()
    page.get_by_label("Agent", exact=True).select_option(agent_id)
    shoot(page, "wizard-target")
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(re.compile(r"/console/channels/ch_\w+$"))
    channel_id = page.url.rsplit("/", 1)[1]
    assert page.locator('[data-role="badge"]').inner_text() == "Active"
    url = f"https://converse.example.test/api/v1/webhooks/twilio/{channel_id}"
    assert tw.number("+15005550006")["voice_url"] == url          # read back from the emulator
    assert page.get_by_label("Webhook URL").input_value() == url
    shoot(page, "channel-twilio")

    # Deactivate / activate: the badge changes in place, no reload.
    _mark_page(page)
    page.get_by_role("button", name="Deactivate").click()
    page.locator(".badge-inactive").wait_for()
    assert api.get(f"/api/v1/channels/{channel_id}").json()["status"] == "inactive"
    assert page.get_by_role("button", name="Activate", exact=True).is_visible()
    assert not page.get_by_role("button", name="Deactivate").is_visible()
    badge = page.locator('[data-role="badge"]')
    badge.focus()                                        # the detail shows on keyboard focus too
    detail = page.locator('[data-role="detail"]')
    assert detail.is_visible() and "Deactivated by the operator" in detail.inner_text()
    page.get_by_role("button", name="Activate", exact=True).click()
    page.locator(".badge-active").wait_for()
    _assert_no_reload(page)
    assert api.get(f"/api/v1/channels/{channel_id}").json()["status"] == "active"

    # Another number: the channel asks to be activated again, which moves the webhook there.
    page.get_by_role("button", name="Choose another number").click()
    page.get_by_label("+15005550007").check()
    page.get_by_role("button", name="Use this number").click()
    page.locator(".badge-setup").wait_for()
    assert page.locator('[data-role="number"]').inner_text() == "+15005550007"
    page.get_by_role("button", name="Activate", exact=True).click()
    page.locator(".badge-active").wait_for()
    assert tw.number("+15005550007")["voice_url"] == url

    # Wrong new credentials: the provider's words next to the form, nothing changes.
    page.get_by_label("Auth Token").fill("f" * 32)
    page.get_by_role("button", name="Update credentials").click()
    creds_error = page.locator("#creds-error")
    creds_error.wait_for()
    assert "twilio said" in creds_error.inner_text()
    assert api.get(f"/api/v1/channels/{channel_id}").json()["status"] == "active"
    _assert_no_reload(page)

    # The table shows it.
    page.goto(server.base_url + "/console/channels")
    row = page.locator(f'tr[data-channel="{channel_id}"]')
    assert "Front desk" in row.inner_text() and "+15005550007" in row.inner_text()
    assert "Agent: Echo" in row.inner_text() and "Twilio" in row.inner_text()
    shoot(page, "channels")

    # Delete: the webhook goes at Twilio too, and the console says so.
    row.get_by_role("link", name="Front desk").click()
    page.get_by_role("button", name="Delete…").click()
    page.locator("#delete-dialog").get_by_role("button", name="Delete channel").click()
    page.wait_for_url(re.compile(r"/console/channels$"))
    assert "webhook was removed" in page.locator("#flash").inner_text()
    assert tw.number("+15005550007")["voice_url"] == ""


def test_wrong_credential_shows_the_providers_rejection(page, server, api):
    before = _channel_count(api)
    _start_wizard(page, server, "Voice: Twilio", "Typo")
    _creds(page).get_by_label("Account SID").fill(server.twilio.creds["account_sid"])
    _creds(page).get_by_label("Auth Token").fill("0" * 32)
    server.twilio.hang("accounts.fetch", seconds=3)      # Twilio takes its time to answer
    page.get_by_role("button", name="Verify").click()
    progress = page.locator("#verify-progress")
    assert progress.is_visible() and "Checking the credentials with Twilio" in progress.inner_text()
    assert page.get_by_role("button", name="Verify").is_disabled()
    alert = page.locator("#wizard-error")
    alert.wait_for()
    text = alert.inner_text()
    assert "twilio said" in text and "Authenticate" in text, text
    assert page.locator('fieldset[data-step="2"]').is_visible()      # still on the credentials
    assert not progress.is_visible()
    assert _channel_count(api) == before                              # nothing stored
    shoot(page, "wizard-rejected")
    # An empty field is flagged next to itself, before asking the provider.
    _creds(page).get_by_label("Auth Token").fill("")
    page.get_by_role("button", name="Verify").click()
    error = page.locator('[data-creds="voice:twilio"] [data-error-for="auth_token"]')
    assert "Required" in error.inner_text()


def test_whatsapp_channel_shows_url_and_verify_token(page, server, agent_id):
    meta = server.meta
    _start_wizard(page, server, "WhatsApp: Meta Cloud API", "WhatsApp support")
    for label, key in [("Permanent Access Token", "access_token"),
                       ("Phone Number ID", "phone_number_id"), ("App Secret", "app_secret")]:
        _creds(page).get_by_label(label).fill(meta.creds[key])
    _creds(page).get_by_label("Verify Token").fill("my-chosen-verify-token")
    page.get_by_role("button", name="Verify").click()
    page.locator('#numbers input[name="number"]').first.wait_for()
    page.get_by_role("button", name="Next").click()
    page.get_by_label("Agent", exact=True).select_option(agent_id)
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(re.compile(r"/console/channels/ch_\w+$"))
    channel_id = page.url.rsplit("/", 1)[1]
    assert page.locator('[data-role="badge"]').inner_text() == "Setup"
    assert page.get_by_label("Callback URL").input_value() == \
        f"https://converse.example.test/api/v1/webhooks/meta/{channel_id}"
    assert page.get_by_label("Verify token", exact=True).input_value() == "my-chosen-verify-token"
    assert "WhatsApp > Configuration" in page.inner_text("main")
    shoot(page, "channel-whatsapp")
    # Meta's verification request arrives: the open page turns Active by itself.
    _mark_page(page)
    r = httpx.get(f"{server.base_url}/api/v1/webhooks/meta/{channel_id}", timeout=30,
                  params=meta.verification_params("my-chosen-verify-token", challenge="4242"))
    assert r.status_code == 200 and r.text == "4242"
    page.locator(".badge-active").wait_for()
    _assert_no_reload(page)


def test_web_channel_by_keyboard_session_url_and_snippet(page, server, agent_id):
    page.goto(server.base_url + "/console/channels/new")
    page.locator('input[name="kind"]:checked').focus()
    page.keyboard.press("ArrowUp")                         # wraps to the last choice: Web Widget
    assert page.get_by_label("Web Widget").is_checked()
    page.keyboard.press("Tab")
    page.keyboard.type("Website")
    page.keyboard.press("Tab")                             # -> Next
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "origins"
    page.keyboard.type("https://www.example.com")
    page.keyboard.press("Tab")                             # Back
    page.keyboard.press("Tab")                             # Next
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")                             # radio -> agent select
    assert page.evaluate("document.activeElement.id") == "agent_id"
    page.keyboard.press("Tab")                             # Back
    page.keyboard.press("Tab")                             # Save
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/console/channels/ch_\w+$"))
    assert page.locator('[data-role="badge"]').inner_text() == "Active"
    snippet = page.get_by_label("Embed snippet", exact=False).input_value()
    assert f'data-agent="{agent_id}"' in snippet and "/widget.js" in snippet
    assert 'data-gateway="wss://gw.example.test"' in snippet
    page.get_by_role("button", name="Get Session URL").click()
    url = page.get_by_label("Session URL (signed, short-lived)")
    url.wait_for()
    assert re.match(rf"wss://gw\.example\.test/ws/agent/{agent_id}\?token=\S+$", url.input_value())
    # The origins editor: a bad origin is shown next to the field.
    page.get_by_label("Pages allowed to open a session").fill("not an origin")
    page.get_by_role("button", name="Save origins").click()
    error = page.locator("#origins-error")
    error.wait_for()
    assert "'not an origin'" in error.inner_text()
    origins = page.get_by_label("Pages allowed to open a session")
    assert origins.get_attribute("aria-invalid") == "true"
    shoot(page, "channel-web")


def test_delete_asks_for_confirmation(page, server, api, agent_id):
    r = api.post("/api/v1/channels", json={"type": "web", "name": "Doomed", "agent_id": agent_id,
                                           "allowed_origins": ["https://doomed.example"]})
    channel_id = r.json()["id"]
    page.goto(f"{server.base_url}/console/channels/{channel_id}")
    page.get_by_role("button", name="Delete…").click()
    dialog = page.locator("#delete-dialog")
    assert dialog.is_visible()
    shoot(page, "channel-delete-dialog")
    dialog.get_by_role("button", name="Cancel").click()
    assert api.get(f"/api/v1/channels/{channel_id}").status_code == 200
    page.get_by_role("button", name="Delete…").click()
    dialog.get_by_role("button", name="Delete channel").click()
    page.wait_for_url(re.compile(r"/console/channels$"))
    assert page.locator("#flash").inner_text() == "Deleted Doomed."
    assert api.get(f"/api/v1/channels/{channel_id}").status_code == 404


def test_agents_and_flow_errors_at_the_node(page, server, api):
    page.goto(server.base_url + "/console/agents/new")
    page.get_by_label("Name").fill("Bot server")
    page.get_by_label("Kind").select_option("websocket")
    page.get_by_label("URL").fill("http://wrong-scheme.example")
    page.get_by_role("button", name="Save agent").click()
    error = page.locator("#url-error")
    error.wait_for()
    assert "ws" in error.inner_text()
    page.get_by_label("URL").fill("wss://agents.example.test/bot")
    page.get_by_role("button", name="Save agent").click()
    page.wait_for_url(re.compile(r"/console/agents$"))
    assert "Bot server" in page.inner_text("main")
    shoot(page, "agents")
    # The echo agent serves channels: deleting it is refused, naming them.
    page.get_by_role("link", name="Echo").click()
    page.get_by_role("button", name="Delete agent…").click()
    page.locator("#delete-dialog").get_by_role("button", name="Delete agent").click()
    refused = page.locator("#delete-error")
    refused.wait_for()
    assert "still assigned to channel" in refused.inner_text()
    shoot(page, "agent-delete-refused")
    page.goto(server.base_url + "/console/agents")
    page.get_by_role("link", name="Bot server").click()
    page.get_by_role("button", name="Delete agent…").click()
    page.locator("#delete-dialog").get_by_role("button", name="Delete agent").click()
    page.wait_for_url(re.compile(r"/console/agents$"))
    assert "Bot server" not in page.inner_text("main")

    page.goto(server.base_url + "/console/flows/new")
    page.get_by_label("Name").fill("Menu")
    definition = ('{"start": "start", "nodes": {"start": {"type": "entry", "next": "menu"}, '
                  '"menu": {"type": "dtmf_menu", "prompt": "Press 1", '
                  '"options": {"1": "nowhere"}}}}')
    page.get_by_label("Definition (JSON)").fill(definition)
    page.get_by_role("button", name="Check").click()
    node = page.locator('#node-list li[data-node="menu"]')
    node.locator("li").first.wait_for()
    assert "nowhere" in node.inner_text() and "has-errors" in node.get_attribute("class")
    start = page.locator('#node-list li[data-node="start"]')
    assert "has-errors" not in (start.get_attribute("class") or "")
    shoot(page, "flow-errors")
    page.get_by_label("Definition (JSON)").fill("{not json")
    page.get_by_role("button", name="Save flow").click()
    assert "Not valid JSON" in page.locator("#definition-error").inner_text()
    page.get_by_label("Definition (JSON)").fill(definition.replace("nowhere", "start2").replace(
        '"menu": {', '"start2": {"type": "end"}, "menu": {'))
    page.get_by_role("button", name="Save flow").click()
    page.wait_for_url(re.compile(r"/console/flows/fl_\w+$"))
    flow_id = page.url.rsplit("/", 1)[1]
    page.get_by_role("button", name="Check").click()
    page.get_by_text("No problems found.").wait_for()
    # The simulator panel is there exactly when the API serves POST /flows/{id}/simulate.
    paths = api.get("/api/v1/openapi.json").json()["paths"]
    if "/api/v1/flows/{flow_id}/simulate" not in paths:
        assert page.locator("#sim-form").count() == 0
    else:
        page.get_by_label("As a channel of type").select_option("voice")
        page.get_by_label("Caller inputs (JSON list)").fill('[{"digits": "1"}]')
        page.get_by_role("button", name="Run").click()
        page.locator("#sim-result").get_by_text("Ended").wait_for()
        transcript = page.locator("#sim-transcript").inner_text()
        assert "Press 1" in transcript and 'caller: {"digits":"1"}' in transcript
        shoot(page, "flow-simulate")
    assert api.get(f"/api/v1/flows/{flow_id}").json()["name"] == "Menu"
    page.goto(server.base_url + "/console/flows")
    assert "Menu" in page.inner_text("main")
    shoot(page, "flows")


def test_activity_lists_recorded_sessions(page, server):
    from control.console import activity
    from control.store import open_store
    from gateway.metrics import SessionStats

    store = open_store(server.settings)
    try:
        store.run_sync(activity._ensure)
        for i in range(12):
            stats = SessionStats("web")
            stats.frames_in, stats.frames_out, stats.dropped_in = 500 + i, 700 + i, i % 3
            for j in range(50):
                stats.added_latency.record((0.2 + 0.05 * ((i + j) % 7)) / 1000)
            stats.end_reason = "caller: end"
            store.run_sync(activity.insert, activity.from_stats(
                f"sess-{i}", None, 1_790_000_000 + 60 * i, 30.0 + i, stats))
    finally:
        store.close()
    page.goto(server.base_url + "/console/activity")
    main = page.inner_text("main")
    assert "0:41" in main and "511 / 711" in main      # the newest: 41 s, 511/711 frames
    assert page.locator("svg.chart polyline.p99").count() == 1
    shoot(page, "activity")
