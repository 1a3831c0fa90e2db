"""The prompts that ask a model for test inputs: one template per tier.

Each prompt says what its tier means (TAROT's tiers: basic, intermediate, complex, edge), that only
INPUTS are wanted (the expected outputs are computed by running the reference solution, so the model is
never asked for one), and the exact answer shape: a JSON list of strings, each the whole stdin of one run.
"""

from __future__ import annotations

from tarot_jobs.problems.model import Tier

SYSTEM_PROMPT = (
    "You write test inputs for competitive-programming problems. You never write expected outputs: "
    "a reference solution computes them. Answer with a JSON list of strings and nothing else."
)

# What each tier is for; the same meaning as the tiers of the reward (pipeline.md, TAROT's four tiers).
TIER_GUIDANCE: dict[Tier, str] = {
    Tier.BASIC: (
        "BASIC tests: small, typical inputs that check the main behaviour described in the statement, "
        "like the examples a problem setter shows first. Keep sizes tiny and values simple."
    ),
    Tier.INTERMEDIATE: (
        "INTERMEDIATE tests: moderately sized inputs that combine several rules of the statement, with "
        "mixed values (negative numbers, repeats, unsorted data where allowed) that a naive solution "
        "could get wrong."
    ),
    Tier.COMPLEX: (
        "COMPLEX tests: larger, structured inputs that stress the algorithm (long sequences, many "
        "queries, deep nesting, worst-case patterns) while staying within the statement's constraints. "
        "Keep each input under a few kilobytes."
    ),
    Tier.EDGE: (
        "EDGE tests: boundary inputs: the smallest and largest allowed values and sizes, empty or "
        "single-element cases, all-equal values, and other corner cases the statement allows."
    ),
}

_TEMPLATE = """Problem statement:
---
{statement}
---

The program reads its input from stdin. Write {count} different test inputs for this tier:
{guidance}

Every input must be valid for the statement (respect its format and constraints exactly).
Answer with ONLY a JSON list of {count} strings; each string is the complete stdin of one run, with
"\\n" between lines. Do not write expected outputs, explanations or anything else.
Example of the answer's shape: ["3\\n1 2 3\\n", "1\\n5\\n"]"""


def tier_messages(statement: str, tier: Tier, count: int) -> list[dict[str, str]]:
    """The chat messages that ask for `count` inputs of `tier` for the problem `statement`."""
    user = _TEMPLATE.format(statement=statement.strip(), count=count, guidance=TIER_GUIDANCE[tier])
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]
