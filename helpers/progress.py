"""A review that remembers: every answer kept in a progress file, and what to review next, scheduled with FSRS.

Every answer given anywhere (a widget click, ``quiz.check``, a ``quiz.Session``, the self-grade of a written
question with ``quiz.grade``) is appended to a progress file **outside the repository**: the path in
``$CLOUDNOTES_PROGRESS`` when it is set, else ``progress.jsonl`` in the user's data folder
(``platformdirs.user_data_dir("cloudnotes")``, e.g. ``~/.local/share/cloudnotes`` on Linux). It is JSON lines,
one answer per line, readable with any text editor::

    {"at": "2026-11-30T09:12:03+00:00", "question": "l2-explicit-deny-wins", "lecture": 2, "correct": true,
     "rating": "good", "source": "check"}

plus ``{"at": ..., "midterm": "2026-12-15"}`` when a student sets the date of the exam.

Safety: an answer is one line written by a single ``write`` to a file opened for appending, under an
exclusive lock (``flock``), then flushed to the disk: two notebooks answering at once lose nothing. A line
that is not a record (a corrupt or foreign file) is never overwritten: the file is renamed aside
(``progress.jsonl.corrupt-YYYYmmdd-HHMMSS``), a warning says so, and a new file starts. ``forget()`` asks
first, and keeps the old file aside too.

Scheduling: each bank question is a card of the ``fsrs`` package (the FSRS algorithm, the scheduler Anki
uses). Its answers are replayed in order: a right answer rates it Good and pushes the next review out, a wrong
one rates it Again and brings it back within minutes; a written question gets the student's own rating
(Again, Hard, Good or Easy). :func:`plan` says what is due, what is new, how well each lecture and section is
known (the cards' recall probability) and how many days are left to the midterm.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import warnings
import zlib
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

VARIABLE = "CLOUDNOTES_PROGRESS"
RATINGS = ("again", "hard", "good", "easy")
SOURCES = ("widget", "check", "session", "self-grade", "demo")


class ProgressWarning(UserWarning):
    """The progress file could not be read or written as it was; the message says what was done instead."""


def path() -> Path:
    """Where answers are kept: ``$CLOUDNOTES_PROGRESS``, else ``progress.jsonl`` in the user's data folder."""
    chosen = os.environ.get(VARIABLE, "").strip()
    if chosen:
        return Path(chosen).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("cloudnotes", appauthor=False)) / "progress.jsonl"


@dataclass(frozen=True)
class Answer:
    at: dt.datetime
    question: str
    lecture: int
    correct: bool
    rating: str
    source: str

    def line(self) -> str:
        return json.dumps({"at": self.at.isoformat(), "question": self.question, "lecture": self.lecture,
                           "correct": self.correct, "rating": self.rating, "source": self.source}) + "\n"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _aware(when: dt.datetime) -> dt.datetime:
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _open_locked(file: Path, flags: int) -> int:
    """``os.open(file, flags)`` holding an exclusive lock on it, released when the descriptor is closed."""
    file.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(file, flags, 0o600)
    try:
        try:
            import fcntl

            fcntl.flock(descriptor, fcntl.LOCK_EX)
        except ImportError:  # Windows: lock the first byte instead
            import msvcrt

            msvcrt.locking(descriptor, msvcrt.LK_LOCK, 1)
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor


@contextmanager
def _locked(file: Path, flags: int):
    descriptor = _open_locked(file, flags)
    try:
        yield descriptor
    finally:
        os.close(descriptor)  # closing releases the lock


def _append(file: Path, text: str) -> None:
    with _locked(file, os.O_WRONLY | os.O_APPEND | os.O_CREAT) as descriptor:
        os.write(descriptor, text.encode("utf-8"))
        os.fsync(descriptor)


def record(question_id: str, *, correct: bool | None = None, rating: str | None = None, source: str = "check",
           lecture: int | None = None, at: dt.datetime | None = None, file: Path | None = None) -> Answer:
    """Append one answer. A checked answer gives ``correct`` (rated good or again); a self-graded written one
    gives ``rating`` (again, hard, good or easy; right unless again)."""
    if rating is None:
        if correct is None:
            raise ValueError("give correct= for a checked answer, or rating= for a self-graded one")
        rating = "good" if correct else "again"
    if rating not in RATINGS:
        raise ValueError(f"a rating is one of {', '.join(RATINGS)}, not {rating!r}")
    if source not in SOURCES:
        raise ValueError(f"source is one of {', '.join(SOURCES)}, not {source!r}")
    if lecture is None:
        lecture = _lecture_of(question_id)
    answer = Answer(_aware(at) if at else _now(), question_id, lecture,
                    rating != "again" if correct is None else bool(correct), rating, source)
    _append(file or path(), answer.line())
    return answer


