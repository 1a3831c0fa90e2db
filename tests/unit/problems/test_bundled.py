"""The bundled problem set: shape, fixed split, and gold solutions that pass their own tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter

import pytest

from tarot_jobs.problems.bundled import (
    BUNDLED_DIFFICULTIES,
    BUNDLED_SPLITS,
    BundledDataError,
    _parse,
    load_bundled,
    load_bundled_entries,
)
from tarot_jobs.problems.model import ALL_TIERS
from tarot_jobs.sandbox.local import LocalSandbox
from tarot_jobs.sandbox.types import ProgramKind, Verdict

# Pinned on purpose: moving a problem between train and held-out must be a deliberate edit here,
# because every earlier probe and evaluation was measured on exactly these problems.
HELDOUT_IDS = frozenset(
    {
        "anagram-groups",
        "balanced-brackets",
        "caesar-cipher",
        "decode-repeats",
        "digit-sum-and-root",
        "expression-evaluator",
        "flatten",
        "grid-shortest-path",
        "leap-years",
        "longest-common-prefix",
        "longest-increasing-subsequence",
        "meeting-rooms",
        "product-except-self",
        "stock-profit",
        "sum-of-squares",
        "topological-order",
        "vowel-consonant-count",
    }
)
MIN_PROBLEMS = 60


def test_the_set_is_large_and_ids_are_unique() -> None:
    problems = load_bundled()
    ids = [p.id for p in problems]
    assert len(problems) >= MIN_PROBLEMS
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids), "the order must be deterministic (by id)"


def test_both_program_kinds_are_present_and_function_problems_name_their_entry_point() -> None:
    problems = load_bundled()
    kinds = Counter(p.kind for p in problems)
    assert kinds[ProgramKind.STDIN_STDOUT] > 0 and kinds[ProgramKind.FUNCTION] > 0
    for p in problems:
        if p.kind is ProgramKind.FUNCTION:
            assert p.entry_point and f"def {p.entry_point}(" in p.statement, p.id
            assert all(t.output is None and "assert " in t.input for t in p.tests), p.id
        else:
            assert all(t.output is not None for t in p.tests), p.id


def test_statements_are_complete_prompts_and_tests_explain_themselves() -> None:
    for p in load_bundled():
        if p.kind is ProgramKind.STDIN_STDOUT:
            assert "\nInput\n" in p.statement and "\nOutput\n" in p.statement, p.id
        assert "Example" in p.statement, p.id
        assert "```" not in p.gold_solution, p.id
        assert all(t.reason.strip() for t in p.tests), p.id


def test_every_problem_has_a_test_in_each_tier() -> None:
    for p in load_bundled():
        tiers = Counter(t.tier for t in p.tests)
        missing = [tier.value for tier in ALL_TIERS if tiers[tier] == 0]
        assert not missing, f"{p.id} has no test in tier(s) {missing}"


def test_the_split_is_fixed_disjoint_and_covering() -> None:
    everything = {p.id for p in load_bundled()}
    train = {p.id for p in load_bundled("train")}
    heldout = {p.id for p in load_bundled("heldout")}
    assert heldout == HELDOUT_IDS
    assert not train & heldout
    assert train | heldout == everything


def test_heldout_spans_every_difficulty_and_both_kinds() -> None:
    heldout = load_bundled_entries("heldout")
    assert {e.difficulty for e in heldout} == set(BUNDLED_DIFFICULTIES)
    assert {e.problem.kind for e in heldout} == set(ProgramKind)


def test_every_process_sees_the_same_order_sorted_by_id() -> None:
    """Each pod loads the set itself: the order must not depend on the directory listing or the hash
    seed of the process (one call here returns the cached list, so compare with fresh processes)."""
    here = {split: [p.id for p in load_bundled(split)] for split in BUNDLED_SPLITS}
    for split, ids in here.items():
        assert ids == sorted(ids), split
    code = "import json; from tarot_jobs.problems.bundled import load_bundled as b; "
    code += f"print(json.dumps({{s: [p.id for p in b(s)] for s in {list(BUNDLED_SPLITS)!r}}}))"
    for seed in ("1", "2"):
        child = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        )
        assert json.loads(child.stdout) == here


def test_an_unknown_split_is_rejected() -> None:
    with pytest.raises(ValueError, match="split"):
        load_bundled("test")  # type: ignore[arg-type]


def test_a_malformed_file_is_reported_with_its_name_and_field() -> None:
    text = "id: broken\nsplit: train\ndifficulty: easy\nkind: stdin_stdout\nstatement: s\ngold_solution: x\n"
    with pytest.raises(BundledDataError, match=r"broken\.yaml: tests"):
        _parse("broken.yaml", text)
    with pytest.raises(BundledDataError, match=r"broken\.yaml: .*tier"):
        _parse("broken.yaml", text + "tests:\n- {tier: hardest, input: '1', output: '1'}\n")
    with pytest.raises(BundledDataError, match="does not match the file name"):
        _parse("other.yaml", text + "tests:\n- {tier: basic, input: '1', output: '1'}\n")


def test_every_gold_solution_passes_all_its_tests_in_the_local_sandbox() -> None:
    problems = load_bundled()
    with LocalSandbox() as sandbox:
        results = sandbox.run_batch([p.execution_request(p.gold_solution) for p in problems])
    failures = [
        f"{p.id} test {i} ({p.tests[i].tier}): {r.status.value} {r.detail or r.stderr[-200:]}"
        for p, result in zip(problems, results, strict=True)
        for i, r in enumerate(result.results)
        if r.status is not Verdict.PASSED
    ]
    assert not failures, "\n".join(failures)
