"""Load problems from wherever they live: `load_problems(source)`.

Where (the container) is told by the source itself: a .jsonl/.json/.parquet
file, a directory (a `datasets` `save_to_disk` folder, or a folder of data
files), a Hugging Face hub dataset id, or the word `bundled`. What (the record
shape: TAROT, canonical or HumanEval) is detected from the first record of each
file, or forced with `format`. The record parsers live in `records.py`.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from tarot_jobs.problems.errors import FieldError, ProblemFormatError, ProblemSourceError
from tarot_jobs.problems.model import Problem
from tarot_jobs.problems.records import RecordShape, detect_shape, parse_record, problem_to_record

Format = Literal["auto", "tarot", "canonical", "humaneval"]
OnError = Literal["raise", "skip"]
FORMATS: tuple[Format, ...] = get_args(Format)

BUNDLED = "bundled"
JSONL_SUFFIXES = (".jsonl", ".ndjson")
DATA_SUFFIXES = (*JSONL_SUFFIXES, ".json", ".parquet")

# "owner/name" or "name", as the hub spells dataset ids.
_HUB_ID = re.compile(r"\A[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?\Z")
_TRUTHY = {"1", "true", "yes", "on"}
_HUB_PROBE_TIMEOUT_S = 5.0

# The field that carries the problem id in each shape, to name it in duplicate-id errors.
_ID_FIELD: dict[RecordShape, str] = {"tarot": "problem_id", "canonical": "id", "humaneval": "task_id"}


@dataclass(frozen=True)
class SkippedRecord:
    """A record left out in `on_error="skip"` mode, and why."""

    location: str
    field: str
    problem: str

    def __str__(self) -> str:
        return str(ProblemFormatError(self.location, self.field, self.problem))


@dataclass(frozen=True)
class LoadResult:
    source: str
    problems: list[Problem]
    skipped: list[SkippedRecord] = field(default_factory=list)


@dataclass(frozen=True)
class _RawRecord:
    group: str  # records of one group (a file, a split) share their detected shape
    location: str  # e.g. "data.jsonl:7" or "data.parquet[3]"
    value: Any = None
    unreadable: str | None = None  # set instead of value when the record could not even be decoded


def load_problems(source: str | Path, *, format: Format = "auto", on_error: OnError = "raise") -> LoadResult:
    """Load a problem set.

    `source` is one of:
    - a `.jsonl`/`.ndjson`, `.json` (a list of records, or one record) or `.parquet` file;
    - a directory: a Hugging Face `datasets` folder written by `save_to_disk` (every
      split is loaded), or any folder of such data files (loaded recursively, in name order);
    - a Hugging Face hub dataset id (`owner/name`), tried only when it is not a local
      path, HF_HUB_OFFLINE/HF_DATASETS_OFFLINE are unset and the hub answers;
    - `bundled`, `bundled:train` or `bundled:heldout`: tarot's own problem set;
    - `toy:train`, `toy:heldout`, `toy:warmup` (`:COUNT` optional): the synthetic toy family (toy.py).

    `format` is the record shape: `tarot` (TAROT jsonl: `problem`,
    `gold_standard_solution`, `verification_info.test_cases` with labels
    basic/medium/high/edge/null), `canonical` (`id`, `statement`,
    `gold_solution`, `language`, `kind`, `entry_point`,
    `tests[{input, output, tier, reason}]`, as `save_problems` writes),
    `humaneval` (`task_id`, `prompt`, `entry_point`, `test`,
    `canonical_solution`), or `auto` to detect it from each file's first record.
    It does not apply to `bundled`.

    `on_error="raise"` stops at the first bad record with a ProblemFormatError
    naming file, line (1-based, jsonl) or record index (`[i]`, 0-based,
    json/parquet/datasets) and field; `"skip"` leaves bad records out and lists
    them in `LoadResult.skipped`. A source that cannot be read at all (missing,
    unknown type, not parseable, hub unreachable, no records) always raises
    ProblemSourceError. Problem ids must be unique within a source.
    """
    if format not in FORMATS:
        raise ValueError(f"format: expected one of {', '.join(FORMATS)}, got {format!r}")
    if on_error not in get_args(OnError):
        raise ValueError(f"on_error: expected 'raise' or 'skip', got {on_error!r}")
    name = str(source)
    if name == BUNDLED or name.startswith(f"{BUNDLED}:"):
        return LoadResult(source=name, problems=_load_bundled(name))
    if name.startswith("toy:"):
        return LoadResult(source=name, problems=_load_toy(name))
    return _collect(name, _records(name), format, on_error)


def save_problems(problems: Sequence[Problem], path: str | Path) -> None:
    """Write problems as canonical jsonl (readable again by `load_problems`).

    Written to a temporary file beside `path` and renamed into place, so a
    failure never leaves a half-written file.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            for problem in problems:
                out.write(json.dumps(problem_to_record(problem), ensure_ascii=False) + "\n")
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _collect(source: str, records: Iterable[_RawRecord], format: Format, on_error: OnError) -> LoadResult:
    problems: list[Problem] = []
    skipped: list[SkippedRecord] = []
    first_seen: dict[str, str] = {}
    shapes: dict[str, RecordShape] = {}
    for raw in records:
        try:
            if raw.unreadable is not None:
                raise FieldError("", raw.unreadable)
            shape = _shape_of(raw, format, shapes)
            problem = parse_record(raw.value, shape)
            if problem.id in first_seen:
                raise FieldError(
                    _ID_FIELD[shape],
                    f"duplicate problem id {problem.id!r} (first at {first_seen[problem.id]})",
                )
        except FieldError as exc:
            if on_error == "raise":
                raise ProblemFormatError(raw.location, exc.field, exc.problem) from None
            skipped.append(SkippedRecord(raw.location, exc.field, exc.problem))
            continue
        first_seen[problem.id] = raw.location
        problems.append(problem)
    if not problems and not skipped:
        raise ProblemSourceError(f"{source}: contains no problem records")
    return LoadResult(source=source, problems=problems, skipped=skipped)


