"""``App(docs_path="/docs")``: the AsyncAPI document over HTTP, and a page to read it.

``GET <docs_path>/asyncapi.json`` returns the document (``application/json``);
``GET <docs_path>`` returns an HTML page rendered on the server from that same document:
channels, operations, messages and schemas, with inline CSS and no JavaScript, so it
works offline and behind any content security policy.

A plug-in (:mod:`wsgate.plugins`), registered when this module is imported: it reads the
App's ``docs_path`` option and mounts :func:`docs_endpoint` there.
"""

from __future__ import annotations

import html
import json
import re
from typing import TYPE_CHECKING, Any

from .asgi import ASGIApp, Receive, Scope, Send, strip_root_path
from .errors import ConfigurationError
from .plugins import AppSetup, register

if TYPE_CHECKING:
    from .app import App

__all__ = ["docs_endpoint", "markdown_html", "render_html"]


_CSS = """
body{font:15px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2330;
background:#f6f7f9}
main{max-width:980px;margin:0 auto;padding:24px}
h1{margin:0 0 4px}h2{border-bottom:2px solid #d8dce3;padding-bottom:4px;margin-top:40px}
h3{margin:28px 0 6px}h4{margin:18px 0 4px}
code,.type{font:13px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.card{background:#fff;border:1px solid #d8dce3;border-radius:8px;padding:12px 16px;margin:12px 0}
.badge{display:inline-block;font:600 11px/1 system-ui,sans-serif;text-transform:uppercase;
padding:4px 6px;border-radius:4px;margin-right:6px;color:#fff;vertical-align:middle}
.receive{background:#2b6cb0}.send{background:#2f855a}.error{background:#c53030}
.tag{display:inline-block;background:#edf0f5;border-radius:10px;padding:0 8px;margin-right:4px;
font-size:12px}
table{border-collapse:collapse;width:100%;margin:6px 0}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #edf0f5;vertical-align:top}
th{font-size:12px;color:#5a6375;font-weight:600}
.muted{color:#5a6375}a{color:#2b6cb0}nav a{margin-right:12px}
"""


def docs_endpoint(app: App, docs_path: str) -> ASGIApp:
    """The ASGI endpoint ``App(docs_path=...)`` mounts: the page at ``docs_path``, the
    JSON document at ``docs_path + "/asyncapi.json"``, 404 below it, 405 for methods
    other than GET and HEAD. The document is generated on the first request, then cached.

    Raises :class:`~wsgate.errors.ConfigurationError` if ``docs_path`` does not start
    with ``/``.
    """
    if not isinstance(docs_path, str) or not docs_path.startswith("/"):
        raise ConfigurationError(
            f'App(docs_path=...) must be a path like "/docs", not {docs_path!r}'
        )
    prefix = docs_path.rstrip("/")
    cache: dict[str, bytes] = {}

    def body(kind: str, root: str) -> bytes:
        if "json" not in cache:
            doc = app.asyncapi()
            cache["json"] = json.dumps(doc, indent=2, ensure_ascii=False).encode()
            cache["html"] = render_html(doc, json_url=f"{root}{prefix}/asyncapi.json").encode()
        return cache[kind]

    async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        path = strip_root_path(scope)
        root: str = scope.get("root_path", "")
        rest = path[len(prefix) :].strip("/")
        if rest not in ("", "asyncapi.json"):
            await _respond(send, 404, "text/plain; charset=utf-8", b"Not Found")
        elif scope.get("method", "GET") not in ("GET", "HEAD"):
            await _respond(
                send, 405, "text/plain; charset=utf-8", b"Method Not Allowed", allow=True
            )
        elif rest == "asyncapi.json":
            await _respond(send, 200, "application/json", body("json", root), scope=scope)
        else:
            await _respond(send, 200, "text/html; charset=utf-8", body("html", root), scope=scope)

    return endpoint


