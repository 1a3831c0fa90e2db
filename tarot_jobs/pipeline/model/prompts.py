"""The one prompt every stage shows the model for a problem.

Probe, training and evaluation must ask the same question, or the probe would
measure something other than what training optimises. The prompt is rendered
with the tokenizer's chat template into plain text, so trl receives standard
(non-conversational) prompts and the completions reach the rewards as strings.
"""

from __future__ import annotations

from typing import Any

from tarot_jobs.problems.model import Problem
from tarot_jobs.sandbox.types import ProgramKind

ANSWER_FORMAT = "Answer with a single ```python code block."


def user_message(problem: Problem) -> str:
    """The user turn: the statement and what kind of program to write."""
    if problem.kind is ProgramKind.FUNCTION:
        task = f"Write the Python function `{problem.entry_point}` described above."
    else:
        task = "Write a complete Python 3 program that reads standard input and writes standard output."
    return f"{problem.statement.strip()}\n\n{task} {ANSWER_FORMAT}"


def reference_answer(problem: Problem) -> str:
    """The gold solution in the shape the rewards expect from the model."""
    return f"```python\n{problem.gold_solution.strip()}\n```"


def render_prompt(tokenizer: Any, problem: Problem, max_prompt_tokens: int | None = None) -> str:
    """The chat-formatted prompt text, ending where the assistant's answer starts.

    trl no longer truncates prompts itself, so an over-long statement is cut
    here (its end is dropped, the instruction and the chat markers are kept).
    """
    text = _render(tokenizer, user_message(problem))
    if max_prompt_tokens is None or _length(tokenizer, text) <= max_prompt_tokens:
        return text
    statement_ids = tokenizer(problem.statement, add_special_tokens=False)["input_ids"]
    overhead = _length(tokenizer, text) - len(statement_ids)
    keep = max(max_prompt_tokens - overhead - 1, 0)
    cut = tokenizer.decode(statement_ids[:keep], skip_special_tokens=True)
    shortened = problem.model_copy(update={"statement": cut.strip() or "(statement truncated)"})
    return _render(tokenizer, user_message(shortened))


def _render(tokenizer: Any, message: str) -> str:
    if getattr(tokenizer, "chat_template", None):
        rendered = tokenizer.apply_chat_template(
            [{"role": "user", "content": message}], tokenize=False, add_generation_prompt=True
        )
        return str(rendered)
    # Base models without a chat template get a plain instruction layout.
    return f"{message}\n\n"


def _length(tokenizer: Any, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])
