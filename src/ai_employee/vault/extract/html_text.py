"""The visible text of an HTML document, for previews of HTML-only email bodies."""

from __future__ import annotations

import re
from html.parser import HTMLParser


class _HtmlText(HTMLParser):
    """Collects the visible text of an HTML document, a line per block element."""

    _SKIP = frozenset({"script", "style", "title", "template", "noscript"})
    _BLOCKS = frozenset({"br", "p", "div", "li", "tr", "table", "blockquote", "hr", "pre", "section"})
    _BLOCKS |= {"ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._skipping += tag in self._SKIP
        self.parts.append("\n" if tag in self._BLOCKS else "")

    def handle_endtag(self, tag: str) -> None:
        self._skipping = max(0, self._skipping - (tag in self._SKIP))
        self.parts.append("\n" if tag in self._BLOCKS else "")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            # Whitespace at either end separates this text from its neighbours (`Hello <b>there</b>`).
            text = " ".join(data.split())
            self.parts.append(f"{' ' if data[:1].isspace() else ''}{text}{' ' if data[-1:].isspace() else ''}" or " ")


def html_to_text(html: str) -> str:
    """The visible text of `html`, a line per block element, at most one blank line in a row."""
    parser = _HtmlText()
    parser.feed(html)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).split("\n"))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
