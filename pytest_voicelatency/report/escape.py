"""Names are data: one escaping function per output, for every string that came from spans or
files (stage and metric names, session and turn ids, file names, messages quoting them). Pure.

* :func:`terminal`: control characters (ESC and the rest of C0/C1, DEL, newlines, tabs) and
  other invisible or layout-breaking characters (bidi overrides, line separators) are shown
  escaped, Python-style (``\\x1b``, ``\\n``, ``\\u202e``), so no string can colour, move the
  cursor, set an OSC title/hyperlink or forge a table row.
* :func:`markdown`: an inline code span that cannot be broken out of: its fence is one backtick
  longer than any run of backticks inside, control characters are escaped as for the terminal
  and ``|`` (a table cell separator) is escaped. Inside a code span Markdown shows raw HTML,
  links and ``@mentions`` literally.
* :func:`xml`: only characters XML 1.0 allows; the others (ESC, NUL, lone surrogates, U+FFFE)
  are shown escaped (``\\x1b``), so the text stays readable and the document well-formed.
  Markup characters (``<``, ``&``) are left to the XML writer (pytest's junitxml escapes them).
* JSON writes strings as they are: :func:`json.dumps` escapes what JSON needs.

>>> terminal("asr\\x1b[2J\\nALL GATES PASSED")
'asr\\\\x1b[2J\\\\nALL GATES PASSED'
>>> markdown("a`b")
'``a`b``'
>>> xml("asr\\x1b")
'asr\\\\x1b'
"""

from __future__ import annotations

import functools
import re

__all__ = ["terminal", "markdown", "xml", "markdown_text"]

# C0 and C1 controls, DEL, and format/separator characters that reorder or break lines.
_UNSAFE_TERMINAL = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff\ud800-\udfff]")


@functools.cache
def _xml_invalid() -> re.Pattern[str]:
    """Characters XML 1.0 forbids; compiled on first use (a ~7 ms compile every report needn't
    pay: only JUnit properties need it)."""
    return re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _shown(ch: str) -> str:
    code = ord(ch)
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
    if ch in named:
        return named[ch]
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def terminal(text: object) -> str:
    """``text`` safe to print on a terminal: one line, no control sequences (see above)."""
    return _UNSAFE_TERMINAL.sub(lambda m: _shown(m.group()), str(text))


def markdown(text: object) -> str:
    """``text`` as an inline code span nothing can break out of (see above)."""
    body = terminal(text).replace("|", "\\|")
    longest = max((len(run) for run in re.findall("`+", body)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if body.startswith("`") or body.endswith("`") or not body.strip() else ""
    return f"{fence}{pad}{body}{pad}{fence}"


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+!|~&])")


def markdown_text(text: object) -> str:
    """``text`` (a message) as Markdown prose that renders literally: one line, every
    character Markdown or HTML could interpret backslash-escaped, so a message quoting a
    hostile name makes no link, tag, mention or table cell (a word joiner after ``@`` stops
    GitHub's mentions, which a backslash does not)."""
    return _MD_SPECIAL.sub(r"\\\1", terminal(text)).replace("@", "@\u2060")


def xml(text: object) -> str:
    """``text`` with only XML 1.0 characters; others shown escaped (see above)."""
    return _xml_invalid().sub(lambda m: _shown(m.group()), str(text))
