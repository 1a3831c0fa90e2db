"""Getting the program out of a completion, and the format reward.

Which block is the program: the last closed fenced block tagged `python`
(also `py`, `python3`; any case). Only when there is none does the last
closed *untagged* block count: small models often drop the tag, but a model
that answers with a ```python block and then shows its sample output in a
bare ``` block must be judged on the python block. Blocks tagged with another
language never count, and an unclosed block (a completion cut off at the
length limit) does not either: its program is truncated.
"""

from __future__ import annotations

import re
from typing import Any

PYTHON_TAGS = frozenset({"python", "py", "python3"})

# An opening fence with an optional language tag, the body, and the next closing fence.
_FENCED_BLOCK = re.compile(r"```[ \t]*([A-Za-z0-9_+.-]*)[^\n]*\n(.*?)```", re.DOTALL)


def completion_text(completion: Any) -> str:
    """The text of a trl completion: a string, or (conversational) the last assistant message's content."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        for message in reversed(completion):
            if isinstance(message, dict) and message.get("role", "assistant") == "assistant":
                return _content_text(message.get("content"))
        return ""
    if isinstance(completion, dict):
        return _content_text(completion.get("content"))
    raise TypeError(f"a completion must be a string or a list of messages, not {type(completion).__name__}")


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}, ...]
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content)


def extract_code(completion: str) -> str | None:
    """The program of `completion` (see the module docstring for which block), or None when there is none."""
    tagged: str | None = None
    untagged: str | None = None
    for match in _FENCED_BLOCK.finditer(completion):
        tag, body = match.group(1).lower(), match.group(2)
        if tag in PYTHON_TAGS:
            tagged = body
        elif not tag:
            untagged = body
    code = tagged if tagged is not None else untagged
    if code is None or not code.strip():
        return None
    return code


def is_well_formed(completion: str) -> bool:
    """True when the completion holds a ```python-tagged block that compiles as Python."""
    code = None
    for match in _FENCED_BLOCK.finditer(completion):
        if match.group(1).lower() in PYTHON_TAGS:
            code = match.group(2)
    if code is None or not code.strip():
        return False
    try:
        compile(code, "<completion>", "exec")  # parses only; nothing runs
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError):
        return False
    return True


def format_reward(completions: list[Any], **kwargs: Any) -> list[float]:
    """trl reward function: 1.0 for a completion with a compilable ```python block, else 0.0.

    No `<think>` convention is required. trl passes dataset columns and the
    trainer state as keyword arguments; this reward needs none of them.
    """
    return [1.0 if is_well_formed(completion_text(c)) else 0.0 for c in completions]


# open-r1's format reward, which the TAROT reference trains with: the whole completion is a
# <think> block then an <answer> block, each on its own lines.
_REFERENCE_FORMAT = re.compile(
    r"^<think>\n.*?\n</think>\n<answer>\n.*?\n</answer>$", re.DOTALL | re.MULTILINE
)


def reference_format_reward(completions: list[Any], **kwargs: Any) -> list[float]:
    """trl reward function, parity with the TAROT reference (opt-in): 1.0 when the completion is
    `<think>\n...\n</think>\n<answer>\n...\n</answer>`, else 0.0."""
    return [1.0 if _REFERENCE_FORMAT.match(completion_text(c)) else 0.0 for c in completions]