async def _respond(
    send: Any,
    status: int,
    content_type: str,
    body: bytes,
    *,
    allow: bool = False,
    scope: Scope | None = None,
) -> None:
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    if allow:
        headers.append((b"allow", b"GET, HEAD"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    head = scope is not None and scope.get("method") == "HEAD"
    await send({"type": "http.response.body", "body": b"" if head else body})


# --------------------------------------------------------------------------- rendering


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


# A code span (`x`, ``x``, also reST's :role:`x`), then a link, bold, italics.
_CODE = re.compile(r"(?::[\w.:-]+:)?(`+)(.+?)\1", re.S)
_LINK = re.compile(r"\[([^\]\n]+)\]\(([^)\s]+)\)")
_BOLD = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*", re.S)
_ITALIC = re.compile(
    r"(?<![\w*])\*(?=\S)(.+?)(?<=\S)\*(?![\w*])|(?<!\w)_(?=[^\s_])(.+?)(?<=[^\s_])_(?!\w)"
)
_SCHEME = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*):")


def _inline(text: str) -> str:
    """Escaped HTML of one paragraph of Markdown: inline code, links, bold and italics.

    Everything else stays text, escaped. A link to anything but http(s), mailto or a
    relative address (``javascript:``, ``data:``) keeps its words and loses its target.
    reST roles (``:class:`~a.B```) show their target as code, the last part for ``~``.
    """
    out: list[str] = []
    pos = 0
    for match in _CODE.finditer(text):
        out.append(_emphasis(text[pos : match.start()]))
        code = match.group(2).strip()
        if match.group(0).startswith(":") and code.startswith("~"):
            code = code.rsplit(".", 1)[-1]
        out.append(f"<code>{_e(code)}</code>")
        pos = match.end()
    out.append(_emphasis(text[pos:]))
    return "".join(out)


def _emphasis(text: str) -> str:
    def link(match: re.Match[str]) -> str:
        words, url = match.group(1), match.group(2)
        scheme = _SCHEME.match(url)
        if scheme and scheme.group(1).lower() not in ("http", "https", "mailto"):
            return words
        return f'<a href="{url}">{words}</a>'

    escaped = _LINK.sub(link, _e(text))
    escaped = _BOLD.sub(lambda m: f"<strong>{m.group(1)}</strong>", escaped)
    return _ITALIC.sub(lambda m: f"<em>{m.group(1) or m.group(2)}</em>", escaped)


def markdown_html(text: str) -> str:
    """A description written in Markdown (from a docstring, say) as safe HTML paragraphs.

    Renders the subset descriptions use: paragraphs (blank lines), inline code, bold,
    italics and links; everything else is escaped text, so nothing a docstring says can
    inject markup or script into the page.
    """
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", str(text)) if p.strip()]
    return "".join(f"<p>{_inline(' '.join(p.split()))}</p>" for p in paragraphs)


def _anchor(kind: str, name: str) -> str:
    return f"{kind}-" + "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _deref(doc: dict[str, Any], obj: Any) -> Any:
    """Follow local ``$ref`` pointers (``#/a/b``) until a non-reference object."""
    seen = 0
    while isinstance(obj, dict) and "$ref" in obj and seen < 16:
        node: Any = doc
        for part in obj["$ref"].lstrip("#/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        obj, seen = node, seen + 1
    return obj


def type_text(schema: Any) -> str:
    """A short HTML type expression for a JSON Schema (links to named schemas)."""
    if schema is True or schema == {} or not isinstance(schema, dict):
        return '<span class="type">any</span>'
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f'<a class="type" href="#{_anchor("schema", name)}">{_e(name)}</a>'
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " | ".join(type_text(s) for s in schema[key])
    if "const" in schema:
        return f"<code>{_e(json.dumps(schema['const']))}</code>"
    if "enum" in schema:
        return " | ".join(f"<code>{_e(json.dumps(v))}</code>" for v in schema["enum"])
    kind = schema.get("type")
    if kind == "array":
        items = schema.get("items")
        if isinstance(items, list):
            return "[" + ", ".join(type_text(s) for s in items) + "]"
        return f'<span class="type">array of</span> {type_text(items or {})}'
    if kind == "object":
        extra = schema.get("additionalProperties")
        if "properties" not in schema and isinstance(extra, dict):
            return f'<span class="type">map of</span> {type_text(extra)}'
        return '<span class="type">object</span>'
    if isinstance(kind, str):
        fmt = schema.get("format") or schema.get("contentEncoding")
        return f'<span class="type">{_e(kind)}{f" ({_e(fmt)})" if fmt else ""}</span>'
    if "description" in schema:
        return (
            f'<span class="type">any</span> <span class="muted">{_inline(schema["description"])}</span>'
        )
    return '<span class="type">any</span>'


def _properties(schema: dict[str, Any]) -> str:
    props = schema.get("properties") or {}
    required = set(schema.get("required") or ())
    rows = []
    for name, sub in props.items():
        notes = []
        if isinstance(sub, dict):
            if "default" in sub:
                notes.append(f"default <code>{_e(json.dumps(sub['default']))}</code>")
            if sub.get("description"):
                notes.append(_inline(sub["description"]))
        rows.append(
            f"<tr><td><code>{_e(name)}</code></td><td>{type_text(sub)}</td>"
            f"<td>{'yes' if name in required else 'no'}</td><td>{'; '.join(notes)}</td></tr>"
        )
    if not rows:
        return ""
    return (
        "<table><tr><th>field</th><th>type</th><th>required</th><th>notes</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _tags(obj: dict[str, Any]) -> str:
    return "".join(f'<span class="tag">{_e(t["name"])}</span>' for t in obj.get("tags") or ())


def _text(obj: dict[str, Any]) -> str:
    out = ""
    if obj.get("summary"):
        out += f"<p><strong>{_inline(obj['summary'])}</strong></p>"
    if obj.get("description"):
        out += f'<div class="muted">{markdown_html(obj["description"])}</div>'
    return out


def _message(doc: dict[str, Any], ref: Any, *, compact_errors: bool = False) -> str:
    msg = _deref(doc, ref)
    payload = _deref(doc, msg.get("payload") or {})
    props = payload.get("properties") or {}
    data = props.get("data", {})
    title = _e(msg.get("title") or msg.get("name") or "")
    if msg.get("name") == "error" and compact_errors:
        code = (data.get("properties") or {}).get("code", {}).get("const", "")
        summary = _inline(msg.get("summary", ""))
        return f'<p><span class="badge error">error</span><code>{_e(code)}</code>: {summary}</p>'
    frame = {k: v for k, v in props.items() if k != "data"}
    frame_text = ", ".join(f"<code>{_e(k)}</code>: {type_text(v)}" for k, v in frame.items())
    out = f"<h4>{title}</h4>"
    if msg.get("summary"):
        out += f'<p class="muted">{_inline(msg["summary"])}</p>'
    if msg.get("contentType") == "application/octet-stream":
        return out + "<p>A binary frame; its bytes are the payload.</p>"
    out += f"<p>frame: {{{frame_text}, <code>data</code>}}<br>data: {type_text(data)}</p>"
    target = _deref(doc, data) if isinstance(data, dict) else {}
    if isinstance(target, dict) and "$ref" not in data and target.get("properties"):
        out += _properties(target)
    return out


def render_html(doc: dict[str, Any], *, json_url: str = "asyncapi.json") -> str:
    """An HTML page of an AsyncAPI document: one section per channel with its operations
    (what the client sends, what the server answers and pushes) and the shared schemas."""
    info = doc.get("info", {})
    channels: dict[str, Any] = doc.get("channels", {})
    operations: dict[str, Any] = doc.get("operations", {})
    schemas: dict[str, Any] = doc.get("components", {}).get("schemas", {})
    parts = [
        '<!doctype html><html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        f"<title>{_e(info.get('title', 'AsyncAPI'))}</title><style>{_CSS}</style></head>",
        f"<body><main><h1>{_e(info.get('title', ''))}</h1>",
        f'<p class="muted">version {_e(info.get("version", ""))} · AsyncAPI '
        f'{_e(doc.get("asyncapi", ""))} · <a href="{_e(json_url)}">asyncapi.json</a></p>',
        markdown_html(info.get("description", "")),
        "<nav>",
    ]
    parts += [
        f'<a href="#{_anchor("channel", cid)}">{_e(ch.get("address", cid))}</a>'
        for cid, ch in channels.items()
    ]
    if schemas:
        parts.append('<a href="#schemas">schemas</a>')
    parts.append("</nav>")
    for cid, ch in channels.items():
        parts.append(
            f'<h2 id="{_anchor("channel", cid)}"><code>{_e(ch.get("address", ""))}</code> '
            f'<span class="muted">{_e(ch.get("title", cid))}</span></h2>'
        )
        parts.append(_tags(ch) + _text(ch))
        params = ch.get("parameters") or {}
        if params:
            parts.append("<table><tr><th>path parameter</th><th>description</th></tr>")
            parts += [
                f"<tr><td><code>{_e(n)}</code></td><td>{_inline(p.get('description', ''))}</td></tr>"
                for n, p in params.items()
            ]
            parts.append("</table>")
        query = ((ch.get("bindings") or {}).get("ws") or {}).get("query")
        if query:
            parts.append("<p>query parameters:</p>" + _properties(query))
        ref = f"#/channels/{cid}"
        ops = [
            (oid, op) for oid, op in operations.items() if op.get("channel", {}).get("$ref") == ref
        ]
        for action, heading in (("receive", "client → server"), ("send", "server → client")):
            chosen = [(oid, op) for oid, op in ops if op.get("action") == action]
            if not chosen:
                continue
            parts.append(f"<h3>{heading}</h3>")
            for oid, op in chosen:
                is_error = oid.endswith(".errors")
                badge = "error" if is_error else action
                parts.append(
                    f'<div class="card" id="{_anchor("op", oid)}"><span class="badge {badge}">'
                    f"{_e(action)}</span><code>{_e(oid)}</code> {_tags(op)}{_text(op)}"
                )
                parts += [_message(doc, m) for m in op.get("messages", ())]
                reply = op.get("reply")
                if reply:
                    parts.append('<p><span class="badge send">reply</span></p>')
                    parts += [
                        _message(doc, m, compact_errors=True) for m in reply.get("messages", ())
                    ]
                parts.append("</div>")
    if schemas:
        parts.append('<h2 id="schemas">Schemas</h2>')
        for name, schema in schemas.items():
            parts.append(
                f'<div class="card" id="{_anchor("schema", name)}"><h4>{_e(name)}</h4>'
                + (
                    f'<div class="muted">{markdown_html(schema["description"])}</div>'
                    if schema.get("description")
                    else ""
                )
            )
            if schema.get("properties"):
                parts.append(_properties(schema))
            else:
                parts.append(
                    f"<p>{type_text({k: v for k, v in schema.items() if k != 'title'})}</p>"
                )
            parts.append("</div>")
    parts.append("</main></body></html>\n")
    return "".join(parts)


def plugin(setup: AppSetup) -> None:
    """The docs plug-in: ``App(docs_path=...)`` serves the document and its page there."""
    docs_path = setup.option("docs_path")
    if docs_path is not None:
        setup.on_built(lambda app: app.mount_http(docs_path, docs_endpoint(app, docs_path)))


register("docs", plugin)
