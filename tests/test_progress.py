"""helpers.progress: answers kept across processes, safe when two write at once or the file is damaged,
scheduled with FSRS; and the Anki deck and exam sheet written from the question bank."""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from helpers import progress, quiz

ROOT = Path(__file__).resolve().parent.parent
T0 = dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def file(tmp_path, monkeypatch):
    target = tmp_path / "progress.jsonl"
    monkeypatch.setenv(progress.VARIABLE, str(target))
    return target


def test_the_file_lives_outside_the_repository_by_default(monkeypatch):
    monkeypatch.delenv(progress.VARIABLE, raising=False)
    default = progress.path()
    assert default.name == "progress.jsonl" and ROOT not in default.parents


def test_every_way_of_answering_is_kept_and_survives_a_new_python_process(file):
    bank_single = next(q for q in quiz.bank(2) if q.type == "single")
    quiz.check(bank_single.id, bank_single.answer)
    session = quiz.Session()
    session.check(bank_single.id, next(o for o in bank_single.options if o != bank_single.answer))
    written = quiz.written(3)[0]
    quiz.grade(written.id, "hard")
    code = ("from helpers import progress; "
            "print([(a.question, a.correct, a.rating, a.source) for a in progress.answers()])")
    seen = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert seen.strip() == str([(bank_single.id, True, "good", "check"),
                                (bank_single.id, False, "again", "session"),
                                (written.id, True, "hard", "self-grade")])
    assert all(json.loads(line)["at"] for line in file.read_text().splitlines())  # one readable record per line


def _answer_many(target: str, name: str, count: int) -> None:
    for i in range(count):
        progress.record(f"l1-{name}-{i}", correct=i % 2 == 0, file=Path(target))


def test_two_processes_answering_at_once_lose_nothing(file):
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_answer_many, args=(str(file), name, 300)) for name in ("a", "b")]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    kept = progress.answers(file)
    assert len(kept) == 600 and len({a.question for a in kept}) == 600


def test_a_corrupt_file_is_kept_aside_reported_and_replaced(file):
    progress.record("l1-cloud-definition", correct=True, at=T0)
    with file.open("a") as damaged:
        damaged.write('{"at": "2026-11-20T10:00:00+00:00", "question": "l1-x", "correct": "yes"}\n')
    before = file.read_bytes()
    with pytest.warns(progress.ProgressWarning, match="could not be read.*kept as .*corrupt-"):
        assert progress.answers() == []
    (aside,) = file.parent.glob("progress.jsonl.corrupt-*")
    assert aside.read_bytes() == before and not file.exists()
    progress.record("l1-cloud-definition", correct=False)
    assert [a.correct for a in progress.answers()] == [False]


def test_forget_asks_first_and_keeps_the_old_file(file, monkeypatch):
    progress.record("l1-cloud-definition", correct=True)
    monkeypatch.setattr("builtins.input", lambda prompt: "no")
    assert progress.forget() == "kept: nothing was forgotten" and len(progress.answers()) == 1
    monkeypatch.setattr("builtins.input", lambda prompt: "yes")
    assert quiz.forget().startswith("forgot 1 answers") and progress.answers() == []
    assert len(list(file.parent.glob("progress.jsonl.forgotten-*"))) == 1


def test_a_right_answer_pushes_the_review_out_and_a_wrong_one_brings_it_back(file):
    question = "l2-explicit-deny-wins"
    progress.record(question, correct=True, at=T0)
    first = progress.cards(progress.answers())[question].due
    progress.record(question, correct=True, at=first)
    second = progress.cards(progress.answers())[question].due
    progress.record(question, correct=False, at=second)
    third = progress.cards(progress.answers())[question].due
    assert first - T0 < second - first  # each right answer: a longer wait
    assert third - second < dt.timedelta(hours=1)  # a wrong one: back within the hour
    plan = progress.plan(now=second + dt.timedelta(minutes=30))
    assert plan.due[0].id == question and question not in {q.id for q in plan.new}


def test_the_plan_puts_due_questions_first_then_new_ones_and_counts_the_days_left(file):
    progress.set_midterm("2026-12-10")
    for lecture_question in ("l1-saas-example", "l3-docker-ps"):
        progress.record(lecture_question, correct=False, at=T0)
    plan = progress.plan(now=T0 + dt.timedelta(days=1))
    assert [q.id for q in plan.queue(4)][:2] == ["l1-saas-example", "l3-docker-ps"]
    assert {q.lecture for q in plan.queue(6)[2:]} == set(quiz.lectures())  # new ones from every lecture
    assert plan.days_left == 19 and plan.due_per_lecture() == {1: 1, 2: 0, 3: 1, 4: 0}
    assert len(plan.new) == len(quiz.bank()) + len(quiz.written()) - 2
    assert plan.sections and all(0 <= s[2] <= 1 for s in plan.sections)


def test_the_anki_deck_has_one_note_per_bank_question_with_stable_ids(tmp_path):
    bank = quiz.bank() + quiz.written()

    def notes(out: Path) -> list[tuple[str, str, str]]:
        done = subprocess.run([sys.executable, "-m", "helpers.quiz", "anki", str(out)], capture_output=True,
                              text=True, check=True, cwd=ROOT)
        assert f"wrote {len(bank)} notes" in done.stdout
        with zipfile.ZipFile(out) as package:  # an .apkg is a zip holding a SQLite database
            package.extract("collection.anki2", tmp_path / out.stem)
        with sqlite3.connect(tmp_path / out.stem / "collection.anki2") as collection:
            return collection.execute("select guid, flds, tags from notes order by guid").fetchall()

    first, again = notes(tmp_path / "one.apkg"), notes(tmp_path / "two.apkg")
    assert len(first) == len(bank) and len({guid for guid, _, _ in first}) == len(bank)
    assert [guid for guid, _, _ in first] == [guid for guid, _, _ in again]  # re-import updates, never duplicates
    fields = {flds.split("\x1f")[0]: (flds.split("\x1f"), tags) for _, flds, tags in first}
    assert set(fields) == {q.id for q in bank}
    single = next(q for q in bank if q.type == "single")
    (_, front, answer, explanation, section), tags = fields[single.id]
    assert all(option in front for option in single.options) and answer == single.answer
    assert f"cloudnotes::lecture-{single.lecture}" in tags and single.heading in section


def test_the_exam_sheet_holds_every_comparison_table_of_the_review(tmp_path):
    from helpers import exports

    out = tmp_path / "sheet.html"
    count = exports.exam_sheet(out)
    page = out.read_text()
    tables = exports._tables(exports.REVIEW)
    assert count == len(tables) >= 4 and page.count("<table>") == count
    assert page.count("<h2>") == len({heading for heading, _ in tables})  # one section per heading
    assert all(f"<h2>{heading}</h2>" in page for heading, _ in tables if "&" not in heading)


def test_mastery_day_by_day_rises_after_right_answers_per_lecture_and_per_section(file):
    question = quiz.question("l2-explicit-deny-wins")
    progress.record(question.id, correct=True, at=T0)
    days = [T0.date() - dt.timedelta(days=1), T0.date()]
    lectures = progress.known_per_day(days=days)
    sections = progress.known_per_day(days=days, by="section")
    assert set(lectures) == set(quiz.lectures()) and lectures[2][0] == 0 < lectures[2][1] and lectures[1] == [0, 0]
    assert list(sections) == [question.link] and sections[question.link][0] == 0 < sections[question.link][1]
    with pytest.raises(ValueError, match="lecture' or 'section"):
        progress.known_per_day(days=days, by="notebook")
