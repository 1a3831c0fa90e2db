"""The `toy` problem source: a synthetic family of small programs with discriminating tiered tests.

It exists to show, offline on a CPU, that the training loop makes a model
better (docs/learning.md). Each problem maps every integer of an input line
through four rules tried in order, with constants drawn per problem:

    if x % K == 0:   print(x // K)     edge tier:         multiples of K
    elif x < 0:      print(C - x)      complex tier:      negative numbers
    elif x > T:      print(x OP1 B)    intermediate tier: the threshold rule (numbers around T)
    else:            print(x OP2 A)    basic tier:        1..9

Each tier's tests hold only numbers that reach that tier's rule, so each tier
depends on a different part of the statement: a program that gets the basic
rule right and the others wrong earns exactly the basic tier. Basic numbers
lie below every threshold, so the basic tier does not depend on T, and the
first intermediate test holds T's two sides, so no threshold but T passes it
(earlier versions let a guessed constant `x > 22` earn reward, and let a
basic-only phase pay for raising the threshold; docs/learning.md). A test has
three numbers with three different answers, one per line, so no program that
ignores its input (a constant, `print(1)`, `x > 0`-style guesses) passes a test.

Sources: `toy:train`, `toy:heldout`, `toy:warmup` (optionally `:COUNT`,
e.g. `toy:warmup:400`). The splits never share a constant tuple: each tuple
belongs to one split by a hash of it, so warming a model up on `toy:warmup`
never shows it a training or held-out problem. Everything is deterministic.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from tarot_jobs.problems.model import Problem, TestCase, Tier

TOY = "toy"
SPLITS = {"train": 48, "heldout": 32, "warmup": 256}  # default problem counts
# Share of the constant tuples that belong to each split (by hash bucket of 20).
_BUCKETS = {"heldout": range(0, 3), "train": range(3, 6), "warmup": range(6, 20)}
_OPS = {"+": lambda x, c: x + c, "-": lambda x, c: x - c, "*": lambda x, c: x * c}
_OP_WORDS = {"+": "plus", "-": "minus", "*": "times"}
NUMBERS_PER_TEST = 3
TESTS_PER_TIER = 2


@dataclass(frozen=True)
class ToyRule:
    """The constants of one toy problem."""

    k: int
    c: int
    t: int
    b: int
    op1: str
    a: int
    op2: str

    def key(self) -> str:
        return f"k{self.k}-c{self.c}-t{self.t}-{self.op1}{self.b}-{self.op2}{self.a}"

    def split(self) -> str:
        bucket = int(hashlib.sha256(self.key().encode()).hexdigest(), 16) % 20
        return next(name for name, buckets in _BUCKETS.items() if bucket in buckets)

    def answer(self, x: int) -> int:
        if x % self.k == 0:
            return x // self.k
        if x < 0:
            return self.c - x
        if x > self.t:
            return _OPS[self.op1](x, self.b)
        return _OPS[self.op2](x, self.a)

    def tier_of(self, x: int) -> Tier:
        if x % self.k == 0:
            return Tier.EDGE
        if x < 0:
            return Tier.COMPLEX
        return Tier.INTERMEDIATE if x > self.t else Tier.BASIC

    def threshold_sides(self) -> tuple[int, int]:
        """The largest number the basic rule takes up to T, and the smallest the threshold rule takes."""
        below = max(x for x in range(self.t, 0, -1) if self.tier_of(x) is Tier.BASIC)
        above = min(x for x in range(self.t + 1, self.t + 41) if self.tier_of(x) is Tier.INTERMEDIATE)
        return below, above

    def statement(self) -> str:
        return (
            "Read one line of integers. For each integer x, print one line:\n"
            f"- if x is divisible by {self.k}, print x // {self.k};\n"
            f"- otherwise, if x is negative, print {self.c} - x;\n"
            f"- otherwise, if x is greater than {self.t}, print x {self.op1} {self.b} "
            f"(x {_OP_WORDS[self.op1]} {self.b});\n"
            f"- otherwise, print x {self.op2} {self.a} (x {_OP_WORDS[self.op2]} {self.a})."
        )

    def program(self) -> str:
        return (
            "for x in map(int, input().split()):\n"
            f"    if x % {self.k} == 0:\n"
            f"        print(x // {self.k})\n"
            "    elif x < 0:\n"
            f"        print({self.c} - x)\n"
            f"    elif x > {self.t}:\n"
            f"        print(x {self.op1} {self.b})\n"
            "    else:\n"
            f"        print(x {self.op2} {self.a})\n"
        )


def _draw_rule(rng: random.Random) -> ToyRule:
    return ToyRule(
        k=rng.randint(3, 9),
        c=rng.randint(1, 9),
        t=rng.randint(15, 40),
        b=rng.randint(2, 9),
        op1=rng.choice(list(_OPS)),
        a=rng.randint(1, 9),
        op2=rng.choice(["+", "-"]),
    )


def _tier_numbers(rule: ToyRule, tier: Tier, rng: random.Random, boundary: bool) -> list[int]:
    """NUMBERS_PER_TEST numbers for a test of `tier`, with pairwise different answers.

    Basic numbers are 1..9, below every threshold, so the basic tier does not depend on T.
    The intermediate tier checks the threshold rule; with `boundary` its test holds T's two
    sides, the largest basic number up to T and the smallest intermediate one above it, so a
    program with any other threshold than T fails it.
    """
    ranges = {
        Tier.BASIC: (1, 9),
        Tier.INTERMEDIATE: (rule.t + 1, rule.t + 40),
        Tier.COMPLEX: (-40, -1),
        Tier.EDGE: (-5 * rule.k, 6 * rule.k),
    }
    low, high = ranges[tier]
    candidates = [x for x in range(low, high + 1) if rule.tier_of(x) is tier]
    fixed: list[int] = []
    if boundary and tier is Tier.INTERMEDIATE:
        fixed = list(rule.threshold_sides())
    others = [x for x in candidates if x not in fixed]
    while True:
        picked = fixed + rng.sample(others, NUMBERS_PER_TEST - len(fixed))
        if len({rule.answer(x) for x in picked}) == NUMBERS_PER_TEST:
            return rng.sample(picked, len(picked))


def toy_problem(rule: ToyRule, index: int, split: str) -> Problem:
    rng = random.Random(f"toy-tests-{rule.key()}")
    tests = []
    for tier in (Tier.BASIC, Tier.INTERMEDIATE, Tier.COMPLEX, Tier.EDGE):
        for test in range(TESTS_PER_TIER):
            numbers = _tier_numbers(rule, tier, rng, boundary=test == 0)
            tests.append(
                TestCase(
                    input=" ".join(map(str, numbers)) + "\n",
                    output="".join(f"{rule.answer(x)}\n" for x in numbers),
                    tier=tier,
                    reason=f"the {tier.value} rule",
                )
            )
    return Problem(
        id=f"toy-{split}-{index:04d}",
        statement=rule.statement(),
        gold_solution=rule.program(),
        tests=tests,
        source=f"{TOY}:{split}",
    )


def toy_problems(split: str, count: int | None = None) -> list[Problem]:
    """`count` problems (default SPLITS[split]) of one split, the same ones on every call."""
    if split not in SPLITS:
        raise ValueError(f"unknown toy split {split!r} (expected {', '.join(SPLITS)})")
    wanted = SPLITS[split] if count is None else count
    rng = random.Random(f"toy-rules-{split}")
    seen: set[str] = set()
    problems: list[Problem] = []
    while len(problems) < wanted:
        rule = _draw_rule(rng)
        below, above = rule.threshold_sides()
        if rule.split() != split or rule.key() in seen or rule.answer(below) == rule.answer(above):
            continue  # (a threshold test needs different answers on T's two sides)
        seen.add(rule.key())
        problems.append(toy_problem(rule, len(problems), split))
    return problems


def parse_toy_source(name: str) -> tuple[str, int | None]:
    """`toy:SPLIT[:COUNT]` → (split, count); ValueError naming what is wrong."""
    parts = name.split(":")
    if parts[0] != TOY or len(parts) not in (2, 3):
        raise ValueError(f"{name}: expected toy:SPLIT or toy:SPLIT:COUNT (SPLIT one of {', '.join(SPLITS)})")
    split = parts[1]
    if split not in SPLITS:
        raise ValueError(f"{name}: unknown toy split {split!r} (expected {', '.join(SPLITS)})")
    if len(parts) == 2:
        return split, None
    if not parts[2].isdigit() or int(parts[2]) < 1:
        raise ValueError(f"{name}: COUNT must be a positive integer, got {parts[2]!r}")
    return split, int(parts[2])
