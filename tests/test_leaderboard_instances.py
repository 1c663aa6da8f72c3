"""The instance browser in a real headless Chromium: it loads from disk, its filters change what is
shown, and nothing a submission wrote runs as code."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from headless_browser import browser  # noqa: F401 (fixture)

from implicit_if.leaderboard.render_instances import SCRIPT, render_instances, script_text

BOARD = Path(__file__).resolve().parent.parent / "leaderboards" / "instances-study-gemma-3-270m.html"
HOSTILE = [
    "</script><script>window.pwned = 1</script>",
    '<img src=x onerror="window.pwned = 2">',
    "<!-- <script>window.pwned = 3</script>",
    '\u2028"]}; window.pwned = 4; //',
]

pytestmark = pytest.mark.slow


def shown(driver) -> list[int]:
    from selenium.webdriver.common.by import By

    return [int(e.get_attribute("data-index")) for e in driver.find_elements(By.CSS_SELECTOR, "#items .item")]


def test_the_committed_study_page_loads_from_disk_and_its_filters_work(browser, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser.get(BOARD.as_uri() + "#study-gemma-3-270m-gsm-seed0")
    everything = shown(browser)
    assert len(everything) == 85
    Select(browser.find_element(By.ID, "detector")).select_by_value("gsm")
    gsm = shown(browser)
    assert 0 < len(gsm) < 85  # the GSM-tuned model's `#### N` answers, not every instruction
    marks = browser.find_elements(By.CSS_SELECTOR, "#items mark")
    assert any(mark.text.lstrip().startswith("####") for mark in marks)  # the `#### N` line, highlighted
    Select(browser.find_element(By.ID, "detector")).select_by_value("")
    Select(browser.find_element(By.ID, "verdict")).select_by_value("reference")
    assert 0 < len(shown(browser)) <= 85
    browser.save_screenshot(str(tmp_path / "instances.png"))
    keep = Path(__file__).resolve().parent.parent / "out"
    if keep.is_dir():  # a local run can look at the page: `mkdir out` first (ignored by git)
        shutil.copy(tmp_path / "instances.png", keep / "instances-page.png")


def test_nothing_a_submission_wrote_runs(browser, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    answers = {
        f"e{i}": {
            "text": text,
            "cut": False,
            "record": "x",
            "preference": 1.7,
            "order": "model_first",
            "flipped": None,
            "flags": ["gsm"],
            "spans": {"gsm": [0, 5]},
            "ranking": 0.5,
        }
        for i, text in enumerate(HOSTILE)
    }
    data = {
        "title": HOSTILE[0],
        "reference": HOSTILE[1],
        "detectors": ["gsm", HOSTILE[2]],
        "entries": [{"name": name, "system": HOSTILE[3]} for name in answers],
        "items": [{"instruction": HOSTILE[0], "reference": HOSTILE[1], "answers": answers}],
    }
    page = tmp_path / "instances.html"
    page.write_text(render_instances(data), encoding="utf-8")
    (tmp_path / SCRIPT).write_text(script_text(), encoding="utf-8")
    browser.get(page.as_uri())
    assert browser.execute_script("return window.pwned") is None
    texts = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#items .text")]
    assert HOSTILE[1] in texts and any(HOSTILE[0] in text for text in texts)  # shown as text, not run
