"""The board page in a real headless Chromium: loads from disk, one row per system, sorting works."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from headless_browser import browser  # noqa: F401 (fixture)
from leaderboard_fixtures import synthetic_instructions, write_submission

from implicit_if.leaderboard.board import BootstrapSettings, build_board_data
from implicit_if.leaderboard.check import check_submissions
from implicit_if.leaderboard.evaluation_sets import EvaluationSets
from implicit_if.leaderboard.render_html import render_html

INSTRUCTIONS = synthetic_instructions(120)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("submissions")
    # Win probabilities chosen so that win-rate order and name order differ.
    for name, p, seed in (("delta", 0.7, 1), ("alpha", 0.2, 2), ("charlie", 0.5, 3), ("bravo", 0.35, 4)):
        write_submission(root, name, INSTRUCTIONS, win_probability=p, rng_seed=seed)
    with pytest.MonkeyPatch.context() as patch:  # caches go to a temp folder, not the user's
        patch.setenv("IMPLICIT_IF_CACHE", str(tmp_path_factory.mktemp("cache")))
        entries, _ = check_submissions(root, EvaluationSets(lambda d, s: INSTRUCTIONS))
    html = render_html(build_board_data(entries, BootstrapSettings(n_resamples=1_000)))
    path = tmp_path_factory.mktemp("board") / "index.html"
    path.write_text(html, encoding="utf-8")
    return path


def systems_in_order(driver) -> list[str]:
    from selenium.webdriver.common.by import By

    return [row.get_attribute("data-system") for row in driver.find_elements(By.CSS_SELECTOR, "table.board tbody tr")]


def header(driver, text: str):
    from selenium.webdriver.common.by import By

    (match,) = [th for th in driver.find_elements(By.CSS_SELECTOR, "table.board th") if th.text.strip() == text]
    return match


def test_page_loads_from_disk_with_one_row_per_system(browser, page: Path):
    from selenium.webdriver.common.by import By

    browser.get(page.as_uri())
    assert browser.title == "implicit-if leaderboard"
    assert systems_in_order(browser) == ["delta", "charlie", "bravo", "alpha"]  # ranked by LC win rate
    bars = browser.find_elements(By.CSS_SELECTOR, "table.board .bar .ci")
    assert len(bars) == 8 and all(bar.size["width"] > 0 for bar in bars)  # CI bars: LC and win rate, per row
    screenshot = Path(page.parent, "board.png")
    browser.save_screenshot(str(screenshot))
    assert screenshot.stat().st_size > 10_000
    keep = Path(__file__).resolve().parent.parent / "out"
    if keep.is_dir():  # a local run can look at the page: `mkdir out` first (ignored by git)
        shutil.copy(screenshot, keep / "leaderboard-page.png")


def test_clicking_headers_sorts_rows(browser, page: Path):
    browser.get(page.as_uri())
    header(browser, "System").click()
    assert systems_in_order(browser) == ["alpha", "bravo", "charlie", "delta"]
    assert header(browser, "System").get_attribute("aria-sort") == "ascending"
    header(browser, "System").click()
    assert systems_in_order(browser) == ["delta", "charlie", "bravo", "alpha"]
    header(browser, "Win rate %").click()  # numeric ascending: worst first
    assert systems_in_order(browser) == ["alpha", "bravo", "charlie", "delta"]
    header(browser, "Rank").click()
    ranks = [
        int(r)
        for r in (
            browser.execute_script(
                "return Array.from(document.querySelectorAll('table.board tbody tr td:first-child'))"
                ".map(td => td.textContent)"
            )
        )
    ]
    assert ranks == sorted(ranks)