def _lecture_of(question_id: str) -> int:
    """l2-... is lecture 2; n03.2-... is lecture 3."""
    digits = question_id[1:].split("-")[0].split(".")[0]
    return int(digits) if digits.isdigit() else 0


def set_midterm(day: dt.date | str, file: Path | None = None) -> dt.date:
    """Remember the date of the midterm (the plan counts the days left to it)."""
    day = dt.date.fromisoformat(day) if isinstance(day, str) else day
    _append(file or path(), json.dumps({"at": _now().isoformat(), "midterm": day.isoformat()}) + "\n")
    return day


def _parse(line: str) -> Answer | dt.date:
    data = json.loads(line)
    if set(data) == {"at", "midterm"}:
        return dt.date.fromisoformat(data["midterm"])
    if set(data) != {"at", "question", "lecture", "correct", "rating", "source"} or data["rating"] not in RATINGS:
        raise ValueError("not an answer record")
    if not isinstance(data["correct"], bool) or not isinstance(data["lecture"], int):
        raise ValueError("not an answer record")
    return Answer(_aware(dt.datetime.fromisoformat(data["at"])), str(data["question"]), data["lecture"],
                  data["correct"], data["rating"], str(data["source"]))


def _read(file: Path) -> list[Answer | dt.date]:
    """Every record in ``file``; a corrupt file is renamed aside (with a warning) and reads as empty."""
    if not file.exists():
        return []
    try:
        descriptor = _open_locked(file, os.O_RDWR)
    except OSError as error:
        warnings.warn(f"the progress file {file} cannot be opened ({error}): answers are not shown",
                      ProgressWarning, stacklevel=3)
        return []
    try:
        raw = b""
        while chunk := os.read(descriptor, 1 << 20):
            raw += chunk
        try:
            records = [_parse(line) for line in raw.decode("utf-8").splitlines() if line.strip()]
        except (ValueError, KeyError, TypeError) as error:
            stamp = _now().strftime("%Y%m%d-%H%M%S")
            aside = file.with_name(f"{file.name}.corrupt-{stamp}")
            file.rename(aside)  # under the lock: a writer waiting on the old file appends to the kept copy
            warnings.warn(f"the progress file {file} could not be read ({error}); it was kept as {aside} and a "
                          "new one starts now", ProgressWarning, stacklevel=3)
            return []
    finally:
        os.close(descriptor)
    return records


def answers(file: Path | None = None) -> list[Answer]:
    """Every answer recorded, oldest first."""
    found = [r for r in _read(file or path()) if isinstance(r, Answer)]
    return sorted(found, key=lambda a: a.at)


def midterm(file: Path | None = None) -> dt.date | None:
    """The midterm date last set, if any."""
    dates = [r for r in _read(file or path()) if isinstance(r, dt.date)]
    return dates[-1] if dates else None


def forget(file: Path | None = None, confirm: bool | None = None) -> str:
    """Start again from no answers, after asking (``confirm=True`` skips the question). The old file is kept
    aside, renamed ``...forgotten-STAMP``, never deleted."""
    file = file or path()
    if not file.exists():
        return f"nothing to forget: {file} does not exist"
    count = len(answers(file))
    if confirm is None:
        confirm = input(f"Forget all {count} answers in {file}? Type yes to confirm: ").strip().lower() == "yes"
    if not confirm:
        return "kept: nothing was forgotten"
    aside = file.with_name(f"{file.name}.forgotten-{_now().strftime('%Y%m%d-%H%M%S')}")
    file.rename(aside)
    return f"forgot {count} answers; the old file is kept as {aside}"


# --- scheduling ----------------------------------------------------------------------------------------


def _scheduler() -> Any:
    import fsrs

    return fsrs.Scheduler(enable_fuzzing=False)  # no random spread of due dates: the same answers, the same plan


