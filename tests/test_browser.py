"""End to end, as a student works: every notebook opened and run in JupyterLab in a real browser (Chromium).

The suite runs this test after the notebooks (helpers.pytest_rules orders it last). A notebook whose cells
took nbval more than SLOW_S seconds in this same suite is not executed a second time: Lab opens the executed
copy of that run (helpers.executed), whose outputs nbval has just compared with the stored ones, checks that
they render, and runs its self-check live. Every other notebook is cleared and Run All in Lab. Run alone,
with no such copies, the test runs every notebook in full.

Skipped, with the reason, where Chromium is not installed; in strict mode (CI) that is a failure.
Screenshots go to build/browser/ (ignored by git).
"""

from __future__ import annotations

import json
import re

import pytest

from helpers import browser, catalog, executed, progress

pytestmark = pytest.mark.needs("chromium")
NAMES = [notebook.path.name for notebook in catalog.notebooks()]
TIMES: dict[str, float] = {}
SLOW_S = 6  # a notebook whose cells took nbval longer than this is not run twice


def _executed_copy(name: str):
    """This suite's executed copy of a slow notebook, or None (then the browser runs it in full)."""
    seconds = executed.seconds(name)
    return executed.copy_of(name) if seconds is not None and seconds > SLOW_S else None


@pytest.fixture(scope="module")
def page():
    from playwright.sync_api import sync_playwright

    with browser.Lab() as lab, sync_playwright() as playwright:
        chromium = browser.launch(playwright)
        try:
            tab = chromium.new_page(viewport={"width": 1400, "height": 1000})
            tab.lab = lab
            yield tab
        finally:
            chromium.close()
    browser.OUT_DIR.mkdir(parents=True, exist_ok=True)
    (browser.OUT_DIR / "times.json").write_text(json.dumps(TIMES, indent=2) + "\n")


def test_lab_starts_clean_with_the_start_notebook_open_and_the_repository_in_the_file_browser(page):
    page.goto(page.lab.address("/lab"))  # where `make lab` lands
    page.wait_for_function(browser._KERNEL_IDLE, timeout=120_000, polling=250)
    page.wait_for_timeout(1500)  # time for any pop-up to appear
    assert page.evaluate("window.jupyterapp.shell.currentWidget.title.label") == "00-start-here.ipynb"
    listing = page.locator(".jp-DirListing-itemText").all_inner_texts()
    assert "notebooks" in listing and "README.md" in listing, listing
    assert page.locator(".jp-Notification-Toast").count() == 0, "a notification (news, updates) popped up"
    browser.close_notebook(page)


@pytest.mark.parametrize("name", NAMES)
def test_run_all_in_the_browser(page, name):
    run = browser.run_notebook(page, page.lab, name, executed=_executed_copy(name))
    TIMES[name] = run.seconds
    assert run.errors == [], f"{name} shows errors after Run All: {run.errors}"
    plots = f"{run.images_rendered} of {run.images_expected}"
    assert run.images_rendered == run.images_expected, f"{name}: only {plots} plots rendered"
    if run.widgets:
        assert run.widget_answered, f"{name}: clicking a quiz answer gave no feedback"


def test_an_answer_clicked_in_lab_outlives_its_kernel_and_counts_in_the_review(page):
    """A student clicks an answer in one notebook, its kernel is shut down, and 05.1, in a new kernel, counts
    it: the answer went to the progress file (the suite's own, see conftest.py), not to the kernel's memory."""
    before = len(progress.answers())
    clicked = browser.run_notebook(page, page.lab, "01.1-service-models.ipynb")  # Run All, one click, kernel shut
    assert clicked.widget_answered
    assert any(answer.source == "widget" for answer in progress.answers()[before:])
    browser.open_lab(page, page.lab, "notebooks/05.1-midterm-review.ipynb")
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_function(browser._ALL_RUN, timeout=300_000, polling=250)
    panel = page.evaluate("window.jupyterapp.shell.currentWidget.id")
    shown = " ".join(page.locator(f"#{panel} .jp-OutputArea-output").all_inner_texts())
    browser.close_notebook(page)
    counted = re.search(r"answers so far: (\d+)", shown)
    assert counted, "05.1 did not show the student's own progress"
    assert int(counted.group(1)) == len(progress.answers()) >= before + 3  # the click, and 05.1's own two answers
