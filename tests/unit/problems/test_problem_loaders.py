"""load_problems: every source and record shape, and errors that name file, line and field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tarot_jobs.problems.errors import ProblemFormatError, ProblemSourceError
from tarot_jobs.problems.loaders import load_problems, save_problems
from tarot_jobs.problems.model import ALL_TIERS, Problem, TestCase, Tier
from tarot_jobs.sandbox.types import ProgramKind


def tarot_record(
    problem_id: str = "vfc_1", *, labels: tuple[Any, ...] = (None, "basic", "medium", "high", "edge")
) -> dict[str, Any]:
    return {
        "source": "code_contests",
        "in_source_id": f"src-{problem_id}",
        "problem_id": problem_id,
        "problem": "Read n and print 2n.",
        "gold_standard_solution": "```python\nn = int(input())\nprint(2 * n)\n```",
        "verification_info": {
            "language": "python",
            "test_cases": [
                {
                    "input": f"{i}\n",
                    "output": f"{2 * i}\n",
                    "type": "stdin_stdout",
                    "label": label,
                    "reason": f"r{i}",
                }
                for i, label in enumerate(labels)
            ],
        },
        "metadata": {"difficulty": "easy"},
    }


def canonical_record(problem_id: str = "double", **changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": problem_id,
        "statement": "Read n and print 2n.",
        "gold_solution": "print(2 * int(input()))\n",
        "language": "python",
        "kind": "stdin_stdout",
        "entry_point": None,
        "tests": [
            {"input": "1\n", "output": "2\n", "tier": "basic", "reason": "small"},
            {"input": "5\n", "output": "10\n", "tier": "intermediate", "reason": ""},
            {"input": "99\n", "output": "198\n", "tier": "complex", "reason": ""},
            {"input": "0\n", "output": "0\n", "tier": "edge", "reason": "zero"},
        ],
    }
    record.update(changes)
    return record


def humaneval_record(task_id: str = "HumanEval/0") -> dict[str, Any]:
    return {
        "task_id": task_id,
        "prompt": 'def add(a: int, b: int) -> int:\n    """Sum of a and b."""\n',
        "entry_point": "add",
        "canonical_solution": "    return a + b\n",
        "test": "def check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate(-1, 1) == 0\n",
    }


def write_jsonl(path: Path, records: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def write_parquet(path: Path, records: list[dict[str, Any]]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(records), path)
    return path


# --- the record shapes -------------------------------------------------------------------------


def test_tarot_jsonl_maps_labels_to_tiers_and_strips_the_fence(tmp_path: Path) -> None:
    result = load_problems(write_jsonl(tmp_path / "t.jsonl", [tarot_record("vfc_1"), tarot_record("vfc_2")]))

    assert [p.id for p in result.problems] == ["vfc_1", "vfc_2"]
    problem = result.problems[0]
    assert problem.gold_solution == "n = int(input())\nprint(2 * n)\n"
    assert problem.kind is ProgramKind.STDIN_STDOUT
    assert problem.source == "code_contests"
    assert [t.tier for t in problem.tests] == [None, *ALL_TIERS]
    assert problem.tests[1] == TestCase(input="1\n", output="2\n", tier=Tier.BASIC, reason="r1")
    assert result.skipped == []


def test_tarot_id_falls_back_to_in_source_id(tmp_path: Path) -> None:
    record = tarot_record()
    del record["problem_id"]
    [problem] = load_problems(write_jsonl(tmp_path / "t.jsonl", [record])).problems
    assert problem.id == "src-vfc_1"


def test_tarot_verification_info_stored_as_a_json_string_is_decoded(tmp_path: Path) -> None:
    record = tarot_record()
    record["verification_info"] = json.dumps(record["verification_info"])
    [problem] = load_problems(write_parquet(tmp_path / "t.parquet", [record])).problems
    assert [t.tier for t in problem.tests] == [None, *ALL_TIERS]


def test_canonical_json_jsonl_and_parquet_load_the_same_problems(tmp_path: Path) -> None:
    records = [
        canonical_record("a"),
        canonical_record("b", tests=[{"input": "", "output": "x\n", "tier": "high"}]),
    ]
    (tmp_path / "p.json").write_text(json.dumps(records))
    sources = [
        tmp_path / "p.json",
        write_jsonl(tmp_path / "p.jsonl", records),
        write_parquet(tmp_path / "p.parquet", records),
    ]

    loaded = [load_problems(source).problems for source in sources]

    assert loaded[0] == loaded[1] == loaded[2]
    assert [t.tier for t in loaded[0][0].tests] == list(ALL_TIERS)
    assert loaded[0][1].tests == [TestCase(input="", output="x\n", tier=Tier.COMPLEX)]  # TAROT alias accepted


def test_humaneval_shape_becomes_a_function_problem_with_one_untiered_test(tmp_path: Path) -> None:
    [problem] = load_problems(write_jsonl(tmp_path / "he.jsonl", [humaneval_record()])).problems

    record = humaneval_record()
    assert problem.id == "HumanEval/0"
    assert problem.kind is ProgramKind.FUNCTION
    assert problem.entry_point == "add"
    assert problem.statement == record["prompt"]
    assert problem.gold_solution == record["prompt"] + record["canonical_solution"]
    [test] = problem.tests
    assert test.tier is None and test.output is None
    assert test.input.startswith("def check(candidate):") and test.input.rstrip().endswith("check(add)")


def test_a_saved_datasets_folder_loads_every_split(tmp_path: Path) -> None:
    import datasets

    folder = tmp_path / "saved"
    datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_list([tarot_record("vfc_1"), tarot_record("vfc_2")]),
            "test": datasets.Dataset.from_list([tarot_record("vfc_3")]),
        }
    ).save_to_disk(str(folder))

    result = load_problems(folder)

    assert sorted(p.id for p in result.problems) == ["vfc_1", "vfc_2", "vfc_3"]
    assert all([t.tier for t in p.tests] == [None, *ALL_TIERS] for p in result.problems)


def test_a_saved_single_dataset_folder_loads_canonical_rows(tmp_path: Path) -> None:
    import datasets

    records = [canonical_record("a"), canonical_record("b")]
    datasets.Dataset.from_list(records).save_to_disk(str(tmp_path / "single"))

    result = load_problems(tmp_path / "single")

    assert result.problems == [Problem.model_validate(r) for r in records]


def test_a_saved_datasets_folder_reports_split_and_row_of_a_bad_record(tmp_path: Path) -> None:
    import datasets

    bad = tarot_record("vfc_2", labels=("basic", "hard"))
    good = tarot_record("vfc_1", labels=("basic", "edge"))
    datasets.DatasetDict({"train": datasets.Dataset.from_list([good, bad])}).save_to_disk(str(tmp_path / "d"))

    with pytest.raises(ProblemFormatError) as caught:
        load_problems(tmp_path / "d")
    assert str(caught.value).startswith(
        f"{tmp_path / 'd'}:train[1]: verification_info.test_cases[1].label: unknown tier 'hard'"
    )


def test_a_folder_of_data_files_loads_each_file_with_its_own_shape(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", [tarot_record("vfc_1")])
    (tmp_path / "sub").mkdir()
    write_jsonl(tmp_path / "sub" / "b.jsonl", [humaneval_record("HumanEval/7")])
    (tmp_path / "notes.txt").write_text("ignored")

    result = load_problems(tmp_path)

    assert [(p.id, p.kind) for p in result.problems] == [
        ("vfc_1", ProgramKind.STDIN_STDOUT),
        ("HumanEval/7", ProgramKind.FUNCTION),
    ]


def test_the_format_can_be_forced(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "he.jsonl", [humaneval_record()])
    with pytest.raises(ProblemFormatError, match=r"he\.jsonl:1: problem_id: missing"):
        load_problems(path, format="tarot")


def test_bundled_delegates_to_the_bundled_set() -> None:
    from tarot_jobs.problems.bundled import load_bundled

    assert load_problems("bundled").problems == load_bundled()
    assert load_problems("bundled:heldout").problems == load_bundled("heldout")
    with pytest.raises(ProblemSourceError, match="unknown bundled split 'dev'"):
        load_problems("bundled:dev")


def test_the_shared_tarot_sample_loads_fully(tarot_sample: Path) -> None:
    result = load_problems(tarot_sample)

    assert len(result.problems) == 14 and result.skipped == []
    for problem in result.problems:
        assert problem.id.startswith("vfc_")
        assert not problem.gold_solution.lstrip().startswith("```") and "```" not in problem.gold_solution
        compile(problem.gold_solution, problem.id, "exec")  # the fence is gone: it is plain Python
        assert sorted((t.tier for t in problem.tests), key=str) == sorted([None, *ALL_TIERS], key=str)


# --- save / round trip -----------------------------------------------------------------------


def test_saved_problems_load_back_identically(tmp_path: Path) -> None:
    problems = [
        *load_problems(write_jsonl(tmp_path / "t.jsonl", [tarot_record("vfc_1")])).problems,
        *load_problems(write_jsonl(tmp_path / "h.jsonl", [humaneval_record()])).problems,
    ]
    save_problems(problems, tmp_path / "out" / "clean.jsonl")

    assert load_problems(tmp_path / "out" / "clean.jsonl").problems == problems
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["clean.jsonl"]  # no temporary file left


def test_a_failed_save_leaves_neither_a_partial_file_nor_a_temporary_one(tmp_path: Path) -> None:
    class Exploding(Problem):
        def model_dump(self, **kwargs: Any) -> dict[str, Any]:
            raise RuntimeError("boom")

    good = Problem.model_validate(canonical_record("a"))
    bad = Exploding.model_validate(canonical_record("b"))
    with pytest.raises(RuntimeError, match="boom"):
        save_problems([good, bad], tmp_path / "clean.jsonl")
    assert list(tmp_path.iterdir()) == []


# --- bad records ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (
            tarot_record(labels=("basic", "medium", "hard")),
            "verification_info.test_cases[2].label: unknown tier 'hard' "
            "(expected basic, medium, high, edge or null)",
        ),
        (
            {**tarot_record(), "gold_standard_solution": "```python\nprint(1)\n"},
            "gold_standard_solution: starts a ``` code fence",
        ),
        ({**tarot_record(), "problem": 42}, "problem: expected a string, got int"),
        (
            {**tarot_record(), "verification_info": {"language": "cpp", "test_cases": []}},
            "verification_info.language: unsupported language 'cpp'",
        ),
        (
            {
                **tarot_record(),
                "verification_info": {
                    "language": "python",
                    "test_cases": [{"input": "", "output": "", "type": "function_call"}],
                },
            },
            "verification_info.test_cases[0].type: unsupported test type 'function_call'",
        ),
        (
            {**tarot_record(), "verification_info": {"test_cases": [{"input": "1\n", "label": "basic"}]}},
            "verification_info.test_cases[0].output: missing",
        ),
    ],
)
def test_bad_tarot_records_name_file_line_and_field(
    tmp_path: Path, record: dict[str, Any], expected: str
) -> None:
    path = write_jsonl(tmp_path / "data.jsonl", [tarot_record("ok-1"), "", record])  # line 2 is blank

    with pytest.raises(ProblemFormatError) as caught:
        load_problems(path)

    assert str(caught.value).startswith(f"{path}:3: {expected}")
    assert caught.value.location == f"{path}:3"


@pytest.mark.parametrize(
    ("record", "field", "problem"),
    [
        ({k: v for k, v in canonical_record().items() if k != "gold_solution"}, "gold_solution", "missing"),
        (canonical_record(tests=[]), "tests", "at least 1 item"),
        (
            canonical_record(tests=[{"input": "1\n", "output": "2\n", "tier": "hardest"}]),
            "tests[0].tier",
            "unknown tier 'hardest'",
        ),
        (canonical_record(tests=[{"output": "2\n", "tier": "basic"}]), "tests[0].input", "missing"),
        (canonical_record(kind="function"), "entry_point", "required for function-style problems"),
        (canonical_record(kind="sql"), "kind", "Input should be 'stdin_stdout' or 'function'"),
    ],
)
def test_bad_canonical_records_name_the_record_index_and_field(
    tmp_path: Path, record: dict[str, Any], field: str, problem: str
) -> None:
    path = tmp_path / "data.json"
    path.write_text(json.dumps([canonical_record("ok"), record]))

    with pytest.raises(ProblemFormatError) as caught:
        load_problems(path)

    assert caught.value.location == f"{path}[1]"
    assert str(caught.value).startswith(f"{path}[1]: {field}: ")
    assert problem in str(caught.value)


def test_bad_parquet_rows_and_bad_humaneval_records_are_located(tmp_path: Path) -> None:
    bad_tier = canonical_record("b", tests=[{"input": "1\n", "output": "2\n", "tier": "xl", "reason": ""}])
    parquet = write_parquet(tmp_path / "p.parquet", [canonical_record("a"), bad_tier])
    with pytest.raises(ProblemFormatError, match=r"p\.parquet\[1\]: tests\[0\]\.tier: unknown tier 'xl'"):
        load_problems(parquet)

    humaneval = write_jsonl(
        tmp_path / "he.jsonl",
        [humaneval_record(), {**humaneval_record("HumanEval/1"), "entry_point": "not valid"}],
    )
    with pytest.raises(
        ProblemFormatError, match=r"he\.jsonl:2: entry_point: 'not valid' is not a Python identifier"
    ):
        load_problems(humaneval)


def test_invalid_json_lines_and_duplicate_ids_are_bad_records(tmp_path: Path) -> None:
    broken = write_jsonl(tmp_path / "broken.jsonl", [canonical_record("a"), '{"id": "b", '])
    with pytest.raises(ProblemFormatError, match=r"broken\.jsonl:2: not valid JSON"):
        load_problems(broken)

    dupes = write_jsonl(tmp_path / "dupes.jsonl", [tarot_record("vfc_1"), tarot_record("vfc_1")])
    with pytest.raises(
        ProblemFormatError,
        match=r"dupes\.jsonl:2: problem_id: duplicate problem id 'vfc_1' \(first at .*dupes\.jsonl:1\)",
    ):
        load_problems(dupes)


def test_skip_mode_keeps_the_good_records_and_reports_the_bad_ones(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "mixed.jsonl",
        [
            tarot_record("vfc_1"),
            tarot_record("vfc_2", labels=("basic", "bogus")),
            "not json",
            tarot_record("vfc_4"),
        ],
    )

    result = load_problems(path, on_error="skip")

    assert [p.id for p in result.problems] == ["vfc_1", "vfc_4"]
    assert [(s.location, s.field) for s in result.skipped] == [
        (f"{path}:2", "verification_info.test_cases[1].label"),
        (f"{path}:3", ""),
    ]
    assert str(result.skipped[0]).startswith(
        f"{path}:2: verification_info.test_cases[1].label: unknown tier 'bogus'"
    )


# --- unreadable sources ---------------------------------------------------------------------


def test_unreadable_sources_raise_a_source_error(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_text("\n\n")
    (tmp_path / "bad.json").write_text('[{"id": "a",\n  oops]')
    (tmp_path / "scalar.json").write_text("3")
    (tmp_path / "data.csv").write_text("id\n1\n")
    (tmp_path / "not.parquet").write_text("definitely not parquet")
    (tmp_path / "latin1.jsonl").write_bytes(b'{"id": "caf\xe9"}\n')
    (tmp_path / "emptydir").mkdir()

    cases: dict[str | Path, str] = {
        tmp_path / "missing.jsonl": "no such file or directory",
        tmp_path / "empty.jsonl": "contains no problem records",
        tmp_path / "bad.json": r"bad\.json:2:3: not valid JSON",
        tmp_path / "scalar.json": "expected a list of records or one record, got int",
        tmp_path / "data.csv": r"unknown file type '\.csv'",
        tmp_path / "not.parquet": "not a readable parquet file",
        tmp_path / "latin1.jsonl": "not UTF-8 text",
        tmp_path / "emptydir": "neither a saved `datasets` dataset nor data files",
        "./relative/missing/dir": "no such file or directory",
    }
    for source, message in cases.items():
        with pytest.raises(ProblemSourceError, match=message):
            load_problems(source, on_error="skip")


def test_a_hub_id_is_not_tried_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ProblemSourceError, match="not a local file or directory, and HF_HUB_OFFLINE is set"):
        load_problems("openai/openai_humaneval")


def test_an_unreachable_hub_gives_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")

    with pytest.raises(ProblemSourceError, match=rf"hub at http://127\.0\.0\.1:{port} is not reachable"):
        load_problems("openai/openai_humaneval")


def test_bad_arguments_are_rejected(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "p.jsonl", [canonical_record()])
    with pytest.raises(ValueError, match="format: expected one of"):
        load_problems(path, format="yaml")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="on_error"):
        load_problems(path, on_error="ignore")  # type: ignore[arg-type]
