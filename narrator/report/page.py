"""The run report as one HTML page.

The page is the morning after an overnight batch: did everything finish, what did it
cost, where to listen, what went wrong. It is one self-contained file (no network, no
script or style from elsewhere; it works from ``file://``): per document its status,
figures, a player with the chapter list and the flagged segments (a link each that
seeks the player), the error and the command that resumes a failed one; for the run its
totals and the pool's timeline as small inline-SVG charts. Audio is linked by its path
relative to the page's folder, so the page and the books move together. Without
JavaScript every link still works (it opens the audio at that time, ``file.wav#t=12.5``);
the script only makes a link seek the player on the page.

No templating library: the page is a few loops, and every value goes through
:func:`html.escape` in one place (:func:`esc`).
"""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path

from ..run.batch import totals
from ..run.pipeline import DocumentReport, RunReport
from ..run.status import Status
from ..util.plural import plural
from .charts import timeline_html
from .data import RunContext
from .format import as_clock, esc

__all__ = ["render_html"]


def _usd(amount: float, price: float) -> str:
    if price == 0:
        return "free"
    return f"${amount:,.2f}" if amount >= 1 else f"${amount:.4f}"


def _href(path: str, folder: Path, base: Path) -> str:
    """``path`` (as the run named it, relative to ``base``) relative to the page's folder."""
    target = (base / path).resolve()
    relative = os.path.relpath(target, folder.resolve())
    return urllib.parse.quote(Path(relative).as_posix())


def _seek(href: str, player: str, start: float, label: str, *, cls: str = "seek") -> str:
    # A media fragment: without the script, the link opens the audio at that time.
    return (
        f'<a class="{cls}" href="{href}#t={start:.3f}" data-player="{player}" '
        f'data-seek="{start:.3f}">{label}</a>'
    )


def _voices_html(doc: DocumentReport) -> str:
    """Who speaks how much in each chapter (a cast of voices)."""
    titles = {n: mark.title for n, mark in enumerate(doc.chapters)}
    rows = []
    for v in doc.voices:
        who = {"": "narrator", "?": "unattributed speech"}.get(v.speaker, v.speaker)
        chapter = titles.get(v.chapter) or f"chapter {v.chapter + 1}"
        rows.append(
            f"<tr><td>{esc(chapter)}</td><td>{esc(who)}</td><td>{esc(v.voice)}</td>"
            f"<td class=num>{v.chunks:,}</td><td class=num>{v.characters:,}</td></tr>"
        )
    return (
        "<details><summary>Who speaks</summary><table class=voices><thead><tr>"
        "<th scope=col>chapter</th><th scope=col>speaker</th><th scope=col>voice</th>"
        "<th scope=col class=num>chunks</th><th scope=col class=num>characters</th>"
        "</tr></thead><tbody>" + "".join(rows) + "</tbody></table></details>"
    )


