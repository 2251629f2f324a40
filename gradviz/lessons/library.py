"""The lessons on offer: the built-ins, then a teacher's folder (GRADVIZ_LESSONS_DIR), each file read once per change.

The rules: a lesson's name is its file's stem (a-z, 0-9, - and _, at most 40 characters); a teacher's
lesson with a built-in's name replaces it. A bad file adds one message naming the file and the line,
and every other lesson still loads; a folder that cannot be read is one message. Files are parsed
again only when their modification time or size changes, so a page can call load_lessons on every
rerun.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

from gradviz.lessons.lesson import MAX_BYTES, Lesson, LessonError, parse_lesson

BUILTIN_DIR = Path(__file__).resolve().parent / "builtin"
BUILTIN_ORDER = ("seed-experiments", "initialization", "learning-rate", "through-time")  # the rest by name
LESSONS_DIR_ENV = "GRADVIZ_LESSONS_DIR"
MAX_LESSONS = 100  # files read from a teacher's folder
NAME = re.compile(r"^[a-z0-9_-]{1,40}$")

_CACHE: dict[Path, tuple[tuple[int, int], Lesson | str]] = {}  # path -> ((mtime_ns, size), lesson or message)
_CACHE_LIMIT = 1000
_LOCK = threading.Lock()


def _read(path: Path) -> Lesson | str:
    """One file -> its Lesson, or the message saying why it cannot be used."""
    try:
        stat = path.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
        with _LOCK:
            cached = _CACHE.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        if stat.st_size > MAX_BYTES:
            found: Lesson | str = f"{path.name}: a lesson file may be at most {MAX_BYTES // 1024} KB"
        else:
            found = parse_lesson(path.read_text(encoding="utf-8-sig"), path.stem, source=path.name)
    except LessonError as error:
        found = str(error)
    except UnicodeDecodeError:
        found = f"{path.name}: not UTF-8 text"
    except OSError as error:
        return f"{path.name}: cannot be read ({error.strerror or error})"
    except Exception as error:  # noqa: BLE001 - one bad file never takes the lessons down
        found = f"{path.name}: cannot be used ({type(error).__name__}: {str(error)[:120]})"
    with _LOCK:
        if len(_CACHE) >= _CACHE_LIMIT:
            _CACHE.clear()
        _CACHE[path] = (stamp, found)
    return found


def _files(folder: Path, messages: list[str]) -> list[Path]:
    """The folder's *.toml files, the built-in order first, then by name (at most MAX_LESSONS)."""
    try:
        paths = sorted(p for p in folder.iterdir() if p.suffix == ".toml" and p.is_file())
    except OSError as error:
        messages.append(f"Lessons folder {folder}: cannot be read ({error.strerror or error}).")
        return []
    rank = {name: i for i, name in enumerate(BUILTIN_ORDER)}
    paths.sort(key=lambda p: (rank.get(p.stem, len(rank)), p.name))
    if len(paths) > MAX_LESSONS:
        messages.append(f"Lessons folder {folder}: only the first {MAX_LESSONS} of {len(paths)} files are read.")
    return paths[:MAX_LESSONS]


def _add(folder: Path, lessons: dict[str, Lesson], messages: list[str]) -> None:
    for path in _files(folder, messages):
        if not NAME.match(path.stem):
            messages.append(f"{path.name[:60]}: skipped - a lesson's file name may use only a-z, 0-9, - and _ "
                            "(at most 40 characters before .toml).")
            continue
        found = _read(path)
        if isinstance(found, str):
            messages.append(found)
        else:
            lessons[found.name] = found


def load_lessons() -> tuple[dict[str, Lesson], list[str]]:
    """Every lesson on offer, and a message per file or folder that could not be used.

    Returns:
        (name -> Lesson, the built-ins first, then the teacher's folder's lessons, a teacher's lesson
        replacing a built-in of the same name; messages naming each bad file and its line).
    """
    lessons: dict[str, Lesson] = {}
    messages: list[str] = []
    _add(BUILTIN_DIR, lessons, messages)
    teacher = os.environ.get(LESSONS_DIR_ENV, "").strip()
    if teacher:
        try:
            folder = Path(teacher).expanduser()
            readable = folder.is_dir()
        except (OSError, RuntimeError):  # no permission on a parent, or "~user" unknown
            readable = False
        if readable:
            _add(folder, lessons, messages)
        else:
            messages.append(f"Lessons folder {teacher[:200]} ({LESSONS_DIR_ENV}) is not a folder that can be read.")
    return lessons, messages
