"""report.md and a self-contained report.html from the results document of `reproduce`."""
from __future__ import annotations

import base64
import html
from collections.abc import Iterator
from pathlib import Path

from simulator.outputs import write_atomically

COLUMNS = ["target", "figure", "published", "simulated", "error", "tolerance", "status",
           "within"]


def _num(x) -> str:
    if x is None:
        return "—"
    return f"{x:.4g}" if isinstance(x, float) else str(x)


def _error(rec: dict) -> str:
    if rec["error"] is None:
        return "—"
    if rec["tolerance_kind"] == "absolute":
        return f"{rec['error']:+.3g}"
    return f"{rec['error'] * 100:+.1f}%"


def _tolerance(rec: dict) -> str:
    if rec["status"] == "bound":
        lo = "-inf" if rec.get("lower") is None else _num(rec["lower"])
        hi = "inf" if rec.get("upper") is None else _num(rec["upper"])
        return f"in [{lo}, {hi}]"
    if rec["tolerance_kind"] == "absolute":
        return f"±{_num(rec['tolerance'])}"
    return f"±{rec['tolerance'] * 100:.0f}%"


def _verdict(rec: dict) -> str:
    if rec.get("failure") and rec["simulated"] is None:
        return "FAILED"
    if rec.get("known_miss"):
        verdict = "no (known miss)" if not rec["within"] else "YES (was a known miss)"
    else:
        verdict = "yes" if rec["within"] else "NO"
    return f"{verdict}; fitted, not predicted" if rec.get("fitted_to_it") else verdict


def _cells(rec: dict) -> list[str]:
    return [rec["id"], rec["figure"], _num(rec["published"]), _num(rec["simulated"]),
            _error(rec), _tolerance(rec), rec["status"], _verdict(rec)]


def summary_line(doc: dict) -> str:
    recs = doc["targets"]
    solid = [r for r in recs if r["status"] == "solid"]
    return (f"{len(recs)} targets from {len(doc['papers'])} papers; "
            f"{sum(r['within'] for r in recs)} within their tolerance; "
            f"solid: {sum(r['within'] for r in solid)} of {len(solid)} within")


def _by_paper(doc: dict) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {p: [] for p in doc["papers"]}
    for rec in doc["targets"]:
        out.setdefault(rec["paper"], []).append(rec)
    return out


def _notes(recs: list[dict]) -> Iterator[tuple[str, str, list[str]]]:
    """The notes under a paper's table, both reports': (target id, what, its texts)."""
    for r in recs:
        if r.get("failure"):
            yield r["id"], "failed", [r["failure"]]
        if r["defaults"]:
            yield r["id"], "defaults (not the paper's)", list(r["defaults"])
        if r.get("fitted_to_it"):
            yield r["id"], "fitted, not predicted", [r["fitted_to_it"]]


