"""Which fenced block of a completion is the program."""

from __future__ import annotations

import pytest

from tarot_jobs.rewards import completion_text, extract_code


def test_the_last_python_block_wins() -> None:
    text = "```python\nprint(1)\n```\nthen\n```python\nprint(2)\n```\n"
    assert extract_code(text) == "print(2)\n"


@pytest.mark.parametrize("tag", ["python", "py", "Python3", "PYTHON"])
def test_python_tags_are_recognised(tag: str) -> None:
    assert extract_code(f"```{tag}\nx = 1\n```") == "x = 1\n"


def test_a_bare_block_counts_only_when_there_is_no_python_block() -> None:
    assert extract_code("```\nprint(1)\n```") == "print(1)\n"
    # A python block followed by sample output in a bare block: the python block is the program.
    assert extract_code("```python\nprint(3)\n```\nOutput:\n```\n3\n```") == "print(3)\n"


def test_other_languages_unclosed_and_empty_blocks_are_not_programs() -> None:
    assert extract_code("```bash\necho hi\n```") is None
    assert extract_code("```python\nprint(1)\n") is None  # cut off at the length limit
    assert extract_code("```python\n\n```") is None
    assert extract_code("print(1)") is None


def test_completion_text_of_conversational_completions() -> None:
    messages = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "first"},
        {"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
    ]
    assert completion_text(messages) == "ab"
    assert completion_text("plain") == "plain"
    with pytest.raises(TypeError, match="string or a list of messages"):
        completion_text(42)
