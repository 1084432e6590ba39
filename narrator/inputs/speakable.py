"""What a listener should hear of a paragraph: no addresses spelled out, no markup left over.

A voice reads ``https://www.example.org/a/b?c=1`` character by character, for seconds,
and nobody listening can use it; it reads ``anna@example.org`` much the same. So:

- a bare web address becomes its site's name (``example.org``); an address in angle
  brackets or parentheses goes the same way;
- an e-mail address is said the way people say one (``anna at example.org``);
- Markdown footnote marks (``[^1]``) and the leftovers of reStructuredText markup (roles
  such as ``:ref:`text```, ``|substitutions|``, trailing ``::``) are dropped.

Plain text that is really reStructuredText or setext Markdown (a README) gets its
headings back (a line underlined with ``====`` or ``----``) and loses its directives
(``.. image::``, ``.. code-block::`` and their indented bodies): see :func:`plain_headings`.
"""

from __future__ import annotations

import re

__all__ = ["plain_headings", "speakable"]

# An address runs over printable ASCII (so it stops at Chinese punctuation and text).
_URL = re.compile(r"(?<![A-Za-z0-9@])(?:https?://|ftp://|www\.)[!#-;=?-~]+", re.IGNORECASE)
_URL_HINT = re.compile(r"://|www\.", re.IGNORECASE)  # what every _URL match contains
_TRAILING = ".,;:!?'"
_EMAIL = re.compile(
    r"<?(?:mailto:)?(?<![A-Za-z0-9._%+-])(?P<user>[A-Za-z0-9._%+-]+)"
    r"@(?P<host>[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)(?![A-Za-z0-9-])>?"
)
_BRACKETED = re.compile(r"<((?:https?|ftp)://[^\s<>]+)>")
_FOOTNOTE_MARK = re.compile(r"\[\^[^\]\s]+\](?::\s*)?")
_REST_ROLE = re.compile(r":[a-z][\w-]*:`([^`<]*?)\s*(?:<[^>]*>)?`")
_REST_SUBST = re.compile(r"\|([\w -]+)\|(?:_{1,2})?")
_REST_LINK = re.compile(r"`([^`<]+?)\s*(?:<[^>]*>)?`_{1,2}")
_LITERAL = re.compile(r"``([^`]+)``")
_DOUBLE_COLON = re.compile(r"\s*::(?=\s|$)")
_SPACES = re.compile(r"[ \t]+")


def _site(host: str) -> str:
    host = host.lower().rstrip(".")
    host = host.split("@")[-1].split(":")[0]  # user:pass@ and :port are never spoken
    return host.removeprefix("www.")


def _say_url(match: re.Match[str]) -> str:
    url = match.group(0)
    kept = ""
    # Sentence punctuation and a closing bracket after an address belong to the sentence.
    while url and (url[-1] in _TRAILING or (url[-1] in ")]" and "(" not in url)):
        kept, url = url[-1] + kept, url[:-1]
    host = re.sub(r"^(?:https?|ftp)://", "", url, flags=re.IGNORECASE)
    host = re.split(r"[/?#]", host, maxsplit=1)[0]
    return _site(host) + kept


def speakable(text: str) -> str:
    """``text`` as it should be spoken: see the module docstring."""
    # Each pattern only where its one necessary character is (most prose has none of
    # them): the regexes cost about a second a megabyte, the look a few milliseconds.
    if "`" in text:  # reST links and roles first: their targets are addresses
        text = _REST_ROLE.sub(r"\1", text)
        text = _REST_LINK.sub(r"\1", text)
    if "<" in text:
        text = _BRACKETED.sub(r"\1", text)
    if "@" in text:
        text = _EMAIL.sub(lambda m: f"{m['user']} at {_site(m['host'])}", text)
    if _URL_HINT.search(text):
        text = _URL.sub(_say_url, text)
    if "[^" in text:
        text = _FOOTNOTE_MARK.sub("", text)
    if "``" in text:
        text = _LITERAL.sub(r"\1", text)
    if "|" in text:
        text = _REST_SUBST.sub(r"\1", text)
    text = _DOUBLE_COLON.sub(":", text) if text.rstrip().endswith("::") else text
    if "  " in text or "\t" in text:  # one space stays one space
        text = _SPACES.sub(" ", text)
    return text.strip()


_UNDERLINE = re.compile(r"^\s*([=\-~^*#+`'\"])\1{2,}\s*$")
_DIRECTIVE = re.compile(r"^\.\.\s+(?:([\w:-]+)::|_[^:]*:|\[[^\]]*\]|\|[^|]*\|)")
# Directives whose body is prose (admonitions and the like): their words are kept.
_PROSE_DIRECTIVES = frozenset(
    "note tip hint important warning caution danger attention error admonition seealso "
    "topic sidebar epigraph highlights pull-quote versionadded versionchanged deprecated".split()
)
_OPTION = re.compile(r"^\s+:[\w-]+:")
_COMMENT = re.compile(r"^\.\.(\s|$)")


def plain_headings(text: str) -> str:
    """Plain text with reST/setext headings turned into ``# Title`` lines, and reST
    directives, comments and link targets (with their indented bodies) removed."""
    lines = text.split("\n")
    # ".. " starts a comment only in a text that is reST at all: prose may start so too.
    rest = any(_DIRECTIVE.match(line) for line in lines)
    out: list[str] = []
    skipping = keeping = False
    i = 0
    while i < len(lines):
        line = lines[i]
        indented = line[:1] in (" ", "\t")
        if skipping or keeping:
            if keeping and indented and not _OPTION.match(line):
                out.append(line.strip())  # an admonition's words, out of their indent
                i += 1
                continue
            if not line.strip() or indented:
                if keeping and not line.strip() and out and out[-1]:
                    out.append("")  # paragraphs of a note stay apart
                i += 1
                continue
            skipping = keeping = False
        directive = _DIRECTIVE.match(line)
        if directive or (rest and _COMMENT.match(line)):
            # A note keeps its words; an image, code or a comment goes with its body.
            keeping = bool(directive and directive.group(1) in _PROSE_DIRECTIVES)
            skipping = not keeping
            if out and out[-1]:
                out.append("")
            i += 1
            continue
        if rest and line.rstrip().endswith("::") and not line.startswith(".."):
            # "...::" introduces a literal block (code): say the sentence, skip the block
            out.append(
                line.rstrip()[:-1] if not line.rstrip().endswith(" ::") else line.rstrip()[:-3]
            )
            skipping = True
            i += 1
            continue
        following = lines[i + 1] if i + 1 < len(lines) else ""
        if _UNDERLINE.match(line) and (not out or not out[-1].strip()):
            # an overline: the title is on the next line, underlined on the one after
            if following.strip() and i + 2 < len(lines) and _UNDERLINE.match(lines[i + 2]):
                out.append(f"# {following.strip()}")
                i += 3
                continue
            i += 1  # a rule on its own: nothing to say
            continue
        if (
            line.strip()
            and not _UNDERLINE.match(line)
            and _UNDERLINE.match(following)
            and len(following.strip()) >= min(3, len(line.strip()))
            and (not out or not out[-1].strip())
        ):
            out.append(f"# {line.strip()}")
            i += 2
            continue
        out.append(line)
        i += 1
    return "\n".join(out)