def _shape_of(raw: _RawRecord, format: Format, shapes: dict[str, RecordShape]) -> RecordShape:
    if format != "auto":
        return format
    if raw.group not in shapes and isinstance(raw.value, Mapping):
        shapes[raw.group] = detect_shape(raw.value)
    return shapes.get(raw.group, "canonical")


def _records(source: str) -> Iterator[_RawRecord]:
    path = Path(source)
    if path.is_dir():
        return _directory_records(path)
    if path.is_file():
        return _file_records(path)
    if path.suffix.lower() in DATA_SUFFIXES or not _HUB_ID.match(source):
        raise ProblemSourceError(f"{source}: no such file or directory")
    return _hub_records(source)


def _file_records(path: Path) -> Iterator[_RawRecord]:
    suffix = path.suffix.lower()
    if suffix in JSONL_SUFFIXES:
        return _jsonl_records(path)
    if suffix == ".json":
        return _indexed_records(str(path), str(path), _read_json(path))
    if suffix == ".parquet":
        return _indexed_records(str(path), str(path), _read_parquet(path))
    raise ProblemSourceError(
        f"{path}: unknown file type {path.suffix!r} (expected {', '.join(DATA_SUFFIXES)} or a directory)"
    )


def _jsonl_records(path: Path) -> Iterator[_RawRecord]:
    name = str(path)
    try:
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                location = f"{name}:{number}"
                try:
                    yield _RawRecord(name, location, value=json.loads(line))
                except json.JSONDecodeError as exc:
                    yield _RawRecord(
                        name, location, unreadable=f"not valid JSON ({exc.msg}, column {exc.colno})"
                    )
    except UnicodeDecodeError as exc:
        raise ProblemSourceError(f"{name}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except OSError as exc:
        raise ProblemSourceError(f"{name}: cannot read ({exc.strerror or exc})") from exc


def _read_json(path: Path) -> list[Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ProblemSourceError(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg})") from exc
    except UnicodeDecodeError as exc:
        raise ProblemSourceError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except OSError as exc:
        raise ProblemSourceError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if isinstance(data, dict):
        return [data]
    if isinstance(data, list):
        return data
    raise ProblemSourceError(f"{path}: expected a list of records or one record, got {type(data).__name__}")


def _train_extra(module: str, needs: str) -> Any:
    """`module`, which comes with tarot[train]; without it, a ProblemSourceError saying `needs` and how."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ProblemSourceError(f"{needs} (pip install 'tarot[train]')") from exc


def _read_parquet(path: Path) -> list[Any]:
    pq = _train_extra("pyarrow.parquet", f"{path}: reading parquet needs pyarrow")
    try:
        rows: list[Any] = pq.read_table(path).to_pylist()
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise ProblemSourceError(f"{path}: not a readable parquet file ({exc})") from exc
    return rows


def _indexed_records(group: str, prefix: str, rows: Iterable[Any]) -> Iterator[_RawRecord]:
    for index, row in enumerate(rows):
        yield _RawRecord(group, f"{prefix}[{index}]", value=row)


def _directory_records(path: Path) -> Iterator[_RawRecord]:
    if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
        return _saved_dataset_records(path)
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in DATA_SUFFIXES)
    if not files:
        raise ProblemSourceError(
            f"{path}: a directory with neither a saved `datasets` dataset nor data files "
            f"({', '.join(DATA_SUFFIXES)})"
        )
    return (record for file in files for record in _file_records(file))


def _saved_dataset_records(path: Path) -> Iterator[_RawRecord]:
    datasets = _train_extra("datasets", f"{path}: reading a datasets folder needs `datasets`")
    try:
        loaded = datasets.load_from_disk(str(path))
    except (OSError, ValueError, FileNotFoundError) as exc:
        raise ProblemSourceError(f"{path}: not a readable `datasets` folder ({exc})") from exc
    return _dataset_rows(str(path), loaded)


def _dataset_rows(name: str, loaded: Any) -> Iterator[_RawRecord]:
    """Rows of a Dataset, or of every split of a DatasetDict (location `name:split[i]`)."""
    if isinstance(loaded, Mapping):
        for split, dataset in loaded.items():
            yield from _indexed_records(f"{name}:{split}", f"{name}:{split}", dataset)
    else:
        yield from _indexed_records(name, name, loaded)


def _hub_records(repo_id: str) -> Iterator[_RawRecord]:
    offline = [
        var for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE") if os.environ.get(var, "").lower() in _TRUTHY
    ]
    if offline:
        raise ProblemSourceError(
            f"{repo_id}: not a local file or directory, and {offline[0]} is set, so it is not looked up "
            "as a Hugging Face hub dataset"
        )
    _probe_hub(repo_id)
    import datasets

    try:
        loaded = datasets.load_dataset(repo_id)
    except Exception as exc:  # datasets raises many unrelated types for a dataset it cannot load
        raise ProblemSourceError(f"{repo_id}: could not load the hub dataset ({exc})") from exc
    return _dataset_rows(repo_id, loaded)


def _probe_hub(repo_id: str) -> None:
    """Fail fast, with a clear message, when the hub cannot be reached (no long retries in datasets)."""
    import httpx

    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    try:
        answer = httpx.head(
            f"{endpoint}/api/datasets/{repo_id}", timeout=_HUB_PROBE_TIMEOUT_S, follow_redirects=True
        )
    except httpx.HTTPError as exc:
        raise ProblemSourceError(
            f"{repo_id}: not a local file or directory, and the Hugging Face hub at {endpoint} is not "
            f"reachable ({type(exc).__name__}); download the dataset where the hub is reachable "
            "(save_to_disk) and pass that directory"
        ) from exc
    if answer.status_code == 404:
        raise ProblemSourceError(f"{repo_id}: not a local file or directory, nor a dataset on {endpoint}")


def _load_bundled(name: str) -> list[Problem]:
    from tarot_jobs.problems import bundled

    split = name.partition(":")[2] or None
    if split is not None and split not in bundled.BUNDLED_SPLITS:
        raise ProblemSourceError(
            f"{name}: unknown bundled split {split!r} (expected {', '.join(bundled.BUNDLED_SPLITS)})"
        )
    try:
        return bundled.load_bundled(split)
    except bundled.BundledDataError as exc:
        raise ProblemSourceError(f"{name}: {exc}") from exc


def _load_toy(name: str) -> list[Problem]:
    from tarot_jobs.problems import toy

    try:
        split, count = toy.parse_toy_source(name)
    except ValueError as exc:
        raise ProblemSourceError(str(exc)) from exc
    return toy.toy_problems(split, count)
