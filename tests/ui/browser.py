"""The web UI in a real browser (headless Chromium through chromedriver), as
a curator uses it: sign in; import a raw conversation and enrich it; filter
conversations; select across two pages; create a file; add more from the
"Add to…" list; see the duplicate error name the conversations; open a
conversation and see its pairs; download JSON and JSONL and compare the bytes
with the API's; remove two members at once; rename, archive, delete.
Screenshots of every page at 1280 and 390 px go to docs/screenshots/.

Run by scripts/test.sh against a running server:
    python3 tests/ui/browser.py BASE_URL EMAIL PASSWORD RAW_CONVERSATION_FILE
"""

import json
import os
import sys
import urllib.request

from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

SHOTS = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "screenshots")
# axe-core 4.14.1 (MPL-2.0, see vendor/axe-core/LICENSE), from the npm registry.
AXE = open(os.path.join(os.path.dirname(__file__), "vendor", "axe-core", "axe.min.js"), encoding="utf-8").read()
# Serious or critical accessibility violations, by page.
VIOLATIONS = []


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(argument)
    return webdriver.Chrome(service=webdriver.ChromeService("/usr/bin/chromedriver"), options=options)


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def click(driver, button_text, arrived):
    """Clicks a button and waits for the page it leads to: `arrived(driver)` true."""
    old = driver.find_element(By.TAG_NAME, "html")
    driver.find_element(By.XPATH, f"//button[normalize-space()='{button_text}']").click()
    WebDriverWait(driver, 20).until(lambda d: not is_same(old, d) and arrived(d))


def is_same(element, driver):
    try:
        return element.id == driver.find_element(By.TAG_NAME, "html").id
    except Exception:
        return False


def main_text(driver):
    return driver.find_element(By.TAG_NAME, "main").text


def accessible(driver, name):
    """Runs axe-core on the page; records serious and critical violations."""
    driver.execute_script(AXE)
    result = driver.execute_async_script("var done = arguments[0]; axe.run(document).then(function (r) { done(r.violations); });")
    print(f"axe {name}: {len(result)} violation(s): " + ", ".join(f"{v['id']} ({v['impact']})" for v in result))
    for violation in result:
        if violation["impact"] in ("serious", "critical"):
            targets = [node["target"] for node in violation["nodes"]][:5]
            VIOLATIONS.append(f"{name}: {violation['id']} ({violation['impact']}): {violation['help']} at {targets}")


def shoot(driver, name):
    """The page at 1280 and 390 px wide, whole height, after an accessibility check."""
    os.makedirs(SHOTS, exist_ok=True)
    accessible(driver, name)
    for width in (1280, 390):
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(width, min(max(height, 700), 3000))
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(width, min(max(height, 700), 3000))
        driver.save_screenshot(os.path.join(SHOTS, f"{name}-{width}.png"))
    driver.set_window_size(1280, 900)


def tick(driver, ids):
    for conversation_id in ids:
        box = driver.find_element(By.CSS_SELECTOR, f"input[name=pick][value='{conversation_id}']")
        if not box.is_selected():
            box.click()


def page_ids(driver):
    return [box.get_attribute("value") for box in driver.find_elements(By.CSS_SELECTOR, "input[name=pick]")]


def api_link(base, file_id, fmt, token):
    """The signed link the API answers for a download."""
    return json.loads(fetch(f"{base}/api/training-files/{file_id}/download?format={fmt}", token=token))["download_url"]


def fetch(url, cookie=None, token=None):
    headers = {}
    if cookie:
        headers["Cookie"] = f"lora_files_session={cookie}"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers)) as response:
        return response.read()


