"""Self-contained HTML: inline CSS, figures as base64 PNG data URIs, every record string escaped.

Cells and texts are escaped here unless they are ``Html`` (markup this package built itself), so a value from a
record can never inject markup into the report.
"""

from __future__ import annotations

import base64
import html
from typing import Iterable, Sequence

CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d2330;
       max-width: 1180px; margin: 24px auto; padding: 0 24px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 32px 0 8px; border-bottom: 1px solid #d5d9e0; padding-bottom: 4px; }
.sub { color: #5b6475; margin: 0 0 16px; }
.banner { padding: 10px 14px; border-radius: 6px; margin: 10px 0; font-weight: 600; }
.warn { background: #fff4d6; border: 1px solid #e8c35a; }
.bad { background: #fde2e1; border: 1px solid #e08a85; }
.good { background: #e3f4e6; border: 1px solid #86c293; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 14px; }
th, td { border: 1px solid #d5d9e0; padding: 5px 10px; text-align: left; vertical-align: top; }
th { background: #f1f3f7; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.kv th { width: 220px; }
code { font: 12.5px ui-monospace, SFMono-Regular, Menlo, monospace; word-break: break-all; }
figure { margin: 12px 0 20px; }
figure img { max-width: 100%; height: auto; border: 1px solid #e3e6eb; }
figcaption { color: #5b6475; font-size: 13.5px; margin-top: 4px; max-width: 1000px; }
.note { color: #5b6475; font-size: 13.5px; }
"""


class Html(str):
    """Markup built by this package, inserted without escaping."""


def esc(value: object) -> Html:
    """``value`` as escaped text (markup passes through unchanged)."""
    return value if isinstance(value, Html) else Html(html.escape(str(value)))


def tag(name: str, content: object, cls: str | None = None) -> Html:
    """``<name class=cls>content</name>`` with ``content`` escaped unless it is markup."""
    attr = f' class="{html.escape(cls)}"' if cls else ""
    return Html(f"<{name}{attr}>{esc(content)}</{name}>")


def join(parts: Iterable[object]) -> Html:
    """Several pieces of markup (or text, escaped) in a row."""
    return Html("".join(esc(p) for p in parts))


def png_uri(png: bytes) -> str:
    """A PNG as a data URI (the report references no file and no network)."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def figure(png: bytes, alt: str, caption: object) -> Html:
    """An embedded PNG with its caption."""
    return Html(f'<figure><img src="{png_uri(png)}" alt="{html.escape(alt)}">'
                f"{tag('figcaption', caption)}</figure>")


def table(headers: Sequence[str], rows: Iterable[Sequence[object]], numeric: Sequence[bool] | None = None) -> Html:
    """A table; columns ``numeric`` marks are right-aligned."""
    numeric = numeric or [False] * len(headers)
    head = join(tag("th", h) for h in headers)
    body = join(Html("<tr>" + join(tag("td", cell, "num" if num else None) for cell, num in zip(row, numeric))
                     + "</tr>") for row in rows)
    return Html(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def key_values(pairs: Iterable[tuple[str, object]]) -> Html:
    """A two-column table of labelled values."""
    rows = join(Html(f"<tr>{tag('th', k)}{tag('td', v)}</tr>") for k, v in pairs)
    return Html(f'<table class="kv"><tbody>{rows}</tbody></table>')


def banner(text: object, level: str) -> Html:
    """A coloured line at the top of a report: ``level`` is good, warn or bad."""
    return tag("div", text, f"banner {level}")


def section(title: str, *parts: object) -> Html:
    """A titled section."""
    return Html(f"<section>{tag('h2', title)}{join(parts)}</section>")


def document(title: str, subtitle: object, parts: Iterable[object]) -> str:
    """The whole HTML page."""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head>"
            f"<body>{tag('h1', title)}{tag('p', subtitle, 'sub')}{join(parts)}</body></html>\n")


def ms(value: float | None) -> str:
    """Milliseconds as the report prints them."""
    return "—" if value is None else f"{value:.4f} ms"


def pct(fraction: float | None) -> str:
    """A fraction (0..1) as a percentage."""
    return "—" if fraction is None else f"{100 * fraction:.2f}%"


def megabytes(size: int | None) -> str:
    """A byte count in MB (10^6 bytes)."""
    return "—" if size is None else f"{size / 1e6:.3f} MB"


def fingerprint_text(fingerprint: dict | None) -> str:
    """One line describing a device fingerprint (the fields ``targets.Fingerprint`` records)."""
    if not fingerprint:
        return "—"
    f = fingerprint.get
    return (f"{f('cpu_model', '?')}, {f('cpu_count', '?')} CPUs; {f('runtime', '?')} {f('runtime_version', '')} "
            f"{f('execution_provider', '')}; {f('threads', '?')} thread(s), batch {f('batch_size', '?')}")
