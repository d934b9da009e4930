"""Print the README's command under a heading, so that CI runs exactly what the README says.

    python .ci/readme_command.py "Run the tests"

prints the body of the first ```bash fenced block under the level-2 heading (``## ...``) with
exactly that text, up to the next level-2 heading. Exit status 2, with one line naming the
heading, if the heading or its bash block is missing. Standard library only.
"""

from __future__ import annotations

import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def command(heading: str, text: str) -> str:
    """The body of the first ```bash block under ``## heading`` in ``text``; LookupError names
    what is missing."""
    lines = text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.rstrip() == f"## {heading}")
    except StopIteration:
        raise LookupError(f'README.md has no heading "## {heading}"') from None
    fence, body = "", None  # the open fence ("" outside a block); body: lines of a bash block
    for line in lines[start + 1:]:
        stripped = line.strip()
        if not fence:
            if line.startswith("## "):
                break
            if stripped.startswith("```"):
                fence = stripped[:len(stripped) - len(stripped.lstrip("`"))]
                body = [] if stripped[len(fence):].strip() == "bash" else None
        elif stripped == fence:
            if body is not None:
                return "\n".join(body) + "\n"
            fence = ""
        elif body is not None:
            body.append(line)
    raise LookupError(f'README.md has no ```bash block under "## {heading}"')


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print('usage: python .ci/readme_command.py "<README heading text>"', file=sys.stderr)
        return 2
    try:
        print(command(argv[0], README.read_text(encoding="utf-8")), end="")
    except LookupError as error:
        print(error, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
