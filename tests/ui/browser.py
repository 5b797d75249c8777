"""The web UI in a real browser (headless Chromium through chromedriver):
sign in, import a raw conversation with its scaffolding, enrich it, build a
training file from it, add to the file, download a version, sign out.

Run by scripts/test.sh against a running server:
    python3 tests/ui/browser.py BASE_URL EMAIL PASSWORD RAW_CONVERSATION_FILE
"""

import json
import sys
import urllib.request

from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1300,900"):
        options.add_argument(argument)
    return webdriver.Chrome(service=webdriver.ChromeService("/usr/bin/chromedriver"), options=options)


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def submit(driver, button_text, arrived):
    """Clicks a form's button and waits for the page it leads to: `arrived(driver)` true."""
    old = driver.find_element(By.TAG_NAME, "html")
    driver.find_element(By.XPATH, f"//button[text()='{button_text}']").click()
    WebDriverWait(driver, 20).until(lambda d: not is_same(old, d) and arrived(d))


def is_same(element, driver):
    try:
        return element.id == driver.find_element(By.TAG_NAME, "html").id
    except Exception:
        return False


def main(base, email, password, raw_path):
    driver = browser()
    try:
        driver.get(base + "/training-files")
        check(driver.current_url == base + "/", f"without a session the UI sends to sign-in, not {driver.current_url}")
        driver.find_element(By.NAME, "email").send_keys(email)
        driver.find_element(By.NAME, "password").send_keys(password)
        submit(driver, "Sign in", lambda d: d.current_url == base + "/training-files")

        # Import a raw conversation with its scaffolding, then enrich it.
        driver.get(base + "/conversations")
        raw = open(raw_path, encoding="utf-8").read()
        text = driver.find_element(By.NAME, "text")
        driver.execute_script("arguments[0].value = arguments[1];", text, raw)
        Select(driver.find_element(By.NAME, "persona_key")).select_by_value("pragmatic_optimist")
        Select(driver.find_element(By.NAME, "emotional_arc_key")).select_by_value("shame_to_acceptance")
        Select(driver.find_element(By.NAME, "topic_key")).select_by_value("grandparent_529")
        submit(driver, "Import", lambda d: "/conversations/" in d.current_url)
        conversation_id = driver.current_url.rsplit("/", 1)[1]
        check("not_started" in driver.page_source, "an imported raw conversation waits for enrichment")
        submit(driver, "Enrich", lambda d: "<strong>" in d.page_source)
        check("<strong>completed</strong>" in driver.page_source, "enrichment completed")
        check("Validation passed" in driver.page_source, "the validation report is shown")

        # A training file from it, then one more conversation added.
        driver.get(base + "/conversations?enrichment_status=completed")
        others = [a.text for a in driver.find_elements(By.CSS_SELECTOR, "td a") if a.text != conversation_id]
        check(others, "the imported enriched fixtures are listed")
        driver.get(base + "/training-files")
        driver.find_element(By.NAME, "name").send_keys("Browser batch <1>")
        driver.find_element(By.NAME, "conversation_ids").send_keys(conversation_id)
        submit(driver, "Create", lambda d: "/training-files/" in d.current_url)
        check(driver.find_element(By.TAG_NAME, "h1").text == "Browser batch <1>", "the file page, name shown as text")
        driver.find_element(By.NAME, "conversation_ids").send_keys(others[0])
        submit(driver, "Add", lambda d: "Version" in d.find_element(By.TAG_NAME, "main").text)
        check("Version 2 · 2 conversations" in driver.find_element(By.TAG_NAME, "main").text, "the add made version 2")

        # Version 1's JSONL through the signed URL the link redirects to.
        link = driver.find_element(By.XPATH, "//tr[td[1][text()='1']]//a[text()='JSONL']").get_attribute("href")
        cookie = driver.get_cookie("lora_files_session")["value"]
        request = urllib.request.Request(link, headers={"Cookie": f"lora_files_session={cookie}"})
        with urllib.request.urlopen(request) as response:
            lines = [json.loads(line) for line in response.read().decode().splitlines()]
        check(len(lines) == 2 and all(line["conversation_id"] == conversation_id for line in lines), f"version 1 holds the enriched pairs: {len(lines)} lines")

        submit(driver, "Sign out", lambda d: d.current_url == base + "/")
        driver.get(base + "/conversations")
        check(driver.current_url == base + "/", "signed out")
    finally:
        driver.quit()
    print("browser test: passed")


if __name__ == "__main__":
    main(*sys.argv[1:5])
