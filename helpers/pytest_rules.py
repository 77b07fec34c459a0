"""A pytest plugin with the suite's rules for notebooks run under nbval (loaded by the root conftest.py).

- A notebook whose ``requires`` (its metadata) are not met on this machine is skipped, with the reason; so is
  a test marked ``@pytest.mark.needs("docker", "root", ...)`` (names from :data:`helpers.env.PROBES`): tests
  and notebooks ask the same probes, so they never disagree about what the machine offers.
- In strict mode (``CLOUDNOTES_STRICT=1``, as in CI) nothing may be skipped: a missing need, or any other
  skip, is reported as a failure.
- A notebook must leave nothing behind: what exists after its kernel has stopped is compared with what
  existed before it started (see :mod:`helpers.leftovers`), and anything new is an error. Only what the
  notebook can have made is looked at: the test run's own process tree (it adopts orphaned descendants,
  so a server the kernel left running is still seen), Docker objects with the collection's label, and
  scratch folders in the run's own temporary folder (``TMPDIR`` is set to one for the whole run, so that
  kernels, servers and tests make their scratch folders there, not beside other work's in /tmp).
- What each notebook printed in this run is kept as an executed copy (:mod:`helpers.executed`), and the
  browser test runs after the notebooks, so that it can open those copies instead of running a slow
  notebook a second time.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from helpers import catalog, env, executed, leftovers


def _notebook(item: pytest.Item | None) -> Path | None:
    if item is None:
        return None
    path = Path(str(item.path))
    return path if path.suffix == ".ipynb" else None


_recorder = executed.Recorder()


_run_tmp: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "needs(*features): skip (fail in strict mode) unless helpers.env finds them")
    leftovers.adopt_orphans()
    if config.getoption("nbval", default=False):
        executed.clear()
    folder = tempfile.mkdtemp(prefix="notebook-run-")
    os.chmod(folder, 0o755)  # a test that runs something as another user makes its folder inside
    _run_tmp.append(folder)
    os.environ["TMPDIR"] = folder
    tempfile.tempdir = None  # computed again from TMPDIR


def pytest_unconfigure(config: pytest.Config) -> None:
    for folder in _run_tmp:
        shutil.rmtree(folder, ignore_errors=True)


def lacking(needs: tuple[str, ...] | list[str]) -> str:
    """What of ``needs`` this machine lacks, as '<name> (<why>); ...', or '' when it has everything."""
    return "; ".join(f"{check.name} ({check.detail})" for check in env.missing(tuple(needs)))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    absent: dict[Path, str] = {}
    asked: dict[tuple[str, ...], str] = {}
    for item in items:
        needs = tuple(name for mark in item.iter_markers("needs") for name in mark.args)
        if needs:
            unknown = set(needs) - set(env.PROBES)
            if unknown:
                raise pytest.UsageError(f"{item.nodeid}: needs names unknown features {sorted(unknown)}")
            if needs not in asked:
                asked[needs] = lacking(needs)
            if asked[needs]:
                item.add_marker(pytest.mark.skip(reason=f"needs what this machine lacks: {asked[needs]}"))
        path = _notebook(item)
        if path is None:
            continue
        if path not in absent:
            absent[path] = lacking(catalog.read(path).requires)
        if absent[path]:
            item.add_marker(pytest.mark.skip(reason=f"{path.name} needs what this machine lacks: {absent[path]}"))
    # The browser test last: it opens the executed copies that the notebooks' own run leaves.
    items.sort(key=lambda item: Path(str(item.path)).name == "test_browser.py")


_before: dict[Path, leftovers.Snapshot] = {}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> object:
    path = _notebook(item)
    if path is not None and path not in _before and not item.get_closest_marker("skip"):
        # before nbval starts the notebook's kernel, and only what a notebook with its needs can change
        _before[path] = leftovers.judged_on(leftovers.snapshot(), catalog.read(path).requires)
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> object:
    result = yield  # the last cell's teardown also stops the notebook's kernel
    path = _notebook(item)
    if path is not None and _notebook(nextitem) != path and hasattr(item, "parent") and hasattr(item.parent, "nb"):
        _recorder.finish(path, item.parent.nb)
    if path is not None and path in _before and _notebook(nextitem) != path:
        leftovers.reap_adopted()
        left = leftovers.new_since(_before.pop(path), settle=5.0)
        if left:
            found = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in left.items())
            raise AssertionError(f"{path.name} left things behind after its kernel stopped: {found}")
    return result


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    outcome = yield
    report = outcome.get_result()
    path = _notebook(item)
    if path is not None and report.when == "call" and hasattr(item, "cell_num"):
        _recorder.cell(path, item.cell_num, getattr(item, "test_outputs", None), report.duration, report.passed)
    if env.strict() and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"strict mode ({env.STRICT_VARIABLE}=1) allows no skips: {reason}"
