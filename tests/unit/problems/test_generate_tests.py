"""`tarot generate-tests` end to end: a model proposes inputs, the gold solution answers them.

The model endpoint is a boundary this machine cannot reach (no model server, no weights offline), so the
test starts its own OpenAI-compatible HTTP server (http.server in a thread) that answers
/v1/chat/completions with canned, deterministic inputs: a malformed answer, a duplicate, an input that
crashes the gold solution, one that times out, a surplus input, a hostile answer that claims expected
outputs, and a transient HTTP 500. It never sends an output that could be used: every expected output
must come from the gold solution, run in tarot's local sandbox. Serving the real SmolLM2-135M behind
this command is not tested (that needs a model server such as vLLM, and this machine has neither).
"""

from __future__ import annotations

import json
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tarot_jobs.cli import app
from tarot_jobs.problems.loaders import load_problems

runner = CliRunner()

# Doubles n; crashes on a negative n; never ends on 999.
DOUBLE_GOLD = (
    "n = int(input())\nif n < 0:\n    raise ValueError('negative')\nwhile n == 999:\n    pass\nprint(2 * n)\n"
)
PROBLEMS = [
    # Canonical shape, no `tests` field at all.
    {"id": "double", "statement": "Read n, print 2n.", "gold_solution": DOUBLE_GOLD},
    # TAROT shape with an empty test list.
    {
        "problem_id": "sum",
        "problem": "Read a and b, print a+b.",
        "gold_standard_solution": "```python\na, b = map(int, input().split())\nprint(a + b)\n```",
        "verification_info": {"language": "python", "test_cases": []},
    },
    # A gold solution whose output changes on every run: `data check` drops every test it answers.
    {"id": "clock", "statement": "Print the time.", "gold_solution": "import time\nprint(time.time_ns())\n"},
]

# (statement, tier) → the model's answers, one per request (the last one repeats).
ANSWERS: dict[tuple[str, str], list[Any]] = {
    # A fenced list with an object that claims an expected output: only the strings are inputs.
    ("Read n", "BASIC"): ['```json\n["1", "2\\n", {"input": "3", "output": "999"}]\n```'],
    # "2 " is a duplicate of basic's "2\n" (trailing whitespace); -5 crashes the gold solution.
    ("Read n", "INTERMEDIATE"): ['["10", "2 ", "-5"]'],
    ("Read n", "COMPLEX"): ['["999", "100"]'],  # 999: the gold solution times out
    # A transient 500 first; then prose around the list, and a stdin that "says" its output.
    ("Read n", "EDGE"): [500, 'Here you are: ["0", "7\\noutput: 999"] Good luck!'],
    ("Read a and b", "BASIC"): ['["1 2"]'],
    ("Read a and b", "INTERMEDIATE"): ["I am sorry, I cannot write tests."],  # unparseable
    ("Read a and b", "COMPLEX"): ['["5 5"]'],
    ("Read a and b", "EDGE"): ['["0 0", "1 1", "2 2", "3 3"]'],  # one more than asked: surplus
    ("Print the time", "BASIC"): ['["a"]'],
    ("Print the time", "INTERMEDIATE"): ['["b"]'],
    ("Print the time", "COMPLEX"): ['["c"]'],
    ("Print the time", "EDGE"): ['["d"]'],
}