def _document_html(
    n: int, doc: DocumentReport, context: RunContext, folder: Path, base: Path
) -> str:
    player = f"player-{n}"
    title = doc.title or Path(doc.input).name or doc.input
    price = context.price_per_10k_chars
    estimated = doc.billing_characters / 10_000 * price
    # A request is billed when it is answered: every request but the failed attempts
    # before a retry (429s, 5xx, drops), a few of which may have been billed anyway.
    answered = max(0, doc.requests - doc.retries)
    spent = estimated * answered / doc.chunks if doc.chunks else 0.0
    facts: list[tuple[str, str]] = [
        ("status", f'<span class="status {esc(doc.status)}">{esc(doc.status)}</span>'),
        ("input", f"<code>{esc(doc.input)}</code>"),
        ("chunks", f"{doc.chunks:,} ({doc.cached_chunks:,} from the cache)"),
        ("characters", f"{doc.billing_characters:,}"),
        ("cost", (f"free ({plural(answered, 'request')} answered, {doc.retries:,} retried)"
                  if price == 0 else
                  f"{_usd(estimated, price)} for the book; about {_usd(spent, price)} billed "
                  f"in this run ({plural(answered, 'request')} answered, {doc.retries:,} "
                  "retried)")),
        ("audio", as_clock(doc.audio_seconds) if doc.audio_seconds else "none"),
    ]  # fmt: skip
    parts = [
        f'<article id="doc-{n}" class="document {esc(doc.status)}">',
        f"<h3>{esc(title)}</h3>",
        "<dl class=facts>",
        *(
            f"<div{' class=wide' if k == 'cost' else ''}><dt>{k}</dt><dd>{v}</dd></div>"
            for k, v in facts
        ),
        "</dl>",
    ]
    files = doc.files or ((doc.output,) if doc.output and doc.ok else ())
    href = ""
    if files and doc.status in (Status.DONE, Status.UP_TO_DATE):
        href = _href(files[0], folder, base)
        for i, file in enumerate(files):
            label = f"part {i + 1}: " if len(files) > 1 else ""
            ident = player if i == 0 else f"{player}-{i + 1}"
            link = _href(file, folder, base)
            parts.append(
                f'<p class=player>{label}<audio id="{ident}" controls preload="none" '
                f'src="{link}"></audio> <a href="{link}">{esc(Path(file).name)}</a></p>'
            )
    if doc.chapters:
        parts.append(
            f"<details open><summary>Chapters ({len(doc.chapters)})</summary><ol class=chapters>"
        )
        for mark in doc.chapters:
            time = f"<time>{as_clock(mark.start)}</time>"
            label = f"{time} {esc(mark.title or 'Untitled')}"
            item = _seek(href, player, mark.start, label) if href and len(files) == 1 else label
            parts.append(f"<li>{item}</li>")
        parts.append("</ol></details>")
    if doc.flagged:
        parts.append(
            f"<h4>Flagged by the quality gate ({len(doc.flagged)})</h4>"
            "<table class=flagged><thead><tr><th scope=col>play</th><th scope=col>chunk</th>"
            "<th scope=col>reason</th><th scope=col>text</th></tr></thead><tbody>"
        )
        for flag in doc.flagged:
            if flag.start is not None and href and len(files) == 1:
                play = _seek(href, player, flag.start, f"▶ {as_clock(flag.start)}", cls="seek play")
            else:
                play = "—"
            # The gate's reason may open with the kind already ("silent: 0.00 s of sound").
            why = flag.reason.removeprefix(f"{flag.kind}: ")
            reason = (
                f"<b>{esc(flag.kind)}</b>: {esc(why)} "
                f"<small>({flag.measured:.1f} s measured, {flag.expected:.1f} s expected, "
                f"{esc(flag.attempts)} attempts)</small>"
            )
            parts.append(
                f"<tr class=flag><td>{play}</td><td>{esc(flag.chunk)}</td><td>{reason}</td>"
                f"<td class=text>{esc(flag.text)}</td></tr>"
            )
        parts.append("</tbody></table>")
    if doc.voices:
        parts.append(_voices_html(doc))
    if doc.warnings:
        parts.append("<div class=warnings><h4>Left out or done otherwise</h4><ul>")
        parts.extend(f"<li>{esc(warning)}</li>" for warning in doc.warnings)
        parts.append("</ul></div>")
    if doc.status is Status.SKIPPED and doc.errors:  # not a failure: only why
        parts.append(f"<p>Left out: {esc(doc.errors[0])}</p>")
    if not doc.ok and doc.errors:
        parts.append("<div class=errors><h4>What went wrong</h4><ul>")
        parts.extend(f"<li>{esc(error)}</li>" for error in doc.errors)
        parts.append("</ul>")
        if doc.status in (Status.FAILED, Status.STOPPED):
            resume = (
                f"<code class=command>{esc(context.command)}</code>"
                if context.command
                else "the <code>narrator narrate</code> command that made this run"
            )
            parts.append(
                f"<p class=resume>To resume, run the same command again (finished chunks "
                f"are kept; only what is missing is sent): {resume}</p>"
            )
        parts.append("</div>")
    parts.append("</article>")
    return "\n".join(parts)


_STYLE = """
:root{color-scheme:light dark;
  --fg:#1b1b1f;
  --bg:#fdfdfc;
  --muted:#5d5d66;
  --line:#d8d8de;
  --accent:#2456c9;
  --ok:#1d7a3a;
  --bad:#b3261e;
  --warn:#a45a00;
  --card:#f3f3f5}
@media (prefers-color-scheme:dark){
:root{--fg:#e8e8ec;
  --bg:#141417;
  --muted:#a0a0aa;
  --line:#3a3a42;
  --accent:#8fb0ff;
  --ok:#6fd08c;
  --bad:#ff8a80;
  --warn:#ffb74d;
  --card:#1e1e23}
}
body{font:16px/1.5 system-ui,sans-serif;color:var(--fg);background:var(--bg);margin:0 auto;
  max-width:62rem;padding:1rem 1.25rem 4rem}
a{color:var(--accent)}
h1{margin:.5rem 0 0}
h2{border-bottom:1px solid var(--line);margin-top:2.5rem}
.lead{color:var(--muted);margin-top:.25rem}
dl.facts,dl.totals{display:grid;grid-template-columns:repeat(auto-fill,minmax(11rem,1fr));
  gap:.25rem 1rem;margin:.5rem 0}
dl div{min-width:0}
dl div.wide{grid-column:span 2}
dt{color:var(--muted);font-size:.8rem;text-transform:uppercase;letter-spacing:.03em}
dd{margin:0;overflow-wrap:anywhere}
.status{font-weight:600}
.status.done,.status.up-to-date{color:var(--ok)}
.status.failed,.status.stopped{color:var(--bad)}
.status.skipped{color:var(--muted)}
article.document{background:var(--card);border-radius:.5rem;padding:.25rem 1rem 1rem;
  margin:1rem 0;border-left:4px solid var(--ok)}
article.failed,article.stopped{border-left-color:var(--bad)}
article.skipped{border-left-color:var(--line)}
audio{width:100%;max-width:36rem;vertical-align:middle}
ol.chapters{columns:2 18rem;padding-left:1.5rem}
ol.chapters time{color:var(--muted);font-variant-numeric:tabular-nums}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid var(--line);
  vertical-align:top}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.flagged td.text{font-style:italic}
a.play{white-space:nowrap;text-decoration:none;font-weight:600}
.errors{color:var(--bad)}
.warnings{color:var(--warn)}
.errors code{color:var(--fg)}
code.command{display:block;padding:.4rem .6rem;background:var(--bg);
  border:1px solid var(--line);border-radius:.25rem;overflow-wrap:anywhere;white-space:pre-wrap}
figure.chart{margin:.75rem 0}
figure.chart svg{width:100%;height:auto;display:block}
figcaption{font-size:.9rem;color:var(--muted)}
figcaption b{color:var(--fg)}
svg .bars{fill:var(--accent)}
svg .warn{fill:var(--warn)}
svg .cuts{fill:var(--bad);opacity:.6}
svg .line{fill:none;stroke:var(--accent);stroke-width:2}
svg .axis{stroke:var(--line)}
svg .limit{stroke:var(--muted);stroke-dasharray:4 3}
svg text{fill:var(--muted);font-size:10px}
"""

