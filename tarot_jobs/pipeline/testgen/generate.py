"""The generation loop: for each problem, ask the model for each tier's inputs, let the gold solution
answer them, run `data check` on the result and append the problem to the output.

Resumable: the output is canonical jsonl (what `load_problems` reads), one line per finished problem,
each appended with one write and flushed to disk; a rerun skips the problems already there (a line torn
by a killed run is cut off first). A problem is written only when it is finished: its tests checked, and
(unless missing tiers are allowed) a test in every tier; otherwise the report says why and a rerun tries
it again. Up to `concurrency` problems are in flight; the client bounds the requests themselves.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tarot_jobs.pipeline.testgen.answers import ParsedAnswer, parse_answer
from tarot_jobs.pipeline.testgen.endpoint import ChatClient
from tarot_jobs.pipeline.testgen.outputs import DropReason, GoldTests, gold_tests
from tarot_jobs.pipeline.testgen.prompts import tier_messages
from tarot_jobs.pipeline.testgen.report import GenerationReport, NotWritten
from tarot_jobs.problems.check import check_problems
from tarot_jobs.problems.errors import ProblemSourceError
from tarot_jobs.problems.model import ALL_TIERS, Problem, Tier
from tarot_jobs.problems.records import problem_to_record
from tarot_jobs.problems.untested import UntestedProblem
from tarot_jobs.sandbox.types import SandboxBackend


@dataclass(frozen=True)
class GenerationOptions:
    tests_per_tier: int = 5
    concurrency: int = 4  # problems in flight
    timeout_s: float = 10.0  # per gold run
    memory_limit_mb: int = 512
    sandbox_retries: int = 2
    require_all_tiers: bool = True


class OutputFile:
    """The resumable output: canonical jsonl, appended one finished problem per line."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def done_ids(self) -> set[str]:
        """The ids already written; a last line without its newline (a killed write) is removed."""
        if not self.path.exists():
            return set()
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            with self.path.open("r+b") as out:
                out.truncate(data.rfind(b"\n") + 1)
            data = data[: data.rfind(b"\n") + 1]
        ids: set[str] = set()
        for number, line in enumerate(data.decode("utf-8").split("\n"), start=1):
            if line.strip():
                try:
                    ids.add(str(json.loads(line)["id"]))
                except (ValueError, KeyError, TypeError):
                    raise ProblemSourceError(
                        f"{self.path}:{number}: not a problem this command wrote (no JSON object with an "
                        "`id`); pass another --out or remove the file"
                    ) from None
        return ids

    def append(self, problem: Problem) -> None:
        line = json.dumps(problem_to_record(problem), ensure_ascii=False) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as out:
            out.write(line)
            out.flush()
            os.fsync(out.fileno())


def pending(problems: Sequence[UntestedProblem], output: OutputFile) -> list[UntestedProblem]:
    """The problems not yet in `output` (what a rerun still has to do), in input order."""
    done = output.done_ids()
    return [problem for problem in problems if problem.id not in done]


async def generate_tests(
    problems: Sequence[UntestedProblem],
    client: ChatClient,
    backend: SandboxBackend,
    output: OutputFile,
    report: GenerationReport,
    options: GenerationOptions,
    on_problem: Callable[[], None] = lambda: None,
) -> None:
    """Generate the tests of `problems` (see `pending`) into `output`, counting into `report`.

    `on_problem` is called after each problem (written or not). An EndpointError or SandboxUnavailable
    stops the run (the problems already written stay; a rerun goes on from there)."""
    generator = _Generator(client, backend, output, report, options, on_problem)
    queue: Iterator[UntestedProblem] = iter(problems)

    async def worker() -> None:
        for problem in queue:  # one shared iterator: each problem is taken by one worker
            await generator.one(problem)

    workers = [asyncio.create_task(worker()) for _ in range(min(options.concurrency, len(problems)))]
    if not workers:
        return
    finished, unfinished = await asyncio.wait(workers, return_when=asyncio.FIRST_EXCEPTION)
    for task in unfinished:
        task.cancel()
    await asyncio.gather(*unfinished, return_exceptions=True)
    for task in finished:
        task.result()  # the first failure, if any, is raised here


@dataclass
class _Generator:
    client: ChatClient
    backend: SandboxBackend
    output: OutputFile
    report: GenerationReport
    options: GenerationOptions
    on_problem: Callable[[], None]

    async def one(self, problem: UntestedProblem) -> None:
        await self._generate(problem)
        self.on_problem()

    async def _generate(self, problem: UntestedProblem) -> None:
        wanted = self.options.tests_per_tier
        texts = await asyncio.gather(
            *(self.client.complete(tier_messages(problem.statement, tier, wanted)) for tier in ALL_TIERS)
        )
        answers = {tier: parse_answer(text, wanted) for tier, text in zip(ALL_TIERS, texts, strict=True)}
        for tier, answer in answers.items():
            self.report.add(tier, proposed=answer.proposed, dropped=_answer_drops(answer))
        gold = await asyncio.to_thread(
            gold_tests,
            problem,
            {tier: answer.inputs for tier, answer in answers.items()},
            self.backend,
            timeout_s=self.options.timeout_s,
            memory_limit_mb=self.options.memory_limit_mb,
            retries=self.options.sandbox_retries,
            reason=f"input by {self.client.options.model}; output by the gold solution",
        )
        for tier, dropped in gold.dropped.items():
            self.report.add(tier, dropped=dropped)
        if gold.failure:
            self._not_written(problem, gold.failure, {})
            return
        await self._check_and_write(problem, gold)

    async def _check_and_write(self, problem: UntestedProblem, gold: GoldTests) -> None:
        generated = Counter(test.tier for test in gold.tests if test.tier is not None)
        if not gold.tests and not problem.tests:
            self._not_written(problem, "no test kept", generated)
            return
        check = await asyncio.to_thread(
            check_problems,
            [problem.with_tests(gold.tests)],
            self.backend,
            timeout_s=self.options.timeout_s,
            memory_limit_mb=self.options.memory_limit_mb,
            require_all_tiers=False,
            retries=self.options.sandbox_retries,
        )
        for bad in check.invalid:
            if bad.tier is not None and bad.test_index >= len(problem.tests):  # one of the generated tests
                generated[bad.tier] -= 1
                self.report.add(bad.tier, dropped={DropReason(bad.reason.value): 1})
        if check.infrastructure_errors or not check.cleaned:
            why = check.unusable[0].why if check.unusable else "the data check left nothing"
            self._not_written(problem, why, generated)
            return
        checked = check.cleaned[0]
        missing = [tier for tier in ALL_TIERS if not any(test.tier is tier for test in checked.tests)]
        if missing and self.options.require_all_tiers:
            names = ", ".join(tier.value for tier in missing)
            self._not_written(problem, f"no test kept in tier(s) {names}", generated)
            return
        self.output.append(checked)
        self.report.written += 1
        for tier, count in generated.items():
            self.report.add(tier, kept=count)

    def _not_written(self, problem: UntestedProblem, why: str, kept: Mapping[Tier, int]) -> None:
        """Leave `problem` for a rerun; the tests it had kept are counted as dropped with it."""
        self.report.not_written.append(NotWritten(problem_id=problem.id, why=why))
        for tier, count in kept.items():
            self.report.add(tier, dropped={DropReason.PROBLEM_NOT_WRITTEN: count})


def _answer_drops(answer: ParsedAnswer) -> dict[DropReason, int]:
    return {DropReason.UNPARSEABLE: answer.unparseable, DropReason.SURPLUS: answer.surplus}