def watch_a_big_create(driver, base, email, password):
    """A create of 5 000 conversations, queued through the API, followed on
    the file's page: the bar moves (screenshot mid-way), then the page shows
    the finished file."""
    token_request = urllib.request.Request(base + "/api/auth/token", data=json.dumps({"email": email, "password": password}).encode(), headers={"Content-Type": "application/json"})
    token = json.loads(urllib.request.urlopen(token_request).read())["access_token"]
    ids, cursor = [], None
    while len(ids) < 5000:
        page = json.loads(fetch(f"{base}/api/conversations?enrichment_status=completed&limit=500" + (f"&cursor={cursor}" if cursor else ""), token=token))
        ids += [c["conversation_id"] for c in page["conversations"]]
        cursor = page["next_cursor"]
        check(cursor or len(ids) >= 5000, f"5 000 enriched conversations to create from, found {len(ids)}")
    body = json.dumps({"name": "Five thousand", "conversation_ids": ids[:5000]}).encode()
    request = urllib.request.Request(base + "/api/training-files", data=body, headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}", "Prefer": "respond-async"})
    response = urllib.request.urlopen(request)
    check(response.status == 202, f"Prefer: respond-async answers 202, not {response.status}")
    accepted = json.loads(response.read())
    driver.get(f"{base}/training-files/{accepted['trainingFile']['id']}")
    check(driver.find_elements(By.CSS_SELECTOR, "[data-job] progress"), "the file's page shows the job's bar")
    WebDriverWait(driver, 120, poll_frequency=0.05).until(
        lambda d: any(0 < int(b.get_attribute("value") or 0) < 5000 for b in d.find_elements(By.CSS_SELECTOR, "[data-job-bar]"))
    )
    check("conversations" in driver.find_element(By.CSS_SELECTOR, "[data-job]").text, "the job's figures are shown")
    driver.save_screenshot(os.path.join(SHOTS, "job-progress-1280.png"))
    WebDriverWait(driver, 170).until(lambda d: not d.find_elements(By.CSS_SELECTOR, "[data-job]") and "5000" in main_text(d))
    check("active" in main_text(driver), "the page shows the finished file without a manual reload")


