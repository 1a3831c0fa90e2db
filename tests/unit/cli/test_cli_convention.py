"""One CLI convention for every command: exit 0 success, 1 the work failed, 2 bad input or usage (the
message names the field, argument or file), 3 a required service is unavailable."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from tarot_jobs.cli import app
from tarot_jobs.cli.output import RESULT_FILE_VARIABLE
from tarot_jobs.problems.bundled import load_bundled

runner = CliRunner()


def tarot(*args: str | Path, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, [str(a) for a in args], env=env)
    return result.exit_code, result.stdout, " ".join(result.stderr.split())


def _commands() -> list[list[str]]:
    """Every leaf command of `tarot`, as its words (e.g. ["data", "check"])."""
    found: list[list[str]] = []

    def walk(command: Any, words: list[str]) -> None:
        subcommands = getattr(command, "commands", None)  # a group (typer vendors its own click)
        if subcommands:
            for name, sub in subcommands.items():
                walk(sub, [*words, name])
        else:
            found.append(words)

    walk(typer.main.get_command(app), [])
    return found


COMMANDS = _commands()


def test_every_documented_command_is_registered() -> None:
    names = {" ".join(words) for words in COMMANDS}
    assert {
        "validate",
        "score",
        "probe",
        "select",
        "train",
        "evaluate",
        "run",
        "data check",
        "data prepare",
        "curriculum list",
        "curriculum show",
        "sandbox serve",
        "sandbox exec",
    } <= names


@pytest.mark.parametrize("words", COMMANDS, ids=" ".join)
def test_help_exits_0_and_an_unknown_option_exits_2_naming_it(words: list[str]) -> None:
    assert tarot(*words, "--help")[0] == 0
    code, _, err = tarot(*words, "--no-such-option")
    assert code == 2 and "--no-such-option" in err


@pytest.fixture
def bad_spec(tmp_path: Path) -> Path:
    spec = tmp_path / "spec.yaml"
    spec.write_text("training: {maxStep: 3}\n")
    return spec


@pytest.mark.parametrize(
    "words",
    [
        ["validate"],
        ["data", "prepare", "--out", "OUT"],
        ["probe", "--out", "OUT"],
        ["select", "--out", "OUT"],
        ["train", "--phase", "0", "--out", "OUT"],
        ["evaluate", "--out", "OUT"],
        ["run", "--workdir", "OUT"],
    ],
    ids=" ".join,
)
def test_every_spec_command_exits_2_naming_the_bad_field(
    words: list[str], bad_spec: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    args = [str(out) if word == "OUT" else word for word in words]
    command, options = args[: 2 if args[0] == "data" else 1], args[2 if args[0] == "data" else 1 :]
    code, _, err = tarot(*command, bad_spec, *options)
    assert code == 2 and "training.maxStep" in err
    assert not out.exists()  # nothing ran


def test_missing_spec_file_is_bad_input_naming_the_file(tmp_path: Path) -> None:
    code, _, err = tarot("probe", tmp_path / "absent.yaml", "--out", tmp_path / "out")
    assert code == 2 and "absent.yaml" in err


def test_curriculum_exit_codes() -> None:
    assert tarot("curriculum", "list")[0] == 0
    assert tarot("curriculum", "show", "forward")[0] == 0
    code, _, err = tarot("curriculum", "show", "sideways")
    assert code == 2 and "sideways" in err


def test_select_without_the_capability_it_needs_is_bad_input(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("curriculum: {policy: auto}\n")
    code, _, err = tarot("select", spec, "--out", tmp_path / "out")
    assert code == 2 and "capability" in err


def test_score_exit_codes(tmp_path: Path) -> None:
    completions = tmp_path / "completions.jsonl"
    completions.write_text(json.dumps({"problem_id": "nope", "completion": "x"}) + "\n")
    code, _, err = tarot("score", "bundled", completions)
    assert code == 2 and "completions.jsonl:1" in err and "'nope'" in err
    code, _, err = tarot("score", "bundled", completions, "--policy", "backwards")
    assert code == 2 and "backwards" in err
    code, _, err = tarot("score", tmp_path / "absent.jsonl", completions)
    assert code == 2 and "absent.jsonl" in err


def test_sandbox_exec_exit_codes(tmp_path: Path) -> None:
    program = tmp_path / "p.py"
    program.write_text("print(input())\n")
    stdin, expect = tmp_path / "in.txt", tmp_path / "out.txt"
    stdin.write_text("7\n")
    expect.write_text("7\n")
    assert tarot("sandbox", "exec", program, "--stdin", stdin, "--expect", expect)[0] == 0
    expect.write_text("8\n")
    assert tarot("sandbox", "exec", program, "--stdin", stdin, "--expect", expect)[0] == 1  # failed
    code, _, err = tarot("sandbox", "exec", program, "--tests", stdin, "--stdin", stdin)
    assert code == 2 and "--tests" in err
    code, _, err = tarot("sandbox", "exec", tmp_path / "absent.py")
    assert code == 2 and "absent.py" in err


def test_data_check_exit_codes(tmp_path: Path) -> None:
    code, _, err = tarot("data", "check", tmp_path / "absent.jsonl")
    assert code == 2 and "absent.jsonl" in err
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    one = tmp_path / "one.jsonl"
    one.write_text(load_bundled("train")[0].model_dump_json() + "\n")
    code, _, err = tarot("data", "check", one, "--format", "canonical", "--out", blocker / "clean.jsonl")
    assert code == 1 and "clean.jsonl" in err  # the work (writing the output) failed


class _Broken(BaseHTTPRequestHandler):
    """A sandbox service that is up but broken: every request answers HTTP 500."""

    def do_POST(self) -> None:
        self.send_response(500)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"error": "helpers crashed"}')

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def broken_sandbox() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Broken)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_an_unavailable_sandbox_service_exits_3(tmp_path: Path, broken_sandbox: str) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"dataset: {{source: bundled, check: true}}\nsandbox: {{url: '{broken_sandbox}'}}\n")
    code, _, err = tarot("data", "prepare", spec, "--out", tmp_path / "data")
    assert code == 3 and "sandbox" in err and "500" in err
    assert not (tmp_path / "data").exists()
    code, _, err = tarot("probe", spec, "--out", tmp_path / "probe")
    assert code == 3 and "sandbox" in err
    one = tmp_path / "one.jsonl"
    one.write_text(load_bundled("train")[0].model_dump_json() + "\n")
    code, _, err = tarot("data", "check", one, "--format", "canonical", "--sandbox-url", broken_sandbox)
    assert code == 3 and "sandbox" in err


def test_data_prepare_writes_the_stage_files_and_its_result(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("dataset: {source: bundled, check: false}\n")
    out, result = tmp_path / "data", tmp_path / "result.json"
    code, stdout, err = tarot("data", "prepare", spec, "--out", out, env={RESULT_FILE_VARIABLE: str(result)})
    assert code == 0, err
    train, heldout = len(load_bundled("train")), len(load_bundled("heldout"))
    # check: false, so the in-process sandbox scored nothing (the result says so rather than omitting it).
    sandbox = {"backend": "in-process", "scoredTests": 0}
    expected = {"train": train, "heldout": heldout, "dropped": 0, "sandbox": sandbox}
    assert json.loads(result.read_text()) == expected
    assert len((out / "train.jsonl").read_text().splitlines()) == train
    assert len((out / "heldout.jsonl").read_text().splitlines()) == heldout
    assert json.loads((out / "check.json").read_text())["usable"] == {"train": train, "heldout": heldout}
    assert f"{train} training and {heldout} held-out problems" in " ".join(stdout.split())


def test_without_the_variable_no_result_file_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(RESULT_FILE_VARIABLE, raising=False)
    monkeypatch.chdir(tmp_path)
    spec = tmp_path / "spec.yaml"
    spec.write_text("dataset: {source: bundled, check: false}\n")
    assert tarot("data", "prepare", spec, "--out", tmp_path / "data")[0] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "spec.yaml"]
