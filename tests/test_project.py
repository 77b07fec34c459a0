"""The project's own files agree with each other: one dependency list, the documented commands exist."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import yaml  # comes with JupyterLab (jupyter-events)

ROOT = Path(__file__).resolve().parent.parent


def test_environment_yml_installs_the_project_and_lists_nothing_else():
    spec = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = [dep for dep in spec["dependencies"] if isinstance(dep, str)]
    pip = [dep for dep in spec["dependencies"] if isinstance(dep, dict)]
    assert [dep for dep in conda if dep.split("=")[0] not in {"python", "pip"}] == [], "list dependencies in pyproject"
    assert pip == [{"pip": ["-e .[dev]"]}]


def test_every_dependency_says_why_it_is_there():
    lines = (ROOT / "pyproject.toml").read_text().splitlines()
    deps = [line for line in lines if re.match(r'\s+"[a-zA-Z][\w.\-\[\]]*[<>=]', line)]
    assert deps and all("#" in line for line in deps)
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[<>=\[]", d)[0] for d in meta["dependencies"] + meta["optional-dependencies"]["dev"]}
    assert {"jupyterlab", "boto3", "moto", "docker", "matplotlib", "nbval", "fastapi"} <= names


def test_readme_shows_the_two_commands_and_ci_runs_exactly_the_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make lab" in readme and "make test" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^\s*(exec\s+)?make test\b", ci, flags=re.M)
    makefile = (ROOT / "Makefile").read_text()
    for target in ("lab", "test", "execute"):
        assert re.search(rf"^{target}:", makefile, flags=re.M), target


def test_shell_scripts_parse():
    for script in (ROOT / "scripts" / "system.sh", ROOT / ".ci" / "run"):
        subprocess.run(["bash", "-n", str(script)], check=True)


def test_the_readme_lists_every_erratum_box_of_the_notebooks_and_no_other():
    """Each "Erratum (course notes, lecture N)" box is one row of the README's errata table, with its lecture."""
    from helpers import catalog

    box = re.compile(r"> \*\*Erratum \(course notes, lecture (\d)\):\*\*")
    boxes = []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for text in catalog.sources(path, "markdown"):
            boxes += [(lecture, path.name) for lecture in box.findall(text)]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Errata of the course notes", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in table.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("| ") and cells[0].isdigit():
            rows.append((cells[0], cells[-1].strip("`")))
    assert boxes, "no erratum box found in the notebooks"
    assert sorted(rows) == sorted(boxes)
