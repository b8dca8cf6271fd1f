"""TypeScript declarations for an App's protocol: ``wsgate typescript MODULE:APP``.

The output is a standalone ``.d.ts`` (no imports): a declaration per msgspec type the
gateways use (an ``interface`` per Struct, dataclass or TypedDict, a ``type`` for enums
and other named schemas) and, per gateway class ``G``, two maps the browser client
consumes as ``connect<GEvents, GPushes>(url)``::

    export type ChatGatewayEvents = {         // what the client sends
      "chat.send": { data: ChatMessage; reply: null; item: never };
    };
    export type ChatGatewayPushes = {         // what the gateway pushes (emits={...})
      "chat.message": Posted;
    };

The maps are type aliases, not interfaces: only a type alias of an object type is
assignable to a constraint like ``E extends Record<string, {data; reply; item}>``
(an interface has no implicit index signature, TS2344).

``item`` is the type of a stream's items (async-generator handlers), else ``never``.
The types are generated from the same JSON Schemas as the AsyncAPI document, so they
describe the JSON on the wire (renamed fields, tags, enum values).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import TYPE_CHECKING, Any

from .asyncapi import NO_DATA, NO_ITEM, UNKNOWN, Schemas, describe

if TYPE_CHECKING:
    from .app import App

__all__ = ["typescript_declarations"]

_IDENT = re.compile(r"[^A-Za-z0-9_$]")
_PLAIN_KEY = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")


def _ident(name: str) -> str:
    out = _IDENT.sub("_", name)
    return "_" + out if out[:1].isdigit() or not out else out


def _key(name: str) -> str:
    return name if _PLAIN_KEY.match(name) else json.dumps(name)


def _comment(text: str | None, indent: str) -> str:
    if not text:
        return ""
    lines = text.replace("*/", "*\\/").splitlines()
    if len(lines) == 1:
        return f"{indent}/** {lines[0]} */\n"
    return f"{indent}/**\n" + "".join(f"{indent} * {line}\n" for line in lines) + f"{indent} */\n"


def ts_type(schema: Any, indent: str = "") -> str:
    """The TypeScript type of a JSON Schema as AsyncAPI documents hold them."""
    if not isinstance(schema, dict) or not schema:
        return "unknown"
    if "$ref" in schema:
        return _ident(schema["$ref"].rsplit("/", 1)[-1])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " | ".join(dict.fromkeys(ts_type(s, indent) for s in schema[key]))
    if "const" in schema:
        return json.dumps(schema["const"])
    if "enum" in schema:
        return " | ".join(json.dumps(v) for v in schema["enum"]) or "never"
    kind = schema.get("type")
    if isinstance(kind, list):
        return " | ".join(ts_type({**schema, "type": k}, indent) for k in kind)
    if kind == "null":
        return "null"
    if kind == "string":
        return "string"
    if kind in ("integer", "number"):
        return "number"
    if kind == "boolean":
        return "boolean"
    if kind == "array":
        items = schema.get("items", {})
        if isinstance(items, list):
            head = ", ".join(ts_type(s, indent) for s in items)
            if schema.get("additionalItems") is False or not head:
                return f"[{head}]"
            return f"[{head}, ...unknown[]]"
        inner = ts_type(items, indent)
        return f"({inner})[]" if " " in inner else f"{inner}[]"
    if kind == "object" or "properties" in schema:
        return _object(schema, indent)
    return "unknown"


def _object(schema: dict[str, Any], indent: str) -> str:
    props: dict[str, Any] = schema.get("properties") or {}
    extra = schema.get("additionalProperties")
    if not props:
        if extra is False:
            return "Record<string, never>"
        return f"{{ [key: string]: {ts_type(extra if isinstance(extra, dict) else {}, indent)} }}"
    return "{\n" + _members(schema, indent + "  ") + indent + "}"


def _members(schema: dict[str, Any], indent: str) -> str:
    required = set(schema.get("required") or ())
    out = ""
    for name, sub in (schema.get("properties") or {}).items():
        desc = sub.get("description") if isinstance(sub, dict) else None
        opt = "" if name in required else "?"
        out += _comment(desc, indent)
        out += f"{indent}{_key(name)}{opt}: {ts_type(sub, indent)};\n"
    return out


def _declaration(name: str, schema: dict[str, Any]) -> str:
    ident = _ident(name)
    doc = _comment(schema.get("description"), "")
    if schema.get("type") == "object" and schema.get("properties"):
        return f"{doc}export interface {ident} {{\n{_members(schema, '  ')}}}\n"
    body = {k: v for k, v in schema.items() if k not in ("title", "description")}
    return f"{doc}export type {ident} = {ts_type(body)};\n"


def typescript_declarations(app: App, *, source: str | None = None) -> str:
    """A standalone ``.d.ts`` for ``app``'s protocol: the msgspec types its gateways use
    and, per gateway class ``G``, ``GEvents`` and ``GPushes`` (see the module docstring).
    ``"*"`` and ``"__binary__"`` handlers have no entry (they take no fixed event name)."""
    gateways = describe(app)
    types: list[Any] = []
    for g in gateways:
        for e in g.events:
            types += [e.data, e.reply, e.item]
        types += list(g.pushes.values())
    schemas = Schemas(types)
    out = [
        "// Generated by `wsgate typescript"
        + (f" {source}" if source else "")
        + "` from the application's gateways. Do not edit.\n",
        "// Standalone: no imports. Use with the wsgate browser client as\n",
        "// connect<GatewayEvents, GatewayPushes>(url).\n\n",
    ]
    out += [_declaration(name, s) + "\n" for name, s in sorted(schemas.components.items())]
    for g in gateways:
        ident = _ident(g.name)
        where = f"{g.cls.__qualname__} at {g.template}"
        out.append(f"/** Client -> server events of {where}. */\n")
        out.append(f"export type {ident}Events = {{\n")
        for e in g.events:
            if e.wildcard or e.binary:
                continue
            if e.data is NO_DATA:
                data = "null"
            else:
                data = ts_type(schemas.of(e.data), "  ")
                if e.data_optional and data not in ("unknown", "null"):
                    data += " | null"
            reply = "null" if e.is_stream else ts_type(schemas.of(e.reply), "  ")
            if e.item is NO_ITEM:
                item = "never"
            else:
                item = "unknown" if e.item is UNKNOWN else ts_type(schemas.of(e.item), "  ")
            out.append(_comment(e.summary or e.description, "  "))
            out.append(
                f"  {json.dumps(e.name)}: {{ data: {data}; reply: {reply}; item: {item} }};\n"
            )
        out.append("};\n\n")
        out.append(
            f"/** Server -> client events {g.cls.__qualname__} declares with emits={{...}}. */\n"
        )
        out.append(f"export type {ident}Pushes = {{\n")
        for event, tp in g.pushes.items():
            out.append(f"  {json.dumps(event)}: {ts_type(schemas.of(tp), '  ')};\n")
        out.append("};\n\n")
    return "".join(out).rstrip("\n") + "\n"


# --------------------------------------------------------------------------- the command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``wsgate typescript``."""
    parser.add_argument("app", metavar="MODULE:APP", help="the App, e.g. examples.chat.app:app")
    parser.add_argument("-o", "--output", help="write to this .d.ts file instead of stdout")


def run(args: argparse.Namespace) -> int:
    """``wsgate typescript MODULE:APP [-o FILE]``: write the app's TypeScript types."""
    from .loading import load_app

    app = load_app(args.app)
    if not hasattr(app, "plans"):
        raise SystemExit(f"wsgate: {args.app} is not a wsgate App ({type(app).__name__})")
    text = typescript_declarations(app, source=args.app)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0
