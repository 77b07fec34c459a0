"""A pytest plugin: the suite's rules for notebooks run under nbval (loaded by the root conftest.py).

- A notebook whose ``requires`` (its metadata) are not met on this machine is skipped, with the reason.
- In strict mode (``CLOUDNOTES_STRICT=1``, as in CI) nothing may be skipped: a missing need, or any other
  skip, is reported as a failure.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import catalog, env


def _missing_for(notebook: Path, cache: dict[Path, str]) -> str:
    if notebook not in cache:
        needs = catalog.read(notebook).requires
        cache[notebook] = "; ".join(f"{c.name} ({c.detail})" for c in env.missing(needs))
    return cache[notebook]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    cache: dict[Path, str] = {}
    for item in items:
        path = Path(str(item.path))
        if path.suffix != ".ipynb":
            continue
        absent = _missing_for(path, cache)
        if absent:
            item.add_marker(pytest.mark.skip(reason=f"{path.name} needs what this machine lacks: {absent}"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    outcome = yield
    report = outcome.get_result()
    if env.strict() and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"strict mode ({env.STRICT_VARIABLE}=1) allows no skips: {reason}"
