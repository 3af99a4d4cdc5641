"""The dashboard in a real browser: Debian's Chromium driven by Playwright, against the local stack."""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from local.template import ROOT

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SHOTS = ROOT / "tests" / "e2e" / "screenshots"  # git-ignored
METRICS = ("credits", "tokens", "messages", "conversations")


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "make test installs Debian's chromium"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def demo(stack):
    """A tenant with a few days of usage: users, agents, models, types."""
    name = f"dash{uuid.uuid4().hex[:6]}"
    token = stack.key(name)
    now = datetime.now(UTC).replace(microsecond=0)
    events = []
    for n in range(60):
        events.append(
            {
                "id": f"d-{n}",
                "type": ["tokens.input", "tokens.output", "message", "conversation"][n % 4],
                "count": 100 + n if n % 4 < 2 else 1,
                "credits": n % 7,
                "identifier": f"user{n % 5}@example.com",
                "agentId": f"agent-{n % 3}",
                "model": f"model-{n % 2}",
                "conversationId": f"conv-{n // 6}",
                "timestamp": (now - timedelta(hours=n * 3)).isoformat(),
            }
        )
    response = requests.post(
        f"{stack.base_url}/v1/events", headers={"Authorization": f"Bearer {token}"}, json={"events": events}, timeout=10
    )
    assert response.status_code == 200, response.text
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and total(stack, token, "events", "2000-01-01") < len(events):
        time.sleep(0.3)
    return {"token": token, "events": events, "tenant": name}


def total(stack, token: str, measure: str, start: str, zone: str = "UTC") -> int:
    """What the API itself says, to compare the page with."""
    response = requests.get(
        f"{stack.base_url}/v1/usage/query",
        headers={"Authorization": f"Bearer {token}"},
        params={"from": start, "measure": measure, "timeZone": zone},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return sum(row["value"] for row in response.json()["data"])


def open_page(browser, url: str, width: int = 1280):
    page = browser.new_page(viewport={"width": width, "height": 900})
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url)
    return page, errors


def follow_link(browser, url: str, tenant: str, width: int = 1280):
    """Open a sign-in link: the page names the tenant the key opens and waits for Continue."""
    page, errors = open_page(browser, url, width)
    page.wait_for_selector("#confirm:not([hidden])")
    assert page.inner_text("#confirm-tenant") == tenant
    assert page.is_hidden("#dashboard") and page.evaluate("sessionStorage.getItem('usageMeterKey')") is None
    page.get_by_role("button", name="Continue").click()
    return page, errors


def settled(page) -> None:
    """Wait until no request of the page is in flight (selectors only: the page's CSP forbids eval)."""
    page.wait_for_selector('body[aria-busy="false"]', state="attached")


def shown_totals(page) -> dict[str, int]:
    settled(page)
    return {m: int(page.get_attribute(f'[data-metric="{m}-total"]', "data-value")) for m in METRICS}


def local_start(days_back: int, zone: str) -> str:
    from zoneinfo import ZoneInfo

    return (datetime.now(ZoneInfo(zone)).date() - timedelta(days=days_back)).isoformat()


def test_sign_in_by_fragment_shows_the_apis_totals_and_keeps_the_key_out_of_the_address(stack, browser, demo):
    page, errors = follow_link(browser, f"{stack.base_url}/#key={demo['token']}", demo["tenant"])
    page.select_option("#range", "30d")
    page.fill("#zone", "Asia/Kolkata")
    page.click("#controls button[type=submit]")
    shown = shown_totals(page)
    start = local_start(29, "Asia/Kolkata")
    assert shown == {m: total(stack, demo["token"], m, start, "Asia/Kolkata") for m in METRICS}
    assert "#key" not in page.url and page.evaluate("sessionStorage.getItem('usageMeterKey')") == demo["token"]
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "dashboard-30d-kolkata.png"), full_page=True)
    assert errors == []
    page.close()


