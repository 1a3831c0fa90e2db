"""A model's answer → the candidate test inputs it proposes.

The answer must hold a JSON list of strings (optionally inside a ```json fence, or after some prose: the
outermost [...] is taken). Only strings are inputs: anything else in the list (a number, an object that
claims an `output`) is not used, so nothing the model writes can become an expected output.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

_FENCE = re.compile(r"```[\w+-]*[ \t]*\n(?P<body>.*?)```", re.DOTALL)


@dataclass(frozen=True)
class ParsedAnswer:
    proposed: int  # the items of the answer (an answer that is no list counts as one item)
    inputs: list[str]  # the usable inputs, in the answer's order, at most the number asked for
    unparseable: int  # an answer that is no JSON list counts 1; otherwise its non-string items
    surplus: int  # strings beyond the number asked for


def parse_answer(text: str | None, wanted: int) -> ParsedAnswer:
    """The inputs in `text` (None: the endpoint's answer was not even a chat completion)."""
    items = _json_list(text) if text is not None else None
    if items is None:
        return ParsedAnswer(proposed=1, inputs=[], unparseable=1, surplus=0)
    strings = [_as_stdin(item) for item in items if isinstance(item, str)]
    return ParsedAnswer(
        proposed=len(items),
        inputs=strings[:wanted],
        unparseable=len(items) - len(strings),
        surplus=max(0, len(strings) - wanted),
    )


def _json_list(text: str) -> list[object] | None:
    fenced = _FENCE.search(text)
    candidates = [fenced.group("body")] if fenced else []
    start, end = text.find("["), text.rfind("]")
    if start != -1 and end > start:
        candidates.append(text[start : end + 1])
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        if isinstance(value, list):
            return value
    return None


def _as_stdin(text: str) -> str:
    """stdin ends with a newline, as a file written by a person does (programs reading lines expect it)."""
    return text if text.endswith("\n") else text + "\n"
