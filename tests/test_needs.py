"""Tests ask for what they need the way notebooks do, and a missing need skips them (fails in strict mode).

- Each test that uses a machine feature declares it, ``@pytest.mark.needs("docker", ...)`` with names from
  ``helpers.env.PROBES``; the suite's plugin asks the same probes the notebooks ask. A static check maps the
  calls that use each feature to its name, so that a new test that forgets its need is caught here.
- With each need removed (``CLOUDNOTES_WITHOUT=name``), every test that declares it is skipped with a reason
  that names it.
- As root, the unit tests run once more as an ordinary user (uid 65534, no groups, a venv made by the
  distribution's /usr/bin/python3): no root, no access to the Docker socket or to /dev/kvm. They must pass,
  skipping what that user lacks, with the reasons.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from helpers import catalog, env
from helpers.pytest_rules import lacking

TESTS = Path(__file__).resolve().parent
# A call in a test (or in a fixture it uses) that cannot work without the feature.
USES = {
    "docker": r"docker\.from_env\(|\.containers\.run\(|busybox_image\(|images\.build\(",
    "cgroups": r"\bCgroup\(",
    "kvm-ioctl": r"kvm\.run_script\(",
    "qemu": r"\bqemu\.boot\(",
    "busybox": r"busybox_rootfs\(|prepare_guest\(\)",
    "namespaces": r"private_mounts_without_unified|\bunshare\b",
    "root": r"delayed_link\(|\bchroot\b",
    "binfmt": r"ForeignBinaries\(",
    "registry": r"registry\.Registry\(|start_registry\(",
    "chromium": r"browser\.launch\(|sync_playwright",
}
# A test that fakes the feature (monkeypatch, a fake_* fixture) or checks that the call is refused before it
# touches the machine needs nothing from it.
FAKES = r"monkeypatch\.setattr|\bfake_\w+|pytest\.raises"


def _declared(node: ast.AST, marks: dict[str, set[str]]) -> set[str]:
    """The needs named by a function's decorators (``@pytest.mark.needs(...)`` or a module-level alias)."""
    found = set()
    for decorator in getattr(node, "decorator_list", []):
        text = ast.unparse(decorator)
        found |= marks.get(text, set())
        if "mark.needs(" in text:
            found |= {arg.value for arg in decorator.args if isinstance(arg, ast.Constant)}
    return found


def _module_marks(tree: ast.Module) -> tuple[dict[str, set[str]], set[str]]:
    """Module-level ``name = pytest.mark.needs(...)`` aliases, and the needs of ``pytestmark``."""
    marks: dict[str, set[str]] = {}
    for statement in tree.body:
        if isinstance(statement, ast.Assign) and isinstance(statement.value, ast.Call):
            if ast.unparse(statement.value.func).endswith("mark.needs"):
                names = {arg.value for arg in statement.value.args if isinstance(arg, ast.Constant)}
                for target in statement.targets:
                    marks[ast.unparse(target)] = names
    return marks, marks.get("pytestmark", set())


def _source_with_fixtures(node: ast.FunctionDef, fixtures: dict[str, ast.FunctionDef], seen: set[str]) -> str:
    """A test's source and that of the module's fixtures it uses, directly or through other fixtures."""
    text = ast.unparse(node)
    for arg in node.args.args:
        if arg.arg in fixtures and arg.arg not in seen:
            seen.add(arg.arg)
            text += _source_with_fixtures(fixtures[arg.arg], fixtures, seen)
    return text


def _scan() -> tuple[list[str], dict[str, list[str]]]:
    """Tests that use a feature without declaring it, and every declared need with the tests declaring it."""
    problems: list[str] = []
    declared_by: dict[str, list[str]] = {}
    for path in sorted(TESTS.glob("test_*.py")):
        if path.name == Path(__file__).name:
            continue
        tree = ast.parse(path.read_text())
        marks, everywhere = _module_marks(tree)
        functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
        fixtures = {name: node for name, node in functions.items()
                    if any("fixture" in ast.unparse(d) for d in node.decorator_list)}

        for name, node in functions.items():
            if not name.startswith("test_"):
                continue
            declared = everywhere | _declared(node, marks)
            for fixture in (arg.arg for arg in node.args.args if arg.arg in fixtures):
                declared |= _declared(fixtures[fixture], marks)
            for need in declared:
                declared_by.setdefault(need, []).append(f"{path.name}::{name}")
            text = _source_with_fixtures(node, fixtures, set())
            if re.search(FAKES, text):
                continue
            for need, pattern in USES.items():
                if re.search(pattern, text) and need not in declared:
                    problems.append(f"{path.name}::{name} uses {need} without @pytest.mark.needs({need!r})")
    return problems, declared_by


def _forgotten_needs() -> list[str]:
    return _scan()[0]


def test_every_test_that_uses_a_machine_feature_declares_it():
    assert _forgotten_needs() == []