class FakeModel:
    """An OpenAI-compatible chat endpoint with canned answers; records every request it gets."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status, answer = fake.answer(self.path, body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def answer(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if path != "/v1/chat/completions":
            return 404, {"error": {"message": f"no route {path}"}}
        if body["model"] != "fake-coder":
            return 404, {"error": {"message": f"The model `{body['model']}` does not exist."}}
        prompt = body["messages"][-1]["content"]
        key = next(k for k in ANSWERS if k[0] in prompt and f"{k[1]} tests:" in prompt)
        with self.lock:
            seen = sum(1 for request in self.requests if request == key)
            self.requests.append(key)
        answers = ANSWERS[key]
        answer = answers[min(seen, len(answers) - 1)]
        if isinstance(answer, int):
            return answer, {"error": {"message": "overloaded"}}
        return 200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": answer}}]}


@pytest.fixture
def model() -> Iterator[FakeModel]:
    fake = FakeModel()
    thread = threading.Thread(target=fake.server.serve_forever, daemon=True)
    thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()
    thread.join()


@pytest.fixture
def problems_file(tmp_path: Path) -> Path:
    path = tmp_path / "untested.jsonl"
    path.write_text("".join(json.dumps(record) + "\n" for record in PROBLEMS))
    return path


def generate(problems_file: Path, out: Path, endpoint: str, *extra: str) -> Any:
    args = ["generate-tests", str(problems_file), "--out", str(out), "--endpoint", endpoint]
    args += ["--model", "fake-coder", "--tests-per-tier", "3", "--timeout", "1", "--workers", "2"]
    args += ["--retry-backoff", "0.01", *extra]
    return runner.invoke(app, args)


def test_tests_per_tier_come_from_the_gold_solution_and_a_rerun_resumes(
    model: FakeModel, problems_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "generated.jsonl"

    result = generate(problems_file, out, model.url)

    assert result.exit_code == 0, result.output
    # Only `double` has a test in every tier; `sum` lost its intermediate tier, `clock` every test.
    written = load_problems(out).problems
    assert [problem.id for problem in written] == ["double"]
    by_tier = {tier: [t.input for t in written[0].tests if t.tier == tier] for tier in ("basic", "edge")}
    assert by_tier == {"basic": ["1\n", "2\n"], "edge": ["0\n", "7\noutput: 999\n"]}
    assert [(t.tier, t.input) for t in written[0].tests if t.tier in ("intermediate", "complex")] == [
        ("intermediate", "10\n"),
        ("complex", "100\n"),
    ]
    # Every expected output is the gold solution's; the model sent none, and its "999" went nowhere.
    for test in written[0].tests:
        assert test.output == f"{2 * int(test.input.split()[0])}\n"
        assert "gold solution" in test.reason

    report = json.loads((tmp_path / "generated.jsonl.report.json").read_text())
    assert report["written"] == 1 and report["already_done"] == 0
    assert {p["problem_id"]: p["why"] for p in report["not_written"]} == {
        "sum": "no test kept in tier(s) intermediate",
        "clock": "no valid test left",
    }
    tiers = report["tiers"]
    expected = {  # tier: (proposed, kept, dropped)
        "basic": (3 + 1 + 1, 2, {"unparseable": 1, "problem_not_written": 1, "wrong_output": 1}),
        "intermediate": (3 + 1 + 1, 1, {"duplicate": 1, "crash": 1, "unparseable": 1, "wrong_output": 1}),
        "complex": (2 + 1 + 1, 1, {"timeout": 1, "problem_not_written": 1, "wrong_output": 1}),
        "edge": (2 + 4 + 1, 2, {"surplus": 1, "problem_not_written": 3, "wrong_output": 1}),
    }
    for tier, (proposed, kept, dropped) in expected.items():
        assert tiers[tier] == {"proposed": proposed, "kept": kept, "dropped": dropped}, tier
    for counts in tiers.values():  # every proposed item is kept or dropped once
        assert counts["proposed"] == counts["kept"] + sum(counts["dropped"].values())
    # The transient 500 was retried: edge of `double` was asked twice, every other request once.
    requests = Counter(model.requests)
    assert requests[("Read n", "EDGE")] == 2 and len(model.requests) == 13
    assert "crash 1" in result.stdout and "not written: sum" in result.stdout

    # The output is a problem set like any other: `data check` finds every test valid.
    check = runner.invoke(app, ["data", "check", str(out), "--json", "--workers", "2"])
    assert check.exit_code == 0 and json.loads(check.stdout)["invalid"] == []

    # A rerun skips `double`, asks again only for the problems left, and appends nothing.
    before = out.read_bytes()
    model.requests.clear()
    again = generate(problems_file, out, model.url)
    assert again.exit_code == 0, again.output
    assert out.read_bytes() == before
    assert {statement for statement, _ in model.requests} == {"Read a and b", "Print the time"}
    assert json.loads((tmp_path / "generated.jsonl.report.json").read_text())["already_done"] == 1


def test_allow_missing_tiers_writes_a_problem_with_an_empty_tier(
    model: FakeModel, problems_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "generated.jsonl"

    result = generate(problems_file, out, model.url, "--allow-missing-tiers")

    assert result.exit_code == 0, result.output
    written = {problem.id: problem for problem in load_problems(out).problems}
    assert sorted(written) == ["double", "sum"]
    assert [(t.tier, t.input, t.output) for t in written["sum"].tests] == [
        ("basic", "1 2\n", "3\n"),
        ("complex", "5 5\n", "10\n"),
        ("edge", "0 0\n", "0\n"),
        ("edge", "1 1\n", "2\n"),
        ("edge", "2 2\n", "4\n"),
    ]


def test_a_torn_last_line_is_cut_off_and_its_problem_generated_again(
    model: FakeModel, problems_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "generated.jsonl"
    out.write_text('{"id": "double", "statement": "Read n')  # a write killed half-way

    result = generate(problems_file, out, model.url)

    assert result.exit_code == 0, result.output
    assert [problem.id for problem in load_problems(out).problems] == ["double"]


def test_an_unreachable_endpoint_exits_3_naming_the_option(problems_file: Path, tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    result = generate(problems_file, tmp_path / "out.jsonl", f"http://127.0.0.1:{port}/v1", "--tries", "2")

    assert result.exit_code == 3
    message = " ".join(result.stderr.split())
    assert "--endpoint: connection refused after 2 tries" in message
    assert not (tmp_path / "out.jsonl").exists()
    assert json.loads((tmp_path / "out.jsonl.report.json").read_text())["written"] == 0


def test_an_unknown_model_exits_2_naming_the_option(
    model: FakeModel, problems_file: Path, tmp_path: Path
) -> None:
    result = generate(problems_file, tmp_path / "out.jsonl", model.url, "--model", "no-such-model")

    assert result.exit_code == 2
    assert "--model: the endpoint refused the request with HTTP 404" in " ".join(result.stderr.split())


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({"id": "f", "statement": "s", "gold_solution": "def f(): pass\n", "kind": "function",
          "entry_point": "f"}, "problem 'f': kind: tests can be generated for stdin_stdout problems only"),
        ({"id": "x", "statement": "s"}, "untested.jsonl:1: gold_solution: missing"),
    ],
)  # fmt: skip
def test_bad_input_exits_2_naming_the_field(
    record: dict[str, Any], expected: str, model: FakeModel, tmp_path: Path
) -> None:
    problems_file = tmp_path / "untested.jsonl"
    problems_file.write_text(json.dumps(record) + "\n")

    result = generate(problems_file, tmp_path / "out.jsonl", model.url)

    assert result.exit_code == 2 and expected in " ".join(result.stderr.split())
    assert model.requests == []


def test_an_endpoint_that_is_not_a_url_exits_2(problems_file: Path, tmp_path: Path) -> None:
    result = generate(problems_file, tmp_path / "out.jsonl", "localhost:8000")
    assert result.exit_code == 2 and "--endpoint: expected an http(s) URL" in result.stderr
