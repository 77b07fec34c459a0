"""The notebooks as a student meets them: JupyterLab in a real browser, driven end to end.

:class:`Lab` starts ``jupyter lab`` on 127.0.0.1 at a free port with a fresh token and stops it (and every
kernel it started) by its process group. :func:`run_notebook` opens one notebook in the distribution's
Chromium through Playwright, clears its outputs, runs all cells with JupyterLab's own commands, waits until
the kernel is idle, and reports what a student would see: how long Run All took, error outputs, plots that
did not render, and whether a quiz widget answers a click. It saves a screenshot of the result.

A notebook whose cells the suite's nbval run has just executed, and which is slow to run, need not run twice:
given its executed copy (:mod:`helpers.executed`), :func:`run_notebook` opens that copy instead, checks what
Lab renders of that very run's outputs (errors, plots), and runs its self-check cells live in Lab's kernel,
so that a quiz widget still answers a click.

``python -m helpers.browser`` runs every notebook this way and prints the Run All time of each (the table
the README's performance section quotes). No browser is ever downloaded: Chromium must be installed
(``apt-get install chromium``).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from helpers import catalog, net

CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                  "--disable-crash-reporter", "--disable-breakpad"]
OUT_DIR = catalog.ROOT / "build" / "browser"
DEFAULT_WORKSPACE = catalog.ROOT / "scripts" / "lab-workspace.json"  # what `make lab` opens at /lab


def chromium_path() -> str | None:
    """The installed Chromium (or Chrome), if any."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


class Lab:
    """``jupyter lab`` on 127.0.0.1, serving the repository, with the app object exposed to scripts."""

    def __init__(self, root: Path = catalog.ROOT, timeout: float = 90):
        self.token = secrets.token_hex(24)
        jupyter = Path(sys.prefix) / "bin" / "jupyter"
        argv = [str(jupyter), "lab", "--no-browser", "--ServerApp.port={port}", "--ServerApp.port_retries=0",
                "--ServerApp.ip=127.0.0.1", f"--ServerApp.root_dir={root}", f"--IdentityProvider.token={self.token}",
                "--LabApp.expose_app_in_browser=True", f"--LabApp.workspaces_dir={self._workspaces()}"]
        if os.geteuid() == 0:
            argv.append("--allow-root")
        self.server = net.Server(argv, ready_path="/api", log=OUT_DIR / "jupyterlab.log", timeout=timeout)
        self.url = self.server.url

    @staticmethod
    def _workspaces() -> Path:
        """A workspaces folder of the test's own, holding a copy of the default workspace `make lab` uses."""
        folder = OUT_DIR / "workspaces"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        shutil.copy(DEFAULT_WORKSPACE, folder / "default-37a8.jupyterlab-workspace")
        return folder

    def address(self, path: str, **query: str) -> str:
        """A URL of this Lab with the token (and any extra query parameters)."""
        parameters = "&".join(f"{key.replace('_', '-')}={value}" for key, value in query.items())
        return f"{self.url}{path}?token={self.token}" + (f"&{parameters}" if parameters else "")

    def stop(self) -> None:
        """Stop the server by its process id; on SIGTERM it shuts its kernels down first."""
        self.server.stop(timeout=30)

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class NotebookRun:
    """What happened when a notebook was run in the browser."""

    name: str
    seconds: float
    code_cells: int
    errors: list[str] = field(default_factory=list)
    images_expected: int = 0
    images_rendered: int = 0
    widgets: int = 0
    widget_answered: bool | None = None
    screenshot: str = ""
    mode: str = "Run All"


_KERNEL_IDLE = """() => {
  const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const kernel = panel && panel.sessionContext && panel.sessionContext.session && panel.sessionContext.session.kernel;
  return !!kernel && kernel.status === 'idle';
}"""

_ALL_RUN = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  const cells = panel.content.widgets.filter(c => c.model.type === 'code');
  return panel.sessionContext.session.kernel.status === 'idle'
    && cells.every(c => c.model.executionCount !== null || c.model.sharedModel.getSource().trim() === '');
}"""

_REPORT = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  return panel.content.widgets.filter(c => c.model.type === 'code').map((c, index) => ({
    index,
    tags: c.model.getMetadata('tags') || [],
    errors: c.model.outputs.toJSON().filter(o => o.output_type === 'error').map(o => o.ename + ': ' + o.evalue),
    images: c.model.outputs.toJSON().filter(o => o.data && o.data['image/png']).length,
    rendered: c.node.querySelectorAll('.jp-OutputArea-output img').length,
  }));
}"""


_OPEN = """async (path) => {
  const app = window.jupyterapp;
  const panel = await app.commands.execute('docmanager:open', {path, factory: 'Notebook'});
  app.shell.activateById(panel.id);
  await panel.context.ready;
  return panel.id;
}"""


def open_lab(page: Any, lab: Lab, path: str, timeout_s: float = 120) -> None:
    """Open a notebook (``path`` under the repository) in Lab and wait until its kernel is idle.

    The first time, Lab is loaded in a workspace of its own that starts empty (so no earlier tab comes back);
    after that the notebook is opened in the same Lab, as a student opens one from the file browser, which
    spares reloading the whole application for every notebook."""
    if page.evaluate("() => !!(window.jupyterapp && window.jupyterapp.started)") is not True:
        page.goto(lab.address("/lab/workspaces/runs", reset="true"), wait_until="domcontentloaded")
        page.wait_for_function("() => !!window.jupyterapp", timeout=timeout_s * 1000, polling=250)
        page.evaluate("window.jupyterapp.restored")
    page.evaluate(_OPEN, path)
    page.wait_for_function(_KERNEL_IDLE, timeout=timeout_s * 1000, polling=250)