def test_the_static_check_notices_a_forgotten_need(tmp_path, monkeypatch):
    (tmp_path / "test_forgetful.py").write_text("def test_x():\n    import docker\n    docker.from_env().ping()\n")
    monkeypatch.setattr(sys.modules[__name__], "TESTS", tmp_path)
    assert _forgotten_needs() == ["test_forgetful.py::test_x uses docker without @pytest.mark.needs('docker')"]


def test_with_each_need_removed_every_test_that_declares_it_is_skipped_naming_it(monkeypatch):
    declared = _scan()[1]
    assert set(declared) <= set(env.PROBES), set(declared) - set(env.PROBES)
    assert {"docker", "root", "kvm-ioctl", "qemu", "cgroups", "busybox", "binfmt", "chromium"} <= set(declared)
    for need in sorted(declared):
        monkeypatch.setenv(env.WITHOUT_VARIABLE, need)
        assert lacking((need,)).startswith(f"{need} (treated as absent"), need
        monkeypatch.setenv(env.WITHOUT_VARIABLE, "all")
        assert f"{need} (" in lacking(("linux", need)), need


def _venv_for_everyone(folder: Path) -> Path:
    """A venv of the locked packages made by the distribution's /usr/bin/python3 (as an ordinary user's own
    clone would have with ``make setup PYTHON=/usr/bin/python3``), readable by every user; its python."""
    uv = catalog.ROOT / "build" / "uv" / "bin" / "uv"
    lock = catalog.ROOT / "requirements-lock.txt"
    venv = folder / "venv"
    if uv.exists():
        subprocess.run([str(uv), "venv", "--quiet", "--python", "/usr/bin/python3", str(venv)], check=True)
        subprocess.run([str(uv), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), "--no-deps",
                        "-r", str(lock)], check=True, timeout=600)
    else:
        subprocess.run(["/usr/bin/python3", "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-deps", "-r", str(lock)],
                       check=True, timeout=900)
    return venv / "bin" / "python"


@pytest.mark.needs("linux", "root")
def test_as_an_ordinary_user_the_unit_tests_pass_and_skip_what_that_user_lacks():
    """The unit tests (not the notebooks, the browser or the nested-pytest tests, which take minutes) as uid
    65534 with no groups, on a venv made by /usr/bin/python3: root, the Docker socket and /dev/kvm are really
    out of reach, and every test that needs them must skip, saying so."""
    if shutil.which("setpriv") is None or not os.access("/usr/bin/python3", os.X_OK):
        pytest.skip("needs setpriv (util-linux) and the distribution's /usr/bin/python3")
    folder = Path(tempfile.mkdtemp(prefix="venv-for-everyone-"))  # pytest's own tmp_path is root's alone
    os.chmod(folder, 0o755)
    try:
        _run_as_an_ordinary_user(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _clone_for_everyone(folder: Path) -> Path:
    """The repository copied into ``folder`` and owned by uid 65534, as that user's own clone would be: this
    checkout may sit in a folder only root can enter (``mktemp -d`` makes them 0700). No venv, build or git."""
    clone = folder / "clone"
    shutil.copytree(catalog.ROOT, clone, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "__pycache__", ".ipynb_checkpoints", ".pytest_cache", ".ruff_cache"))
    for path in [clone, *clone.rglob("*")]:
        os.chown(path, 65534, 65534, follow_symlinks=False)
    return clone


def _run_as_an_ordinary_user(folder: Path) -> None:
    python = _venv_for_everyone(folder)
    clone = _clone_for_everyone(folder)
    tests = clone / TESTS.relative_to(catalog.ROOT)
    home = folder / "home"
    home.mkdir()
    os.chown(home, 65534, 65534)
    environment = {key: value for key, value in os.environ.items()
                   if key not in (env.STRICT_VARIABLE, env.WITHOUT_VARIABLE, "CLOUDNOTES_CACHE", "VIRTUAL_ENV")}
    environment |= {"HOME": str(home), "TMPDIR": str(home), "CLOUDNOTES_EXECUTED": str(home / "executed"),
                    "PYTHONPATH": str(clone)}
    left_out = ["test_browser.py", "test_machine_state.py", "test_without.py", "test_pytest_rules.py",
                Path(__file__).name]
    # `make lab` would first make a whole .venv in the copy (minutes); `make test` as root covers it
    not_here = "test_commands.py::test_make_lab_serves_jupyterlab_on_loopback_with_a_token"
    done = subprocess.run(
        ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", str(python), "-m", "pytest",
         "-p", "no:cacheprovider", "-q", "-rs", str(tests), *(f"--ignore={tests / name}" for name in left_out),
         f"--deselect={(tests / not_here).relative_to(clone)}"],
        cwd=clone, env=environment, capture_output=True, text=True, timeout=900, check=False)
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-2000:]
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert re.search(r"\d+ passed, \d+ skipped", summary), summary
    reasons = "\n".join(line for line in done.stdout.splitlines() if line.startswith("SKIPPED"))
    for need in ("root", "docker", "kvm-ioctl"):
        assert re.search(rf"needs what this machine lacks: (.*; )?{need} \(", reasons), (need, reasons)
