"""The runbook page: docs/runbook.md rendered to one read-only HTML page the service serves.

Alerts link to `<service>/runbook#<alert>`, so the on-call person reads the runbook of the
version that runs. The rendering knows just what the runbook uses (headings, paragraphs,
list items, fenced code, `code`, **bold**, *emphasis*, [links](#anchor)); every piece of
text is HTML-escaped before any tag is added, and links go only to anchors or http(s).
"""

from __future__ import annotations

import html
import importlib.resources
import re

# exporter/runbook.md is a link to docs/runbook.md, so a built wheel carries the runbook.
RUNBOOK_RESOURCE = "runbook.md"
_HEADING = re.compile(r"(#{1,6})\s+(.*)")
_ITEM = re.compile(r"(\s*)(-|\d+\.)\s+(.*)")
_FENCE = "```"
_CODE_SPAN = re.compile(r"(`[^`]+`)")
_INLINE = [
    (re.compile(r"\*\*([^*]+)\*\*"), r"<strong>\1</strong>"),
    (re.compile(r"(?<![\w*])\*([^*\s][^*]*)\*"), r"<em>\1</em>"),
    (re.compile(r"\[([^\]]+)\]\((#[\w-]+|https?://[^\s()]+)\)"), r'<a href="\2">\1</a>'),
]
_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem}}
pre{{background:#f4f4f4;padding:.75rem;overflow-x:auto}}code{{font-size:.92em}}
.item{{margin:.2rem 0 .2rem 1.5rem}}</style></head>
<body>
{body}
</body></html>
"""


def load_markdown() -> str:
    return importlib.resources.files(__package__).joinpath(RUNBOOK_RESOURCE).read_text("utf-8")


def anchor(title: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^a-z0-9 _-]", "", title.strip().lower()).replace(" ", "-")


def render(markdown: str) -> str:
    """The whole page; the first heading is its title."""
    blocks: list[str] = []
    paragraph: list[str] = []
    code: list[str] | None = None
    title = "Runbook"

    def flush() -> None:
        if paragraph:
            css = ' class="item"' if _ITEM.fullmatch(paragraph[0]) else ""
            blocks.append(f"<p{css}>{_inline(' '.join(p.strip() for p in paragraph))}</p>")
            paragraph.clear()

    for line in markdown.splitlines():
        if code is not None:
            if line.strip().startswith(_FENCE):
                blocks.append("<pre><code>" + html.escape("\n".join(code)) + "</code></pre>")
                code = None
            else:
                code.append(line)
        elif line.strip().startswith(_FENCE):
            flush()
            code = []
        elif heading := _HEADING.fullmatch(line):
            flush()
            level, text = len(heading.group(1)), heading.group(2)
            title = text if level == 1 else title
            blocks.append(f'<h{level} id="{anchor(text)}">{_inline(text)}</h{level}>')
        elif not line.strip():
            flush()
        else:
            if _ITEM.fullmatch(line):
                flush()
            paragraph.append(line)
    flush()
    return _PAGE.format(title=html.escape(title), body="\n".join(blocks))


def _inline(text: str) -> str:
    """Code spans verbatim, the rest with emphasis and links; all of it escaped first."""
    parts = []
    for part in _CODE_SPAN.split(text):
        if part.startswith("`") and part.endswith("`") and len(part) > 1:
            parts.append(f"<code>{html.escape(part[1:-1])}</code>")
            continue
        escaped = html.escape(part, quote=True)
        for pattern, replacement in _INLINE:
            escaped = pattern.sub(replacement, escaped)
        parts.append(escaped)
    return "".join(parts)