# -- markdown -------------------------------------------------------------------------------
def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown(doc: dict) -> str:
    lines = ["# dnnsim: published figures reproduced", "", summary_line(doc), "",
             "Each target's full scenario is in results.json (the form `dnnsim simulate` "
             "accepts). *Defaults* are settings the paper does not give, chosen by us.", ""]
    if not doc["targets"]:
        lines += ["No targets found in validation/targets/.", ""]
    for paper, recs in _by_paper(doc).items():
        info = doc["papers"][paper]
        lines += [f"## {paper}: {info['title']}", "", f"Source: {info['source']}", "",
                  "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        lines += ["| " + " | ".join(_md_escape(c) for c in _cells(r)) + " |" for r in recs]
        lines.append("")
        lines += [f"- **{tid}** {what}: " + "; ".join(_md_escape(t) for t in texts)
                  for tid, what, texts in _notes(recs)]
        lines.append("")
        if info.get("figures_error"):
            lines += [f"Figures could not be made: {_md_escape(info['figures_error'])}", ""]
        for fig in info.get("figures", []):
            lines += [f"![{Path(fig).stem}]({fig})", ""]
        trace = info.get("trace") or {}
        if trace:
            lines += [f"One step of `{trace['target']}`: Chrome trace `{trace['trace']}` "
                      "(open in ui.perfetto.dev or chrome://tracing)", "",
                      f"![timeline]({trace['timeline']})", ""]
        elif info.get("trace_error"):
            lines += [f"Trace could not be made: {_md_escape(info['trace_error'])}", ""]
    return "\n".join(lines)


# -- html -----------------------------------------------------------------------------------
STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}
table{border-collapse:collapse;width:100%;margin:1em 0}th,td{border:1px solid #ccc;
padding:4px 8px;font-size:90%;text-align:left}th{background:#f0f0f0}td.yes{background:#e6f5e6}
td.NO,td.FAILED{background:#fbe3e3}img{max-width:100%;margin:.5em 0}.note{color:#555}"""


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def own_file(out: Path, rel, under: str, suffix: str) -> bool:
    """Whether `rel` names a file that reproduce writes: a relative path that stays inside
    out/under once resolved (links and '..' followed), with `suffix`, and there. Paths read
    back from a journal or results file are used only if they pass."""
    if not isinstance(rel, str) or not rel or Path(rel).is_absolute():
        return False
    target = (out / rel).resolve()
    return (target.is_relative_to((out / under).resolve()) and target.suffix == suffix
            and target.is_file())


def _img(out: Path, rel: str) -> str:
    """A PNG of this folder's figures/ or traces/, embedded; anything else is left out."""
    path = (out / rel).resolve() if isinstance(rel, str) else None
    if not (own_file(out, rel, "figures", ".png") or own_file(out, rel, "traces", ".png")):
        return f"<p>(not embedded: {html.escape(str(rel))} is not a figure of this report)</p>"
    raw = path.read_bytes()
    if not raw.startswith(PNG_SIGNATURE):
        return f"<p>(not embedded: {html.escape(str(rel))} is not a PNG)</p>"
    data = base64.b64encode(raw).decode()
    return f'<img alt="{html.escape(Path(rel).stem)}" src="data:image/png;base64,{data}">'


def html_report(doc: dict, out: Path) -> str:
    e = html.escape
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'>",
             "<title>dnnsim: published figures reproduced</title>",
             f"<style>{STYLE}</style></head><body>",
             "<h1>dnnsim: published figures reproduced</h1>", f"<p>{e(summary_line(doc))}</p>",
             "<p class='note'>Each target's full scenario is in results.json (the form "
             "<code>dnnsim simulate</code> accepts). <em>Defaults</em> are settings the paper "
             "does not give, chosen by us.</p>"]
    if not doc["targets"]:
        parts.append("<p>No targets found in validation/targets/.</p>")
    for paper, recs in _by_paper(doc).items():
        info = doc["papers"][paper]
        parts += [f"<h2>{e(paper)}: {e(info['title'])}</h2>",
                  f"<p class='note'>Source: {e(info['source'])}</p>", "<table><tr>"
                  + "".join(f"<th>{c}</th>" for c in COLUMNS) + "</tr>"]
        for r in recs:
            cells = _cells(r)
            row = "".join(f"<td>{e(c)}</td>" for c in cells[:-1])
            parts.append(f"<tr>{row}<td class='{cells[-1]}'>{cells[-1]}</td></tr>")
        parts.append("</table><ul>")
        parts += [f"<li><b>{e(tid)}</b> {what}: " + "; ".join(e(t) for t in texts) + "</li>"
                  for tid, what, texts in _notes(recs)]
        parts.append("</ul>")
        if info.get("figures_error"):
            parts.append(f"<p>Figures could not be made: {e(info['figures_error'])}</p>")
        parts += [_img(out, fig) for fig in info.get("figures", []) if (out / fig).exists()]
        trace = info.get("trace") or {}
        if trace:
            parts.append(f"<p>One step of <code>{e(trace['target'])}</code>: Chrome trace "
                         f"<code>{e(trace['trace'])}</code> (open in ui.perfetto.dev).</p>")
            if (out / trace["timeline"]).exists():
                parts.append(_img(out, trace["timeline"]))
        elif info.get("trace_error"):
            parts.append(f"<p>Trace could not be made: {e(info['trace_error'])}</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_reports(out: Path, doc: dict) -> tuple[Path, Path]:
    md, page = out / "report.md", out / "report.html"
    # written whole then renamed: a kill leaves the previous report or none, never half
    write_atomically(md, lambda tmp: tmp.write_text(markdown(doc) + "\n"))
    write_atomically(page, lambda tmp: tmp.write_text(html_report(doc, out) + "\n"))
    return md, page