_RUN_SELF_CHECK = """async () => {
  const panel = window.jupyterapp.shell.currentWidget;
  await panel.sessionContext.session.kernel.requestExecute({code: 'from helpers import quiz', silent: true}).done;
  const cells = panel.content.widgets;
  const wanted = cells.map((c, i) => [c, i]).filter(([c]) => c.model.type === 'code'
    && c.model.sharedModel.getSource().includes('quiz.self_check('));
  for (const [cell, index] of wanted) {
    panel.content.activeCellIndex = index;
    await window.jupyterapp.commands.execute('notebook:run-cell');
  }
  return wanted.length;
}"""

_SELF_CHECK_DONE = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  return panel.sessionContext.session.kernel.status === 'idle' && panel.content.widgets.some(c =>
    c.model.type === 'code' && c.model.sharedModel.getSource().includes('quiz.self_check(')
    && c.node.querySelector('.widget-toggle-buttons') !== null);
}"""


def run_notebook(page: Any, lab: Lab, name: str, screenshots: Path = OUT_DIR, timeout_s: float = 600,
                 executed: Path | None = None) -> NotebookRun:
    """Clear, Run All and inspect one notebook (``name`` in notebooks/) in the browser.

    With ``executed`` (this suite's executed copy of it, inside the repository), open that copy instead:
    its outputs are the ones nbval's run produced and compared a moment ago. Only its self-check cells run
    here, live, so that the widgets can be clicked.
    """
    started = time.monotonic()
    if executed is None:
        open_lab(page, lab, f"notebooks/{name}")
        page.evaluate("window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs')")
        started = time.monotonic()
        page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        page.wait_for_function(_ALL_RUN, timeout=timeout_s * 1000, polling=250)
        mode = "Run All"
    else:
        open_lab(page, lab, executed.relative_to(catalog.ROOT).as_posix())
        if page.evaluate(_RUN_SELF_CHECK):
            page.wait_for_function(_SELF_CHECK_DONE, timeout=timeout_s * 1000, polling=250)
        mode = "outputs of the nbval run; self-check run live"
    seconds = time.monotonic() - started
    page.wait_for_timeout(500)  # let the last outputs render
    cells = page.evaluate(_REPORT)
    run = NotebookRun(name, round(seconds, 2), len(cells), mode=mode)
    for cell in cells:
        if cell["errors"] and "raises-exception" not in cell["tags"]:
            run.errors += [f"cell {cell['index']}: {error}" for error in cell["errors"]]
        run.images_expected += cell["images"]
        run.images_rendered += min(cell["rendered"], cell["images"])
    notebook = page.locator(f"#{page.evaluate('window.jupyterapp.shell.currentWidget.id')}")
    buttons = notebook.locator(".widget-toggle-buttons button")
    run.widgets = notebook.locator(".widget-toggle-buttons").count()
    if run.widgets:
        before = notebook.locator(".widget-html-content").all_inner_texts()
        buttons.first.click()
        page.wait_for_timeout(500)
        after = notebook.locator(".widget-html-content").all_inner_texts()
        run.widget_answered = any(("✓" in text or "✗" in text) for text in after if text not in before)
    screenshots.mkdir(parents=True, exist_ok=True)
    shot = screenshots / f"{Path(name).stem}.png"
    page.screenshot(path=str(shot), full_page=True)
    run.screenshot = str(shot.relative_to(catalog.ROOT)) if shot.is_relative_to(catalog.ROOT) else str(shot)
    close_notebook(page)
    return run


def close_notebook(page: Any) -> None:
    """Shut the open notebook's kernel down and close it without saving (the commands for this would open a
    confirmation dialog, which would wait for a click forever)."""
    page.evaluate("""async () => {
      const panel = window.jupyterapp.shell.currentWidget;
      await panel.sessionContext.shutdown();
      panel.context.model.dirty = false;
      panel.dispose();
    }""")


def launch(playwright: Any) -> Any:
    """The distribution's Chromium, headless, with the flags this kind of machine needs."""
    executable = chromium_path()
    if executable is None:
        raise RuntimeError("no Chromium installed (apt-get install chromium); no browser is downloaded")
    return playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)


def run_all(names: list[str], out: Path = OUT_DIR) -> list[NotebookRun]:
    """Run every named notebook in one Lab and one browser, with a line of progress per notebook."""
    from playwright.sync_api import sync_playwright

    results = []
    with Lab() as lab, sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            for number, name in enumerate(names, 1):
                print(f"[{number}/{len(names)}] {name} ...", end=" ", flush=True, file=sys.stderr)
                results.append(run_notebook(page, lab, name, out))
                print(f"{results[-1].seconds:.1f} s", file=sys.stderr)
        finally:
            browser.close()
    (out / "runs.json").write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description="Run notebooks in JupyterLab in Chromium and time Run All.")
    parser.add_argument("notebooks", nargs="*", help="notebook file names (default: all)")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="where screenshots and runs.json go")
    args = parser.parse_args()
    names = args.notebooks or [notebook.path.name for notebook in catalog.notebooks()]
    results = run_all(names, args.out)
    print(f"{'notebook':45} {'Run All (s)':>11}  errors  plots")
    for run in results:
        print(f"{run.name:45} {run.seconds:11.1f}  {len(run.errors):6}  {run.images_rendered}/{run.images_expected}")


if __name__ == "__main__":
    main()
