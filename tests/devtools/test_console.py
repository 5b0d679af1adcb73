"""The developer console in a real browser (Debian's chromium, driven by Playwright; no browser download), against
./run.sh's stack (devtools.run: local host, sandbox, Azurite) in a temporary copy of the app."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Iterator

import pytest

from devtools.processes import stop_process_group
from tests.devtools.test_run_command import NOT_COPIED, Command, clean_env
from tests.support import ROOT

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
# Keep the browser off the network: no name resolves but loopback, and no background services call home.
OFFLINE_FLAGS = ["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-default-apps", "--no-first-run",
                 "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication"]
OWNER, CALLER = "+14155550188", "+14155550100"
MENU = {"prompt": "Press 1 for hours, 2 for sales, 3 to leave a message.",
        "options": {"1": {"say": "We are open nine to five."}, "2": {"forward": "+14155550177"},
                    "3": {"voicemail": True}}}
WIDTHS = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1440, "height": 900}}
WAIT_MS = 15_000

if not CHROMIUM.exists():
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI needs Chromium at {CHROMIUM} (.ci/run installs Debian's chromium)", pytrace=False)
    pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install chromium to run the console's browser tests",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect


@pytest.fixture(scope="module")
def console_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """./run.sh's stack with the menu flow, its voicemail notices to OWNER and a 2 s Twilio budget; the console URL."""
    app = tmp_path_factory.mktemp("console") / "app"
    shutil.copytree(ROOT, app, ignore=NOT_COPIED)
    (app / "node_modules").symlink_to(ROOT / "node_modules")  # Azurite, as installed by the tests' npm ci
    env = clean_env(INBOUND_CALL_FLOW="menu", CALL_MENU=json.dumps(MENU), VOICEMAIL_NOTIFY_SMS=OWNER,
                    TWILIO_HTTP_TIMEOUT_SECONDS="2")
    del env["AzureWebJobsStorage"]  # Azurite, as ./run.sh starts it: replays need state
    command = Command([sys.executable, "-m", "devtools.run", "--port", "0", "--sandbox-port", "0"], app, env)
    try:
        command.wait_for_ready(timeout=300)  # the first npm ci of a clean clone may run here
        yield next(line.split(" ", 1)[1] for line in command.lines if line.startswith("Console: "))
    finally:
        stop_process_group(command.proc, timeout=15)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=OFFLINE_FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser, console_url: str):
    context = browser.new_context(viewport=WIDTHS["desktop"])
    opened = context.new_page()
    opened.goto(console_url)
    expect(opened.locator("body[data-ready=true]")).to_be_attached()
    yield opened
    context.close()


def sign_in(page, user: str = "alice") -> None:
    page.get_by_label("User").fill(user)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#who")).to_have_text(f"signed in as {user}")


def phone(page, number: str):
    return page.locator(f"#phone-{number.lstrip('+')}")


def test_console_signed_in_sms_arrives_in_the_phones_thread_and_turns_delivered(page) -> None:
    sign_in(page)
    page.locator("#sms").get_by_label("Message").fill("Parcel on its way")
    page.get_by_role("button", name="Send SMS").click()
    expect(page.locator("#requests li").first).to_contain_text("POST /api/send_sms → 201")
    bubble = phone(page, "+14155550123").locator(".thread li", has_text="Parcel on its way").last
    expect(bubble).to_contain_text("delivered", timeout=WAIT_MS)


def test_console_same_key_sent_again_is_answered_idempotent_replayed(page) -> None:
    sign_in(page)
    page.get_by_role("button", name="Send SMS").click()
    expect(page.locator("#requests li").first).to_contain_text("→ 201")
    page.get_by_role("button", name="Send again with the same key").first.click()
    expect(page.locator("#requests li").first.locator(".answer")).to_contain_text("idempotent-replayed: true")


def test_console_reply_from_a_phone_shows_the_apps_auto_reply(page) -> None:
    page.get_by_label("Number").first.fill(CALLER)
    page.get_by_role("button", name="Add a phone").click()
    caller = phone(page, CALLER)
    caller.get_by_label("Reply").fill("Is this thing on?")
    caller.get_by_role("button", name="Send", exact=True).click()
    expect(caller.locator(".thread")).to_contain_text("App replied: Hey, thanks for the ping!")