def main(base, email, password, raw_path):
    driver = browser()
    try:
        driver.get(base + "/training-files")
        check(driver.current_url == base + "/", f"without a session the UI sends to sign-in, not {driver.current_url}")
        shoot(driver, "sign-in")
        driver.find_element(By.NAME, "email").send_keys(email)
        driver.find_element(By.NAME, "password").send_keys(password)
        click(driver, "Sign in", lambda d: d.current_url.startswith(base + "/conversations"))

        # Import a raw conversation with its scaffolding, then enrich it.
        raw = open(raw_path, encoding="utf-8").read()
        text = driver.find_element(By.NAME, "text")
        driver.execute_script("arguments[0].value = arguments[1];", text, raw)
        Select(driver.find_element(By.NAME, "persona_key")).select_by_value("pragmatic_optimist")
        Select(driver.find_element(By.NAME, "emotional_arc_key")).select_by_value("shame_to_acceptance")
        Select(driver.find_element(By.NAME, "topic_key")).select_by_value("grandparent_529")
        click(driver, "Import", lambda d: "/conversations/" in d.current_url)
        check("not enriched yet" in main_text(driver), "an imported raw conversation waits for enrichment")
        click(driver, "Enrich", lambda d: "Enriched:" in main_text(driver))
        check("Validation passed" in main_text(driver), "the validation report is shown")
        check(driver.find_elements(By.CSS_SELECTOR, ".bubble.target"), "the pairs are shown with their targets")
        shoot(driver, "conversation")

        # Filter: persona pragmatic_optimist finds the new one only.
        driver.get(base + "/conversations")
        Select(driver.find_element(By.NAME, "persona")).select_by_value("pragmatic_optimist")
        click(driver, "Apply filters", lambda d: "persona=pragmatic_optimist" in d.current_url)
        check("conversation matches" in main_text(driver) or "conversations match" in main_text(driver), "the filter counts its matches")

        # Select one conversation on each of two pages, then create a file.
        driver.get(base + "/conversations?per=3")
        shoot(driver, "conversations")
        first = page_ids(driver)
        tick(driver, first[:1])
        click(driver, "Next page", lambda d: "cursor=" in d.current_url)
        second = page_ids(driver)
        check(second and second[0] not in first, "the next page shows other conversations")
        tick(driver, second[:1])
        driver.find_element(By.NAME, "name").send_keys("Browser batch <1>")
        click(driver, "Create training file", lambda d: "/training-files/" in d.current_url)
        check(driver.find_element(By.TAG_NAME, "h1").text == "Browser batch <1>", "the file page, name shown as text")
        check("Created Browser batch <1> with 2 conversations." in main_text(driver), main_text(driver))
        file_url = driver.current_url.split("?")[0]
        file_id = file_url.rsplit("/", 1)[1]

        # Add from "Add to…": with one already in the file, the error names it.
        driver.get(base + "/conversations?per=3")
        tick(driver, first[:3])
        Select(driver.find_element(By.NAME, "file")).select_by_value(file_id)
        click(driver, "Add to file", lambda d: "already in the training file" in d.page_source)
        duplicate = driver.find_element(By.CSS_SELECTOR, "[role=alert] li code.id")
        check(duplicate.get_attribute("title") == first[0], "the duplicate is named by its id")
        shoot(driver, "duplicate-error")
        tick(driver, [])
        driver.find_element(By.CSS_SELECTOR, f"input[name=pick][value='{first[0]}']").click()
        click(driver, "Add to file", lambda d: "/training-files/" in d.current_url)
        check("holds 4 conversations" in main_text(driver), main_text(driver))
        shoot(driver, "training-file")

        # Open a member and see its pairs.
        driver.find_element(By.CSS_SELECTOR, "table a[href^='/conversations/']").click()
        WebDriverWait(driver, 20).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".pair"))
        driver.get(file_url)

        # The UI's downloads equal the API's bytes.
        cookie = driver.get_cookie("lora_files_session")["value"]
        token_request = urllib.request.Request(base + "/api/auth/token", data=json.dumps({"email": email, "password": password}).encode(), headers={"Content-Type": "application/json"})
        token = json.loads(urllib.request.urlopen(token_request).read())["access_token"]
        for fmt, label in (("json", "JSON"), ("jsonl", "JSONL"), ("openai", "OpenAI"), ("sharegpt", "ShareGPT"), ("alpaca", "Alpaca")):
            link = driver.find_element(By.CSS_SELECTOR, f"a[aria-label='Download the current version as {label}']").get_attribute("href")
            ui_bytes = fetch(link, cookie=cookie)
            api = json.loads(fetch(f"{base}/api/training-files/{file_id}/download?format={fmt}", token=token))
            check(ui_bytes == fetch(api["download_url"]), f"the UI's {fmt} is the API's")
            check(len(ui_bytes) == api["size"] and len(ui_bytes) > 0, f"the {fmt} download has the size the API states")
        # The OpenAI export is chat lines a trainer takes, one per conversation.
        first_line = json.loads(fetch(api_link(base, file_id, "openai", token)).splitlines()[0])
        check([m["role"] for m in first_line["messages"]][-1] == "assistant", "an OpenAI line ends on the assistant")
        # The download menu opens by keyboard and by click, with no script needed.
        menu = driver.find_element(By.CSS_SELECTOR, "details.download-menu summary")
        menu.click()
        check(driver.find_element(By.CSS_SELECTOR, "details.download-menu[open] a[aria-label$='as OpenAI']").is_displayed(), "the download menu opens")
        shoot(driver, "download-menu")
        menu.click()
        check("tokens (o200k_base)" in main_text(driver), "the file page shows its token figures")

        # Remove two members at once.
        boxes = driver.find_elements(By.CSS_SELECTOR, "input[name=pick]")
        boxes[0].click()
        boxes[1].click()
        click(driver, "Remove selected conversations", lambda d: "Removed:" in main_text(d))
        check("holds 2 conversations" in main_text(driver), main_text(driver))

        # Rename, archive, delete.
        name = driver.find_element(By.CSS_SELECTOR, "form[action$='/rename'] input[name=name]")
        name.clear()
        name.send_keys("Renamed batch")
        click(driver, "Rename", lambda d: "Renamed to Renamed batch." in main_text(d))
        click(driver, "Archive", lambda d: "Archived:" in main_text(d))
        driver.get(base + "/training-files")
        check("every file is archived" in main_text(driver), "an empty list with only archived files says so")
        driver.get(base + "/training-files?status=all")
        shoot(driver, "training-files")
        driver.get(file_url)
        driver.find_element(By.NAME, "confirm").send_keys("Renamed batch")
        click(driver, "Delete", lambda d: "were deleted" in main_text(d))

        driver.get(base + "/api/docs")
        shoot(driver, "api-docs")
        driver.get(base + "/training-files/00000000-0000-4000-8000-000000000000")
        shoot(driver, "not-found")

        watch_a_big_create(driver, base, email, password)

        click(driver, "Sign out", lambda d: d.current_url == base + "/")
        driver.get(base + "/conversations")
        check(driver.current_url == base + "/", "signed out")
    finally:
        driver.quit()
    check(not VIOLATIONS, "accessibility (axe-core):\n" + "\n".join(VIOLATIONS))
    print("browser test: passed")


if __name__ == "__main__":
    main(*sys.argv[1:5])
