"""How a study hands its table over: printed, then written to the file it was asked to write."""

from __future__ import annotations

from pathlib import Path


def publish(lines: list[str], out: str | Path) -> str:
    """Join ``lines`` into a Markdown text, print it and write it to ``out`` (parent folders made)."""
    text = "\n".join(lines) + "\n"
    print(text)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(text)
    return text