def test_console_menu_call_forward_busy_voicemail_notice_reaches_the_owner(page) -> None:
    page.get_by_label("Number").first.fill(CALLER)
    page.get_by_role("button", name="Add a phone").click()
    caller = phone(page, CALLER)
    caller.get_by_role("button", name="Call the app").click()
    expect(caller).to_contain_text("App said: Press 1 for hours", timeout=WAIT_MS)
    caller.get_by_role("group", name="Keypad").get_by_role("button", name="2").click()
    caller.get_by_role("group", name="Dial outcome").get_by_role("button", name="Busy").click()
    caller.get_by_role("group", name="Voicemail").get_by_role("button", name="Leave a voicemail").click()
    expect(caller).to_contain_text("Call ended (hangup)", timeout=WAIT_MS)
    expect(phone(page, OWNER).locator(".thread")).to_contain_text(CALLER, timeout=WAIT_MS)


def test_console_placed_call_shows_what_the_callee_heard(page) -> None:
    sign_in(page)
    page.locator("#call").get_by_label("To").fill("+14155550166")
    page.locator("#call").get_by_label("Message").fill("Your table is ready")
    page.get_by_role("button", name="Place call").click()
    expect(phone(page, "+14155550166")).to_contain_text("Heard: Your table is ready", timeout=WAIT_MS)


def test_console_broadcast_reaches_each_phone_once_and_its_counts_end_done(page) -> None:
    sign_in(page)  # ./run.sh lets alice broadcast
    page.locator("#broadcast").get_by_label("Broadcast to").fill("+14155550131, +14155550132, not a number")
    page.locator("#broadcast").get_by_label("Message").fill("Class cancelled tonight")
    page.get_by_role("button", name="Broadcast").click()
    expect(page.locator("#requests li").first).to_contain_text("POST /api/broadcasts → 202")
    counts = page.get_by_label("Broadcast counts")
    expect(counts).to_contain_text(re.compile(r": done, .*delivered 2.*rejected 1"), timeout=WAIT_MS)
    for number in ("+14155550131", "+14155550132"):
        expect(phone(page, number).locator(".thread li", has_text="Class cancelled tonight")).to_have_count(1)


def test_console_voice_token_shows_its_decoded_voice_grant(page) -> None:
    sign_in(page, "bob")
    page.get_by_role("button", name="Get a voice token").click()
    expect(page.get_by_label("Decoded voice token")).to_contain_text('"outgoing"')
    expect(page.get_by_label("Decoded voice token")).to_contain_text("identity ")


def test_console_hang_fault_shows_the_apps_504_with_its_message(page) -> None:
    sign_in(page)
    page.get_by_role("button", name="Hang").click()
    expect(page.locator("#armed")).to_have_text("armed: hang")
    page.get_by_role("button", name="Send SMS").click()
    answer = page.locator("#requests li").first
    expect(answer).to_contain_text("→ 504", timeout=WAIT_MS)
    expect(answer).to_contain_text("twilio_timeout")
    page.get_by_role("button", name="Clear faults").click()


@pytest.mark.parametrize("width", WIDTHS)
def test_console_axe_finds_no_serious_or_critical_violation_at_each_width(page, width: str) -> None:
    page.set_viewport_size(WIDTHS[width])
    sign_in(page)
    page.get_by_role("button", name="Send SMS").click()
    expect(page.locator("#requests li").first).to_contain_text("delivered", timeout=WAIT_MS)  # the status moved
    page.add_script_tag(path=str(ROOT / "node_modules" / "axe-core" / "axe.min.js"))
    violations = page.evaluate("axe.run().then((result) => result.violations)")
    serious = [(v["id"], v["impact"], [node["target"] for node in v["nodes"]]) for v in violations
               if v["impact"] in ("serious", "critical")]
    assert serious == []
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page scrolls sideways by {overflow} px at {width} width"
    if os.environ.get("CONSOLE_SCREENSHOTS"):  # make the README's screenshots: CONSOLE_SCREENSHOTS=1 ./test.sh ...
        page.screenshot(path=str(ROOT / "docs" / f"console-{width}.png"), full_page=width == "phone")