# The only script: a seek link plays its document's player from its time.
_SCRIPT = """
document.addEventListener("click", function (event) {
  var link = event.target.closest("a[data-seek]");
  var player = link && document.getElementById(link.dataset.player);
  if (!player) return;
  event.preventDefault();
  player.currentTime = Number(link.dataset.seek);
  var playing = player.play();
  if (playing) playing.catch(function () {});
});
"""


def render_html(
    run: RunReport, context: RunContext = RunContext(), *, folder: Path, base: Path | None = None
) -> str:
    """The page for ``run``, to be saved in ``folder``; the run's paths are relative to
    ``base`` (the current folder by default, as the command line names them)."""
    base = Path.cwd() if base is None else base
    sums = totals(run)
    docs = run.documents
    price = context.price_per_10k_chars
    estimated = sum(d.billing_characters for d in docs) / 10_000 * price
    verdict = (
        f"stopped: {run.stopped}"
        if run.stopped
        else "everything finished"
        if run.ok
        else f"{sums['failed']} of {sums['documents']} failed"
    )
    pace = ""
    if context.provider:
        rpm = f"{context.rpm:g} requests/minute" if context.rpm else "no rate limit"
        pace = f" · {esc(context.provider)}, {esc(rpm)}, {esc(context.concurrency)} at once"
    total_facts = [
        ("documents", f"{sums['documents']:,}"),
        ("done", f"{sums['done'] + sums['up_to_date']:,}"),
        ("failed", f"{sums['failed']:,}"),
        ("chunks", f"{sums['chunks']:,}"),
        ("characters", f"{sums['billing_characters']:,}"),
        ("cost (estimated)", _usd(estimated, price)),
        ("audio", as_clock(float(sums["audio_seconds"]))),
        ("requests", f"{run.requests:,}"),
        ("retries", f"{run.retries:,}"),
        ("429s", f"{run.throttled:,}"),
        ("flagged segments", f"{sums['flagged']:,}"),
        ("wall time", as_clock(run.seconds)),
    ]
    rows = []
    for n, doc in enumerate(docs, 1):
        title = doc.title or Path(doc.input).name or doc.input
        rows.append(
            f'<tr><td><a href="#doc-{n}">{esc(title)}</a></td>'
            f'<td><span class="status {esc(doc.status)}">{esc(doc.status)}</span></td>'
            f"<td class=num>{doc.chunks:,}</td><td class=num>{doc.billing_characters:,}</td>"
            f"<td class=num>{as_clock(doc.audio_seconds)}</td>"
            f"<td class=num>{len(doc.flagged)}</td></tr>"
        )
    timeline = (
        timeline_html(run.timeline, context)
        if run.timeline is not None and run.timeline.starts
        else "<p>No request was sent in this run.</p>"
    )
    articles = "\n".join(_document_html(n, d, context, folder, base) for n, d in enumerate(docs, 1))
    total_html = "".join(f"<div><dt>{k}</dt><dd>{v}</dd></div>" for k, v in total_facts)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="narrator">
<title>narrator run: {plural(int(sums["documents"]), "document")}, {esc(verdict)}</title>
<style>{_STYLE}</style>
</head>
<body>
<header>
<h1>narrator run report</h1>
<p class=lead>{plural(int(sums["documents"]), "document")}: {esc(verdict)}{pace}</p>
</header>
<main>
<section aria-labelledby="h-totals">
<h2 id="h-totals">Totals</h2>
<dl class=totals>{total_html}</dl>
<table class=index><thead><tr><th scope=col>document</th><th scope=col>status</th>
<th scope=col class=num>chunks</th><th scope=col class=num>characters</th>
<th scope=col class=num>audio</th><th scope=col class=num>flagged</th></tr></thead>
<tbody>
{"".join(rows)}
</tbody></table>
</section>
<section aria-labelledby="h-timeline">
<h2 id="h-timeline">Timeline</h2>
{timeline}
</section>
<section aria-labelledby="h-documents">
<h2 id="h-documents">Documents</h2>
{articles}
</section>
</main>
<script>{_SCRIPT}</script>
</body>
</html>
"""
