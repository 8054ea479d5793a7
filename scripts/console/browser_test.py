"""The web console in a real browser, as a person uses it (run by scripts/console-test).

Starts `gpubroker serve` on a fresh database, seeds regions, pools, tenants and some
history through the API, then drives headless Chromium with Playwright. Every step
asserts what a person would see; screenshots go to $CONSOLE_SCREENSHOTS.
"""
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from playwright.sync_api import expect, sync_playwright

DATABASE = os.environ["GPUBROKER_TEST_DATABASE_URL"]
SHOTS = os.environ.get("CONSOLE_SCREENSHOTS", ".build/console-screenshots")
ADMIN = "console-admin-token-%d-%s" % (os.getpid(), os.urandom(8).hex())
HOSTILE = "<script>alert('x')</script><img src=x onerror=alert(1)>"
passed = []


def step(name):
    def wrap(function):
        def run(*args):
            started = time.monotonic()
            function(*args)
            passed.append(name)
            print(f"console-test: ok  {name} ({time.monotonic() - started:.1f} s)", flush=True)
        return run
    return wrap


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class API:
    def __init__(self, url):
        self.url = url

    def call(self, method, path, token, body=None, expect=(200, 201, 202, 204)):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, text = response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            status, text = error.code, error.read().decode()
        if status not in expect:
            raise AssertionError(f"{method} {path}: {status} {text}")
        return json.loads(text) if text else None


def seed(api):
    regions = [
        ("cn-beijing", "serverless", True, "active", {"geo": "north"}),
        ("cn-hangzhou", "serverless", False, "active", {"geo": "east"}),
        ("idc-shanghai", "on-premises", False, "cordoned", {"site": "idc"}),
    ]
    for rid, kind, primary, state, labels in regions:
        api.call("POST", "/v1/admin/regions", ADMIN, {
            "id": rid, "kind": kind, "primary": primary, "state": state, "labels": labels,
            "vpcId": f"vpc-{rid}", "vSwitchIds": [f"vsw-{rid}-a", f"vsw-{rid}-b"], "securityGroupId": f"sg-{rid}"})
    pools = [
        ("cn-beijing", "t4", "T4", 16, 10, 1.2), ("cn-beijing", "a10", "A10", 24, 6, 2.4),
        ("cn-hangzhou", "t4", "T4", 16, 6, 1.1), ("cn-hangzhou", "cpu", None, 0, 20, 0.3),
        ("idc-shanghai", "l20", "L20", 48, 4, 0.9),
    ]
    for region, pid, series, memory, capacity, price in pools:
        body = {"computeClass": "gpu" if series else "general-purpose", "cpu": 8, "memoryGiB": 30,
                "instanceType": f"ecs.{pid}.2xlarge", "capacity": capacity, "pricePerHour": price}
        if series:
            body.update({"gpuSeries": series, "gpuMemoryGiB": memory, "gpusPerInstance": 1})
        api.call("PUT", f"/v1/admin/regions/{region}/pools/{pid}", ADMIN, body)
    alpha = api.call("POST", "/v1/admin/tenants", ADMIN, {"name": "team-alpha", "quota": {"gpus": 40}})
    beta = api.call("POST", "/v1/admin/tenants", ADMIN, {"name": "team-beta"})
    # History for the charts, and beta's allocation with hostile labels.
    gpu = {"computeClass": "gpu", "gpuCount": 1, "cpu": 4, "memoryGiB": 15}
    api.call("POST", "/v1/allocations", beta["token"], {**gpu, "gpuSeries": ["A10"], "replicas": 2})
    hostile = api.call("POST", "/v1/allocations", beta["token"], {
        **gpu, "gpuSeries": ["T4"], "replicas": 5, "labels": {"app": HOSTILE}})
    old = api.call("POST", "/v1/allocations", alpha["token"], {**gpu, "gpuSeries": ["T4"], "replicas": 2})
    api.call("DELETE", f"/v1/allocations/{old['id']}", alpha["token"])
    api.call("POST", "/v1/allocations", alpha["token"], {
        "computeClass": "general-purpose", "cpu": 2, "memoryGiB": 4, "replicas": 3, "region": "cn-hangzhou"})
    return alpha, beta, hostile