def cards(history: Iterable[Answer], until: dt.datetime | None = None) -> dict[str, Any]:
    """Each answered question's FSRS card after replaying its answers (up to ``until``)."""
    import fsrs

    scheduler, found = _scheduler(), {}
    for answer in sorted(history, key=lambda a: a.at):
        if until is not None and answer.at > until:
            break
        card = found.get(answer.question) or fsrs.Card(card_id=zlib.crc32(answer.question.encode()),
                                                     due=answer.at)
        found[answer.question], _ = scheduler.review_card(card, fsrs.Rating[answer.rating.capitalize()],
                                                          review_datetime=answer.at)
    return found


def recall(card: Any, when: dt.datetime) -> float:
    """The probability that the student still recalls a card's answer at ``when`` (FSRS's retrievability)."""
    return float(_scheduler().get_card_retrievability(card, when))


@dataclass(frozen=True)
class Plan:
    now: dt.datetime
    due: list  # bank questions due now, most overdue first
    new: list  # bank questions never answered, spread over the lectures
    known: dict[int, float]  # lecture -> mean recall over its bank questions (never answered counts 0)
    sections: list[tuple[str, str, float, int]]  # (section link, title, mean recall, answered), weakest first
    midterm: dt.date | None
    cards: dict[str, Any]  # question id -> its FSRS card now (answered questions only)

    @property
    def days_left(self) -> int | None:
        return None if self.midterm is None else (self.midterm - self.now.date()).days

    def queue(self, count: int = 10) -> list:
        """Today's review: the due questions first, then new ones."""
        return [*self.due, *self.new][:count]

    def due_per_lecture(self) -> dict[int, int]:
        from helpers import quiz

        return {n: sum(q.lecture == n for q in self.due) for n in quiz.lectures()}


def plan(file: Path | None = None, now: dt.datetime | None = None) -> Plan:
    """What to review now, how well each lecture and section is known, and the days left to the midterm."""
    from helpers import quiz

    now = _aware(now) if now else _now()
    history = [a for a in answers(file) if a.at <= now]
    found = cards(history)
    bank = quiz.bank() + quiz.written()  # written questions too: they are self-graded
    due = sorted((q for q in bank if q.id in found and found[q.id].due <= now), key=lambda q: found[q.id].due)
    pools = {n: [q for q in bank if q.lecture == n and q.id not in found] for n in quiz.lectures()}
    new = []
    while any(pools.values()):
        for n in sorted(pools):
            if pools[n]:
                new.append(pools[n].pop(0))
    level = {q.id: recall(found[q.id], now) if q.id in found else 0.0 for q in bank}
    known = {n: _mean([level[q.id] for q in bank if q.lecture == n]) for n in quiz.lectures()}
    by_section: dict[str, list] = {}
    for q in bank:
        by_section.setdefault(q.link, []).append(q)
    sections = []
    for link, members in by_section.items():
        answered = sum(q.id in found for q in members)
        if answered:
            sections.append((link, f"{members[0].notebook[:4]} {members[0].heading}",
                             _mean([level[q.id] for q in members]), answered))
    sections.sort(key=lambda s: (s[2], s[0]))
    return Plan(now, due, new, known, sections, midterm(file), found)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def known_per_day(file: Path | None = None, days: Iterable[dt.date] = (),
                  by: str = "lecture") -> dict[Any, list[float]]:
    """The mean recall at the end of each of ``days``, per lecture (``by="lecture"``, keys 1 to 4) or per
    notebook section (``by="section"``, keys the sections' links, only those with an answered question)."""
    from helpers import quiz

    if by not in ("lecture", "section"):
        raise ValueError(f"by is 'lecture' or 'section', not {by!r}")
    history = answers(file)
    bank = quiz.bank() + quiz.written()
    groups: dict[Any, list] = {}
    for q in bank:
        groups.setdefault(q.lecture if by == "lecture" else q.link, []).append(q)
    if by == "section":
        asked = {a.question for a in history}
        groups = {link: members for link, members in groups.items() if any(q.id in asked for q in members)}
    series: dict[Any, list[float]] = {key: [] for key in groups}
    for day in days:
        end = dt.datetime.combine(day, dt.time(23, 59, 59), dt.UTC)
        found = cards(history, until=end)
        for key, members in groups.items():
            series[key].append(_mean([recall(found[q.id], end) if q.id in found else 0.0 for q in members]))
    return series
