"""helpers.env: probes answer for this machine, need() explains or raises, report() renders."""

from __future__ import annotations

import sys

import pytest

from helpers import env


def test_every_feature_has_a_probe_a_description_and_advice_for_three_systems():
    assert set(env.PROBES) == set(env.DESCRIPTIONS) == set(env.HOW_TO_GET)
    for name, advice in env.HOW_TO_GET.items():
        assert set(advice) == {"Linux", "macOS", "Windows"}, name


def test_each_probe_returns_a_check_with_a_reason():
    for name in env.PROBES:
        check = env.probe(name)
        assert check.name == name and isinstance(check.ok, bool) and check.detail


def test_unknown_feature_is_refused():
    with pytest.raises(ValueError, match="unknown feature 'gpu'"):
        env.probe("gpu")


def test_need_explains_what_is_missing_and_returns_false(monkeypatch, capsys):
    monkeypatch.delenv(env.STRICT_VARIABLE, raising=False)
    monkeypatch.delenv(env.WITHOUT_VARIABLE, raising=False)  # the probe below decides, not a hidden feature
    monkeypatch.setitem(env.PROBES, "docker", lambda: env.Check("docker", False, "no Docker engine answers"))
    assert env.need("docker") is False
    text = capsys.readouterr().out
    assert "a running Docker engine" in text and "no Docker engine answers" in text
    assert all(system in text for system in ("Linux:", "macOS:", "Windows:"))


def test_need_raises_in_strict_mode(monkeypatch):
    monkeypatch.setenv(env.STRICT_VARIABLE, "1")
    monkeypatch.delenv(env.WITHOUT_VARIABLE, raising=False)
    monkeypatch.setitem(env.PROBES, "qemu", lambda: env.Check("qemu", False, "not installed"))
    with pytest.raises(env.MissingFeature, match="qemu: not installed"):
        env.need("qemu")


def test_need_is_silent_when_everything_is_there(monkeypatch, capsys):
    monkeypatch.delenv(env.WITHOUT_VARIABLE, raising=False)
    monkeypatch.setitem(env.PROBES, "root", lambda: env.Check("root", True, "running as root"))
    assert env.need("root") is True
    assert capsys.readouterr().out == ""


def test_report_lists_every_feature():
    table = env.report()
    assert table.column("name") == list(env.PROBES)
    assert set(table.column("available")) <= {"yes", "no"}


def test_static_elf_detection_tells_static_from_dynamic():
    assert env.is_static_elf(sys.executable) is False  # CPython is dynamically linked
    assert env.is_static_elf(__file__) is False  # not an ELF file at all


@pytest.mark.needs("busybox")
def test_static_busybox_is_detected():
    assert env.is_static_elf("/bin/busybox")


def test_cgroup_version_is_one_of_the_known_answers():
    assert env.cgroup_version() in {"v1", "v2", "none"}