def sign_in(page, url, token):
    page.goto(url + "/console/")
    expect(page).to_have_url(re.compile(r"/console/signin$"))
    page.get_by_label("Tenant or admin token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()


def shot(page, name):
    page.screenshot(path=os.path.join(SHOTS, name), full_page=True)


def pool_counts(page, region, pool):
    card = page.get_by_role("article", name=f"Region {region}")
    return card.locator("li.pool", has=page.locator("strong", has_text=re.compile(f"^{pool}$"))).locator(".counts")


def main():
    os.makedirs(SHOTS, exist_ok=True)
    work = tempfile.mkdtemp(prefix="gpubroker-console-")
    database = f"console_{os.getpid()}"
    subprocess.run(["psql", DATABASE, "-q", "-c", f"CREATE DATABASE {database}"], check=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(os.path.join(work, "broker.log"), "w")
    broker = subprocess.Popen([
        os.environ["CONSOLE_BROKER"], "serve", "--database-url", DATABASE.rsplit("/", 1)[0] + "/" + database,
        "--admin-token", ADMIN, "--listen", f"127.0.0.1:{port}", "--log-level", "warning",
        "--reconcile-interval", "1"], stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(url + "/readyz", timeout=2)
                break
            except Exception:
                if broker.poll() is not None:
                    sys.exit("console-test: the broker exited:\n" + open(log.name).read())
                time.sleep(0.1)
        api = API(url)
        alpha, beta, hostile = seed(api)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=os.environ["CONSOLE_CHROMIUM"], headless=True,
                                                 args=["--no-sandbox"])
            run(browser, url, api, alpha, beta, hostile)
            browser.close()
    finally:
        broker.terminate()
        broker.wait(timeout=30)
        subprocess.run(["psql", DATABASE, "-q", "-c", f"DROP DATABASE IF EXISTS {database}"], check=False)
    errors = [line for line in open(log.name) if "request failed" in line or "internal error" in line]
    if errors:
        sys.exit("console-test: the broker logged errors:\n" + "".join(errors[:20]))
    print(f"console-test: {len(passed)} passed, 0 failed")


def run(browser, url, api, alpha, beta, hostile):
    desktop = browser.new_context(viewport={"width": 1280, "height": 900})
    desktop.set_default_timeout(10000)
    page = desktop.new_page()
    dialogs = []
    confirms = []  # Release and Rotate token ask first: accepted here, and counted

    def on_dialog(dialog):
        if dialog.type == "confirm":
            confirms.append(dialog.message)
            dialog.accept()
        else:
            dialogs.append(dialog.message)
            dialog.dismiss()
    page.on("dialog", on_dialog)
    state = {}

    @step("GET / redirects to the console, which asks to sign in")
    def redirect():
        page.goto(url + "/")
        expect(page).to_have_url(re.compile(r"/console/signin$"))
        page.get_by_label("Tenant or admin token").fill("not-a-token")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("alert")).to_contain_text("not valid")
        shot(page, "signin-1280.png")

    @step("a tenant signs in; the cookie is HttpOnly, SameSite=Strict and is not the token")
    def signin():
        sign_in(page, url, alpha["token"])
        cookies = {c["name"]: c for c in desktop.cookies()}
        session = cookies["gpb_session"]
        assert session["httpOnly"] and session["sameSite"] == "Strict", session
        assert alpha["token"] not in session["value"] and len(session["value"]) == 64, session
        expect(pool_counts(page, "cn-hangzhou", "cpu")).to_have_text("3 running, 0 idle, 17 free of 20")
        card = page.get_by_role("article", name="Region idc-shanghai")
        expect(card).to_have_class(re.compile("attention"))
        expect(card).to_contain_text("cordoned")
        shot(page, "overview-before-1280.png")

    @step("an allocation requested from the form shows on its page and on the overview")
    def allocate():
        page.get_by_role("link", name="Allocations").click()
        form = page.locator("form[action='/console/allocations'][method='post']")
        form.get_by_label("GPU series").fill("T4")
        form.get_by_label("Replicas").fill("3")
        form.get_by_label("Labels").fill("app=qwen3-8b\nteam=alpha")
        form.get_by_role("button", name="Request").click()
        expect(page.get_by_role("status")).to_contain_text("is active")
        expect(page.locator(".summary")).to_contain_text("3 of 3")
        expect(page.get_by_role("table").first).to_contain_text("cn-beijing")
        state["id"] = page.url.rsplit("/", 1)[1]
        shot(page, "allocation-1280.png")
        page.get_by_role("link", name="Overview").click()
        expect(pool_counts(page, "cn-beijing", "t4")).to_have_text("8 running, 0 idle, 2 free of 10")
        expect(page.locator("#live-overview")).to_contain_text(state["id"][-8:])

    @step("the overview updates without a reload when another client allocates")
    def live():
        page.evaluate("window.__sameDocument = true")
        api.call("POST", "/v1/allocations", alpha["token"], {
            "computeClass": "gpu", "gpuSeries": ["A10"], "gpuCount": 1, "cpu": 4, "memoryGiB": 15, "replicas": 4})
        expect(pool_counts(page, "cn-beijing", "a10")).to_have_text("6 running, 0 idle, 0 free of 6", timeout=15000)
        card = page.get_by_role("article", name="Region cn-beijing")
        expect(card).to_contain_text("low")
        # Markers per series and per pool: the full A10 pool shows beside free T4 and CPU pools.
        expect(card.locator("h3")).to_contain_text("A10 full")
        a10 = card.locator("li.pool", has=page.locator("strong", has_text=re.compile("^a10$")))
        expect(a10.locator(".pool-head .badge")).to_have_text("full")
        assert page.evaluate("window.__sameDocument") is True, "the page was reloaded"
        shot(page, "overview-1280.png")

    @step("a form without the session's CSRF token, or from another site, is refused and changes nothing")
    def csrf():
        before = len(api.call("GET", "/v1/allocations?limit=100", alpha["token"])["allocations"])
        form = {"computeClass": "gpu", "gpuSeries": "T4", "cpu": "4", "memoryGiB": "15", "replicas": "1"}
        wrong = page.request.post(url + "/console/allocations", form={**form, "csrf": "0" * 64}, max_redirects=0)
        assert wrong.status == 403, wrong.status
        missing = page.request.post(url + "/console/allocations", form=form, max_redirects=0)
        assert missing.status == 403, missing.status
        token = page.locator("input[name=csrf]").first.get_attribute("value")
        foreign = page.request.post(url + "/console/allocations", form={**form, "csrf": token}, max_redirects=0,
                                    headers={"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"})
        assert foreign.status == 403, foreign.status
        after = len(api.call("GET", "/v1/allocations?limit=100", alpha["token"])["allocations"])
        assert before == after, (before, after)

    @step("another tenant's allocation is not found through the console, and its labels never show")
    def isolation():
        response = page.goto(url + f"/console/allocations/{hostile['id']}")
        assert response.status == 404, response.status
        expect(page.get_by_role("heading", name="Not found")).to_be_visible()
        assert "onerror" not in page.content() and "script" not in page.locator("main").inner_text()
        page.goto(url + "/console/allocations")
        assert hostile["id"][-8:] not in page.locator("main").inner_text()

    @step("scale, renew and release from the allocation page")
    def change():
        page.goto(url + f"/console/allocations/{state['id']}")
        page.get_by_label("Replicas").fill("2")
        page.get_by_role("button", name="Scale").click()
        expect(page.get_by_role("status")).to_contain_text("Scaled")
        expect(page.locator(".summary")).to_contain_text("2 of 2")
        page.get_by_role("button", name="Renew").click()
        expect(page.get_by_role("status")).to_contain_text("renewed")
        page.get_by_role("button", name="Release").focus()
        page.keyboard.press("Enter")  # keyboard, not the mouse
        expect(page.get_by_role("status")).to_contain_text("Released")
        assert confirms[-1].startswith("Release every instance"), confirms
        expect(page.locator(".summary")).to_contain_text("released")
        expect(page.locator(".timeline")).to_contain_text("released")
        page.get_by_role("link", name="Overview").click()
        expect(pool_counts(page, "cn-beijing", "t4")).to_have_text("5 running, 3 idle, 2 free of 10")
        assert state["id"][-8:] not in page.locator("#live-overview").inner_text()

    @step("filters and the pending queue")
    def lists():
        page.goto(url + "/console/allocations?status=released")
        expect(page.locator("#live-allocations")).to_contain_text(state["id"][-8:])
        expect(page.locator("#live-allocations tbody tr")).to_have_count(2)
        api.call("POST", "/v1/allocations", alpha["token"], {
            "computeClass": "gpu", "gpuSeries": ["A10"], "gpuCount": 1, "cpu": 4, "memoryGiB": 15, "replicas": 2,
            "queue": True, "region": "cn-beijing"})
        page.get_by_role("link", name="Pending").click()
        expect(page.locator("#live-pending tbody tr")).to_have_count(1)
        expect(page.locator("#live-pending")).to_contain_text("cn-beijing")
        shot(page, "pending-1280.png")
        page.get_by_role("link", name="Charts").click()
        expect(page.locator("svg polyline")).not_to_have_count(0)
        expect(page.get_by_role("table").first).to_contain_text("cn-beijing")
        shot(page, "charts-1280.png")

    @step("hostile labels are shown as text, never run")
    def hostile_labels():
        other = browser.new_context(viewport={"width": 1280, "height": 900})
        beta_page = other.new_page()
        beta_page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        sign_in(beta_page, url, beta["token"])
        beta_page.goto(url + "/console/allocations")
        expect(beta_page.locator("#live-allocations")).to_contain_text(HOSTILE)
        beta_page.goto(url + f"/console/allocations/{hostile['id']}")
        expect(beta_page.locator(".summary")).to_contain_text(HOSTILE)
        assert beta_page.locator("main img, main script").count() == 0
        assert not dialogs, dialogs
        other.close()

    @step("sign-out ends the session")
    def signout():
        cookie = {c["name"]: c for c in desktop.cookies()}["gpb_session"]["value"]
        page.get_by_role("button", name="Sign out").click()
        expect(page).to_have_url(re.compile(r"/console/signin$"))
        page.goto(url + "/console/allocations")
        expect(page).to_have_url(re.compile(r"/console/signin$"))
        replay = page.request.get(url + "/console/", headers={"Cookie": f"gpb_session={cookie}"}, max_redirects=0)
        assert replay.status == 303, replay.status

    @step("the admin sees who holds and waits, cordons a region, reports a pool, creates a tenant, rotates its token")
    def admin():
        sign_in(page, url, ADMIN)
        holders = page.get_by_role("region", name="Who holds capacity")
        expect(holders.get_by_role("row", name=re.compile("team-beta"))).to_contain_text("7")  # 2 A10 + 5 T4
        expect(holders.get_by_role("row", name=re.compile("team-beta"))).to_contain_text("A10 2, T4 5")  # GPUs by series
        expect(holders.get_by_role("row", name=re.compile("team-alpha"))).to_contain_text("cn-hangzhou 3")
        page.get_by_role("link", name="Pending").click()
        expect(page.locator("#live-pending tbody tr")).to_have_count(1)
        expect(page.locator("#live-pending")).to_contain_text("team-alpha")
        page.get_by_role("link", name="Allocations").click()
        page.get_by_label("Tenant").select_option(label="team-beta")
        page.get_by_role("button", name="Filter").click()
        expect(page.locator("#live-allocations")).to_contain_text(HOSTILE)
        assert page.locator("main img, main script").count() == 0 and not dialogs, dialogs
        # The admin opens a tenant's allocation and releases it; the ledger says who did.
        page.locator("#live-allocations tbody tr a.id").first.click()
        released_id = page.url.rsplit("/", 1)[1]
        page.get_by_role("button", name="Release").click()
        expect(page.get_by_role("status")).to_contain_text("Released")
        events = api.call("GET", f"/v1/admin/allocations/{released_id}/events", ADMIN)["events"]
        assert any(e["kind"] == "released" and e["actor"] == "admin" for e in events), events
        page.get_by_role("link", name="Regions").click()
        row = page.get_by_role("row", name=re.compile("cn-hangzhou"))
        row.get_by_role("button", name="Cordon").click()
        expect(page.get_by_role("row", name=re.compile("cn-hangzhou"))).to_contain_text("cordoned")
        assert api.call("GET", "/v1/regions/cn-hangzhou", ADMIN)["state"] == "cordoned"
        page.get_by_role("row", name=re.compile("cn-hangzhou")).get_by_role("button", name="Uncordon").click()
        shot(page, "regions-1280.png")
        page.get_by_role("link", name="Pools").click()
        row = page.get_by_role("region", name="Pools of cn-beijing").get_by_role("row", name=re.compile("^a10"))
        row.get_by_label("Capacity").fill("10")
        row.get_by_role("button", name="Report").click()
        pools = api.call("GET", "/v1/regions/cn-beijing/inventory", ADMIN)["pools"]
        assert [p["capacity"] for p in pools if p["id"] == "a10"] == [10], pools
        page.get_by_role("link", name="Tenants").click()
        form = page.locator("form[action='/console/admin/tenants']")
        form.get_by_label("Name").fill("team-gamma")
        form.get_by_label("GPUs").fill("8")
        form.get_by_role("button", name="Create").click()
        token = page.locator("code.secret").inner_text()
        assert api.call("GET", "/v1/allocations", token)["allocations"] == []
        gamma = browser.new_context(viewport={"width": 1280, "height": 900})
        gamma_page = gamma.new_page()
        sign_in(gamma_page, url, token)
        page.get_by_role("row", name=re.compile("team-gamma")).get_by_role("button", name="Rotate token").click()
        rotated = page.locator("code.secret").inner_text()
        assert confirms[-1].startswith("Issue a new token"), confirms
        assert rotated != token
        api.call("GET", "/v1/allocations", token, expect=(401,))
        # A session on the old token ends: its open overview goes to the sign-in page by itself.
        expect(gamma_page).to_have_url(re.compile(r"/console/signin$"), timeout=15000)
        gamma.close()
        shot(page, "tenants-1280.png")
        page.get_by_role("link", name="Overview").click()
        shot(page, "overview-admin-1280.png")

    @step("phone width: no sideways scroll on any page, tenant's and admin's")
    def phone():
        tenant_pages = ["/console/", f"/console/allocations/{state['id']}", "/console/allocations", "/console/pending",
                        "/console/charts"]
        admin_pages = tenant_pages[:1] + tenant_pages[2:] + [
            f"/console/allocations/{state['id']}", "/console/admin/regions", "/console/admin/pools", "/console/admin/tenants"]
        for token, who, paths in [(alpha["token"], "tenant", tenant_pages), (ADMIN, "admin", admin_pages)]:
            small = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
            mobile = small.new_page()
            sign_in(mobile, url, token)
            for path in paths:
                mobile.goto(url + path)
                shot(mobile, f"{who}{path.replace('/', '-').rstrip('-')}-phone.png")
                overflow = mobile.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
                assert overflow <= 0, f"{who}: {path} scrolls sideways by {overflow}px"
            small.close()

    @step("every control on the allocation page is reachable with Tab")
    def keyboard():
        page.get_by_role("button", name="Sign out").click()
        sign_in(page, url, alpha["token"])
        created = api.call("POST", "/v1/allocations", alpha["token"], {
            "computeClass": "gpu", "gpuSeries": ["T4"], "gpuCount": 1, "cpu": 4, "memoryGiB": 15, "replicas": 1})
        page.goto(url + f"/console/allocations/{created['id']}")
        controls = """() => [...document.querySelectorAll('a[href], button, input:not([type=hidden]), select, textarea')]
            .filter(e => e.offsetParent !== null)"""
        wanted = page.evaluate(f"() => ({controls})().length")
        seen = set()
        for _ in range(wanted + 3):
            page.keyboard.press("Tab")
            seen.add(page.evaluate(f"() => ({controls})().indexOf(document.activeElement)"))
        assert seen.issuperset(range(wanted)), (wanted, sorted(seen))

    for check in [redirect, signin, allocate, live, csrf, isolation, change, lists, hostile_labels, signout, admin,
                  phone, keyboard]:
        check()
    desktop.close()


if __name__ == "__main__":
    main()