def test_sign_in_by_form_then_switch_range_and_filter_events(stack, browser, demo):
    page, errors = open_page(browser, f"{stack.base_url}/")
    page.get_by_label("API key").fill(demo["token"])
    page.get_by_role("button", name="Sign in").click()
    page.fill("#zone", "UTC")
    page.select_option("#range", "24h")
    shown = shown_totals(page)
    day_ago = datetime.fromtimestamp((time.time() - 86_400) // 900 * 900 + 900, UTC).isoformat()
    assert shown["credits"] == total(stack, demo["token"], "credits", day_ago)
    page.select_option("#range", "7d")
    assert shown_totals(page)["messages"] == total(stack, demo["token"], "messages", local_start(6, "UTC"))
    page.fill("#filter-type", "message")
    page.click("#event-filters button[type=submit]")
    settled(page)
    types = page.locator("#events tbody tr td:nth-child(2)").all_inner_texts()
    assert types and set(types) == {"message"}
    page.screenshot(path=str(SHOTS / "dashboard-filtered.png"), full_page=True)
    assert errors == []
    page.close()


def test_a_bad_key_shows_the_apis_error_and_a_phone_sized_screen_works(stack, browser, demo):
    page, errors = open_page(browser, f"{stack.base_url}/#key=pk_0000000000000000:sk_nope", width=390)
    page.wait_for_selector("#error:not([hidden])")
    assert "Invalid or missing API key" in page.inner_text("#error")
    assert page.is_visible("#sign-in")
    page.get_by_label("API key").fill(demo["token"])
    page.get_by_role("button", name="Sign in").click()
    shown_totals(page)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")  # no sideways scroll
    page.screenshot(path=str(SHOTS / "dashboard-phone.png"), full_page=True)
    assert [e for e in errors if "401" not in e] == []  # the browser logs the refused request itself
    page.close()


def test_an_empty_tenant_is_told_how_to_send_a_first_event_and_csv_holds_what_is_shown(stack, browser, demo):
    empty = f"empty{uuid.uuid4().hex[:6]}"
    page, errors = follow_link(browser, f"{stack.base_url}/#key={stack.key(empty)}", empty)
    settled(page)
    assert page.is_visible("#empty") and "/v1/events" in page.inner_text("#first-event")
    assert shown_totals(page) == dict.fromkeys(METRICS, 0)
    page.close()

    page, errors = follow_link(browser, f"{stack.base_url}/#key={demo['token']}", demo["tenant"])
    page.fill("#zone", "UTC")
    page.select_option("#range", "7d")
    shown = shown_totals(page)
    with page.expect_download() as download:
        page.click("#download")
    lines = Path(download.value.path()).read_text().splitlines()
    assert lines[0] == "section,key,detail,value"
    assert {f"total,{m},,{shown[m]}" for m in METRICS} <= set(lines)
    assert sum(line.startswith("event,") for line in lines) == page.locator("#events tbody tr").count()
    assert errors == []
    page.close()


def test_a_link_to_another_tenant_is_not_opened_until_continue_and_cancel_keeps_it_out(stack, browser, demo):
    page, errors = open_page(browser, f"{stack.base_url}/#key={demo['token']}")
    page.wait_for_selector("#confirm:not([hidden])")
    assert page.inner_text("#confirm-tenant") == demo["tenant"] and "read" in page.inner_text("#confirm-scopes")
    assert "#key" not in page.url and page.is_hidden("#dashboard")
    page.get_by_role("button", name="Cancel").click()
    assert page.is_visible("#sign-in") and page.evaluate("sessionStorage.getItem('usageMeterKey')") is None
    assert errors == []
    page.close()


def test_totals_past_2_to_the_53_are_shown_exactly(stack, browser):
    tenant = f"huge{uuid.uuid4().hex[:6]}"
    token = stack.key(tenant)
    events = [{"id": f"h-{n}", "type": "message", "count": 1, "credits": 10**15 - n} for n in range(10)]
    response = requests.post(
        f"{stack.base_url}/v1/events", headers={"Authorization": f"Bearer {token}"}, json={"events": events}, timeout=10
    )
    assert response.status_code == 200, response.text
    exact = sum(event["credits"] for event in events)  # 9,999,999,999,999,955: past 2^53
    assert exact > 2**53 and float(exact) != exact
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and total(stack, token, "credits", "2000-01-01") < exact:
        time.sleep(0.3)
    page, errors = follow_link(browser, f"{stack.base_url}/#key={token}", tenant)
    page.select_option("#range", "7d")
    settled(page)
    assert page.get_attribute('[data-metric="credits-total"]', "data-value") == str(exact)
    assert page.inner_text('[data-metric="credits-total"]').replace(",", "") == str(exact)
    assert errors == []
    page.close()


def test_the_credits_panel_shows_the_tenants_balance_and_an_end_users_when_searched(stack, browser):
    tenant = f"cred{uuid.uuid4().hex[:6]}"
    admin = stack.key(tenant, "ingest,read,admin")
    auth = {"Authorization": f"Bearer {admin}"}
    grants = [
        {"id": "org-pack", "amount": 5000},
        {"id": "ana-daily", "amount": 100, "subject": {"identifier": "ana@example.com"},
         "recurrence": {"period": "day", "timeZone": "Asia/Kolkata"}},
    ]  # fmt: skip
    for body in grants:
        assert requests.post(f"{stack.base_url}/v1/grants", headers=auth, json=body, timeout=10).status_code == 201
    held = {"id": "run-1", "subjects": [{"identifier": "ana@example.com"}, {}], "credits": 30}
    assert requests.post(f"{stack.base_url}/v1/reservations", headers=auth, json=held, timeout=10).status_code == 201

    page, errors = follow_link(browser, f"{stack.base_url}/#key={admin}", tenant)
    settled(page)

    def shown() -> dict[str, int]:
        settled(page)
        fields = ("available", "granted", "consumed", "reserved", "overage")
        return {f: int(page.get_attribute(f'[data-balance="{f}"]', "data-value")) for f in fields}

    def api(**query) -> dict[str, int]:
        found = requests.get(f"{stack.base_url}/v1/balance", headers=auth, params=query, timeout=10).json()
        return {f: found[f] for f in ("available", "granted", "consumed", "reserved", "overage")}

    assert shown() == api() == {"available": 4970, "granted": 5000, "consumed": 0, "reserved": 30, "overage": 0}
    assert page.locator("#grants tbody tr td:first-child").all_inner_texts() == ["org-pack"]
    page.fill("#balance-user", "ana@example.com")
    page.get_by_role("button", name="Show credits").click()
    page.wait_for_selector("#balance-of:has-text('ana@example.com')")
    assert shown() == api(identifier="ana@example.com")
    assert "each day, Asia/Kolkata" in page.inner_text("#grants")
    page.screenshot(path=str(SHOTS / "dashboard-credits.png"), full_page=True)
    assert errors == []
    page.close()
