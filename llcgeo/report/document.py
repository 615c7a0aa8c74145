"""A report as a list of blocks, written out as Markdown or as self-contained HTML.

Both outputs come from the same blocks, so the two files always say the same thing. Paragraph
text is Markdown with ``**bold**``, ``*italic*`` and ```code``` inline marks; in HTML everything
is escaped first and only those marks are turned into tags, so no text can inject markup.
Headings and table cells are plain text in both, but for one mark: a cell's ``[text](#anchor)``
links to the heading or image given that ``anchor`` (:func:`anchor_of` makes one from a name).

>>> blocks = [Heading("Title <b>", 1), Paragraph("a **bold** *new* `x < y`")]
>>> print(to_markdown(blocks))
# Title &lt;b>
<BLANKLINE>
a **bold** *new* `x < y`
<BLANKLINE>
>>> "<strong>bold</strong> <em>new</em> <code>x &lt; y</code>" in to_html(blocks, "t")
True
>>> page = to_html([Heading("Scaling", anchor="scaling"), Table(("see",), (("[it](#scaling)",),))],
...                "t")
>>> '<h2 id="scaling">' in page and '<td><a href="#scaling">it</a></td>' in page
True
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass

VERDICT_CLASSES = {"agree": "agree", "disagree": "disagree", "inconclusive": "inconclusive"}
ANCHOR = re.compile(r"[a-z0-9][a-z0-9-]*")
LINK = re.compile(r"\[([^\]\n]+)\]\(#([a-z0-9][a-z0-9-]*)\)")  # in a cell, after escaping


def anchor_of(name: str) -> str:
    """An anchor for ``name``: lower case, runs of other characters one hyphen.

    >>> anchor_of("smuggled_bias: Figure 2")
    'smuggled-bias-figure-2'
    """
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "section"


def _checked_anchor(anchor: str) -> str:
    if anchor and not ANCHOR.fullmatch(anchor):
        raise ValueError(f"an anchor is lower-case letters, digits and hyphens, got {anchor!r}")
    return anchor


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2
    anchor: str = ""  # the target of ``[text](#anchor)`` links in table cells

    def __post_init__(self):
        _checked_anchor(self.anchor)


@dataclass(frozen=True)
class Paragraph:
    """Markdown text; blank lines separate paragraphs, lines starting ``- `` form a list."""

    text: str


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    """Cells are plain text; a cell holding a verdict word is highlighted."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Image:
    """A PNG shown inline: linked by file name in Markdown, embedded in HTML."""

    file: str
    alt: str
    png: bytes
    anchor: str = ""

    def __post_init__(self):
        _checked_anchor(self.anchor)


Block = Heading | Paragraph | Bullets | Table | Image


def to_markdown(blocks: list[Block]) -> str:
    return "\n".join(_markdown(block) for block in blocks)


def _markdown(block: Block) -> str:
    # an explicit anchor, since viewers make a heading's own from its text each their own way
    target = f'<a id="{block.anchor}"></a>\n\n' if getattr(block, "anchor", "") else ""
    return target + _markdown_body(block)


def _markdown_body(block: Block) -> str:
    if isinstance(block, Heading):
        return f"{'#' * block.level} {_plain(block.text)}\n"
    if isinstance(block, Paragraph):
        return block.text.strip() + "\n"
    if isinstance(block, Bullets):
        return "".join(f"- {item}\n" for item in block.items)
    if isinstance(block, Table):
        lines = [_markdown_row(block.header), "|" + "---|" * len(block.header)]
        lines += [_markdown_row(tuple(_mark_verdict(cell) for cell in row)) for row in block.rows]
        return "\n".join(lines) + "\n"
    return f"![{_plain(block.alt)}]({block.file})\n"


def _markdown_row(cells: tuple[str, ...]) -> str:
    return "| " + " | ".join(_plain(c).replace("|", "\\|").replace("\n", " ") for c in cells) + " |"


def _plain(text: str) -> str:
    # Markdown passes "<name" through as raw HTML, which a viewer would hide; "&lt;" shows "<".
    # A "<" before a space or digit ("ESS < 100") cannot open a tag and stays readable as is.
    return re.sub(r"<(?=[A-Za-z/!?])", "&lt;", text)


def _mark_verdict(cell: str) -> str:
    return f"**{cell}**" if cell in ("disagree", "inconclusive") else cell


STYLE = """
body { font-family: system-ui, sans-serif; max-width: 72rem; margin: 2rem auto; padding: 0 1rem;
       line-height: 1.45; color: #222; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.88rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
code { background: #f4f4f4; padding: 0 0.2rem; }
img { max-width: 100%; }
.agree { background: #e3f4e1; }
.disagree { background: #f9dcdc; font-weight: bold; }
.inconclusive { background: #fbf0cf; font-weight: bold; }
.scroll { overflow-x: auto; }
"""


def to_html(blocks: list[Block], title: str) -> str:
    """A complete HTML page with inline CSS and embedded images: no external references."""
    body = "\n".join(_html(block) for block in blocks)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n"
        f"<body>\n{body}\n</body>\n</html>\n"
    )


def _html(block: Block) -> str:
    if isinstance(block, Heading):
        target = f' id="{block.anchor}"' if block.anchor else ""
        return f"<h{block.level}{target}>{html.escape(block.text)}</h{block.level}>"
    if isinstance(block, Paragraph):
        return "\n".join(_html_chunk(chunk) for chunk in re.split(r"\n\s*\n", block.text.strip()))
    if isinstance(block, Bullets):
        return _html_list(block.items)
    if isinstance(block, Table):
        return _html_table(block)
    data = base64.b64encode(block.png).decode("ascii")
    target = f' id="{block.anchor}"' if block.anchor else ""
    return f'<p{target}><img alt="{html.escape(block.alt)}" src="data:image/png;base64,{data}"></p>'


def _html_chunk(chunk: str) -> str:
    lines = chunk.splitlines()
    if all(line.startswith("- ") for line in lines):
        return _html_list(tuple(line[2:] for line in lines))
    return f"<p>{_inline(chunk)}</p>"


def _html_list(items: tuple[str, ...]) -> str:
    return "<ul>\n" + "".join(f"<li>{_inline(item)}</li>\n" for item in items) + "</ul>"


def _html_table(table: Table) -> str:
    head = "".join(f"<th>{html.escape(cell)}</th>" for cell in table.header)
    rows = "".join(
        "<tr>" + "".join(_html_cell(cell) for cell in row) + "</tr>\n" for row in table.rows
    )
    return f'<div class="scroll"><table>\n<tr>{head}</tr>\n{rows}</table></div>'


def _html_cell(cell: str) -> str:
    css = VERDICT_CLASSES.get(cell)
    attribute = f' class="{css}"' if css else ""
    linked = LINK.sub(r'<a href="#\2">\1</a>', html.escape(cell))
    return f"<td{attribute}>{linked}</td>"


def _inline(text: str) -> str:
    # Escape first, then turn the few Markdown marks into tags: the marks survive escaping
    # unchanged, and nothing else in the text can become markup.
    escaped = html.escape(text)
    escaped = re.sub(r"``(.+?)``", r"<code>\1</code>", escaped)
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
    escaped = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", escaped, flags=re.S)
    # Single stars mark emphasis only around a word, so "a*b" or "2 * 3" stay as they are.
    return re.sub(r"(?<![\w*])\*(\S[^*]*?\S|\S)\*(?![\w*])", r"<em>\1</em>", escaped)
