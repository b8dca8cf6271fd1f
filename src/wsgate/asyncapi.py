"""The AsyncAPI 3.0 document of an App, generated from its gateways.

Everything comes from what the gateways already declare: the path template of each
``@ws_controller`` (a channel, with its path parameters), each ``@on_message`` event (a
``receive`` operation whose message is the frame's envelope, ``data`` described by the
handler's ``Json[T]`` type), the handler's return annotation (the ``reply``, correlated by
the frame's ``id``), async-generator handlers (a ``send`` operation for the stream's
items), ``emits={...}`` (a ``send`` operation per pushed event) and the error frames of
the wire protocol. Schemas are msgspec's JSON Schemas, shared under
``components/schemas``.

    doc = app.asyncapi()                     # a dict, ready for json.dumps
    wsgate asyncapi examples.chat.app:app    # the same, printed as JSON

A plug-in (:mod:`wsgate.plugins`), registered when this module is imported: it gives
every App :func:`asyncapi_document` as the builder behind ``App.asyncapi()``.
"""

from __future__ import annotations

import argparse
import inspect
import json
import re
import sys
import typing
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from .broadcast._recovery import RECOVERY_EVENT, SINCE_PARAM
from .gateway import MESSAGE_ATTR, MessageMeta
from .plugins import AppSetup, register
from .routing import compile_template

if TYPE_CHECKING:
    from .app import App
    from .plan import GatewayPlan, HandlerPlan

__all__ = ["ERROR_CODES", "asyncapi_document", "describe"]

ASYNCAPI_VERSION = "3.0.0"
SCHEMA_REF = "#/components/schemas/{name}"

#: The error frames of the wire protocol: code -> (when it is sent, schema of ``detail``).
ERROR_CODES: dict[str, tuple[str, dict[str, Any]]] = {
    "invalid_frame": (
        "The frame is not JSON, not an object, has no string `event` or a bad `id`. "
        "`id` is echoed if it could be read.",
        {"type": "null"},
    ),
    "unknown_event": (
        "No handler for the frame's event (or for binary frames).",
        {
            "type": "object",
            "properties": {"event": {"type": "string"}},
            "required": ["event"],
        },
    ),
    "validation_error": (
        "`data` (or a query, header or path value) failed validation.",
        {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "path": {"type": "string", "examples": ["$.data.text"]},
                    "message": {"type": "string"},
                },
                "required": ["path", "message"],
            },
        },
    ),
    "internal_error": (
        "The handler raised; nothing of the exception leaves the server.",
        {"type": "null"},
    ),
}
#: Errors a handler's request may be answered with, besides its reply.
REQUEST_ERRORS = ("validation_error", "internal_error")

_ID_SCHEMA: dict[str, Any] = {
    "description": "Correlates a request with its answer: every frame with an `id` gets "
    "exactly one answer carrying the same `id`.",
    "anyOf": [{"type": "integer"}, {"type": "string"}],
}
_CORRELATION = {
    "description": "The `id` of the request, echoed in its answer.",
    "location": "$message.payload#/id",
}
_KEY = re.compile(r"[^A-Za-z0-9._-]")


# --------------------------------------------------------------------------- what a gateway says


@dataclass
class Event:
    """One event a client sends to a gateway, as the generators see it."""

    name: str
    handler: str
    data: Any  # the Json[T] type, or _NO_DATA
    data_optional: bool
    reply: Any  # the return type (None for streams), or _UNKNOWN
    item: Any  # the stream item type, or _NO_ITEM
    is_stream: bool
    binary: bool = False
    wildcard: bool = False
    summary: str | None = None
    description: str | None = None
    tags: tuple[str, ...] = ()


@dataclass
class Gateway:
    """One gateway class, as the generators see it."""

    name: str
    cls: type
    template: str
    address: str
    params: list[tuple[str, str]]  # (name, converter)
    query: list[tuple[str, Any]]
    events: list[Event]
    pushes: dict[str, Any]
    summary: str | None
    description: str | None
    tags: tuple[str, ...]


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


#: A handler without a Json parameter: it does not read ``data``.
NO_DATA: Any = _Marker("NO_DATA")
#: A handler without a return annotation: its reply is not described.
UNKNOWN: Any = _Marker("UNKNOWN")
#: Not a stream: no items.
NO_ITEM: Any = _Marker("NO_ITEM")


def _unwrap(obj: Any) -> Any:
    return obj.__func__ if isinstance(obj, staticmethod | classmethod) else obj


def _method(cls: type, attr: str) -> Any:
    return _unwrap(inspect.getattr_static(cls, attr))


def _return_type(func: Any) -> Any:
    try:
        hints = typing.get_type_hints(func)
    except Exception:
        return UNKNOWN
    return hints.get("return", UNKNOWN)


def _stream_item(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (AsyncIterator, AsyncIterable, AsyncGenerator):
        args = typing.get_args(tp)
        return args[0] if args else UNKNOWN
    return UNKNOWN


def _event(plan: GatewayPlan, h: HandlerPlan, name: str) -> Event:
    func = _method(plan.cls, h.attr)
    metas: tuple[MessageMeta, ...] = getattr(func, MESSAGE_ATTR, ())
    meta = next((m for m in metas if m.event == name), None)
    data: Any = NO_DATA
    optional = False
    for p in h.params:
        if p.kind.name == "JSON":  # Kind.JSON: the frame's data, decoded into p.type
            data = p.type
            sig = inspect.signature(func).parameters.get(p.name)
            optional = sig is not None and sig.default is not sig.empty
    returns = _return_type(func)
    item = _stream_item(returns) if h.is_stream else NO_ITEM
    return Event(
        name=name,
        handler=h.qualname,
        data=data,
        data_optional=optional,
        reply=None if h.is_stream else returns,
        item=item,
        is_stream=h.is_stream,
        binary=name == "__binary__",
        wildcard=name == "*",
        summary=meta.summary if meta else None,
        description=(meta.description if meta and meta.description else inspect.getdoc(func)),
        tags=meta.tags if meta else (),
    )


def describe(app: App) -> list[Gateway]:
    """What each gateway of ``app`` declares, read from ``app.plans`` and the decorators."""
    gateways: list[Gateway] = []
    names: set[str] = set()
    for plan in app.plans:
        meta = plan.meta
        route = compile_template(plan.template, plan.cls)
        address = re.sub(r"{([A-Za-z_][A-Za-z0-9_]*)(?::[A-Za-z_]+)?}", r"{\1}", plan.template)
        events: list[Event] = []
        for name, h in sorted(plan.handlers.items()):
            events.append(_event(plan, h, name))
        if plan.wildcard is not None:
            events.append(_event(plan, plan.wildcard, "*"))
        if plan.binary is not None:
            events.append(_event(plan, plan.binary, "__binary__"))
        query: dict[str, Any] = {}
        hooks = [plan.on_connect, *plan.handlers.values(), plan.wildcard, plan.binary]
        for hook in hooks:
            for p in hook.params if hook is not None else ():
                if p.kind.name == "QUERY":
                    query.setdefault(p.key, p.type)
        doc = plan.meta.description or inspect.getdoc(plan.cls)
        if doc is not None and doc == inspect.getdoc(object):
            doc = None
        gateways.append(
            Gateway(
                name=_unique(_KEY.sub("_", plan.cls.__qualname__), names),
                cls=plan.cls,
                template=plan.template,
                address=address,
                params=list(zip(route.param_names, route.param_types, strict=True)),
                query=sorted(query.items()),
                events=events,
                pushes=dict(getattr(meta, "emits", {}) or {}),
                summary=meta.summary,
                description=doc,
                tags=meta.tags,
            )
        )
    return gateways


def _unique(key: str, taken: set[str]) -> str:
    out, n = key, 2
    while out in taken:
        out = f"{key}_{n}"
        n += 1
    taken.add(out)
    return out


# --------------------------------------------------------------------------- schemas


def _draft7(schema: Any) -> Any:
    """msgspec's JSON Schema (2020-12 flavoured) in the Draft 07 form AsyncAPI schemas use:
    ``prefixItems`` becomes an ``items`` list, an OpenAPI ``discriminator`` object its
    property name."""
    if isinstance(schema, list):
        return [_draft7(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _draft7(v) for k, v in schema.items()}
    if "prefixItems" in out:
        closed = out.get("items") is False
        out["items"] = out.pop("prefixItems")
        if closed:
            out["additionalItems"] = False
    disc = out.get("discriminator")
    if isinstance(disc, dict):
        out["discriminator"] = disc.get("propertyName", "type")
    return out


class Schemas:
    """Builds the JSON Schemas of many types at once, components shared."""

    def __init__(self, types: Iterable[Any]) -> None:
        wanted: list[Any] = []
        self.failed: dict[int, str] = {}
        for tp in types:
            if tp in (NO_DATA, UNKNOWN, NO_ITEM) or any(tp is w for w in wanted):
                continue
            try:
                msgspec.json.schema(tp)
            except Exception as exc:
                self.failed[id(tp)] = f"{tp!r}: {exc}"
                continue
            wanted.append(tp)
        schemas, components = msgspec.json.schema_components(wanted, ref_template=SCHEMA_REF)
        self._by_id = {id(tp): _draft7(s) for tp, s in zip(wanted, schemas, strict=True)}
        self.components: dict[str, Any] = {k: _draft7(v) for k, v in components.items()}

    def of(self, tp: Any) -> dict[str, Any]:
        """The schema of ``tp`` (``{}``, anything, for a type it cannot describe)."""
        if tp is NO_DATA:
            return {"description": "Not read by the handler (send null or leave it out)."}
        if tp is UNKNOWN or tp is NO_ITEM:
            return {}
        found = self._by_id.get(id(tp))
        if found is None:
            why = self.failed.get(id(tp), repr(tp))
            return {"description": f"Not describable as JSON Schema ({why})."}
        return dict(found)


def _all_types(gateways: list[Gateway]) -> list[Any]:
    types: list[Any] = []
    for g in gateways:
        for e in g.events:
            types += [e.data, e.reply, e.item]
        types += list(g.pushes.values())
        types += [tp for _, tp in g.query]
    return types


# --------------------------------------------------------------------------- the document


def _ref(*parts: str) -> dict[str, str]:
    return {"$ref": "#/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)}


def _tags(tags: Iterable[str]) -> list[dict[str, str]]:
    return [{"name": t} for t in tags]


def _info(obj: dict[str, Any], summary: str | None, description: str | None, tags: Any) -> None:
    if summary:
        obj["summary"] = summary
    if description:
        obj["description"] = description
    if tags:
        obj["tags"] = _tags(tags)


def _envelope(event: dict[str, Any], data: dict[str, Any], *, id: str | None) -> dict[str, Any]:
    props: dict[str, Any] = {"event": event}
    required = ["event"]
    if id == "request":
        props["id"] = _ID_SCHEMA
    elif id == "answer":
        props["id"] = {**_ID_SCHEMA, "description": "The `id` of the request."}
        required.append("id")
    props["data"] = data
    required.append("data")
    return {"type": "object", "properties": props, "required": required}


def _error_message(code: str) -> dict[str, Any]:
    when, detail = ERROR_CODES[code]
    data = {
        "type": "object",
        "properties": {
            "code": {"const": code},
            "message": {"type": "string", "description": "Human-readable."},
            "detail": detail,
        },
        "required": ["code", "message", "detail"],
    }
    payload = {
        "type": "object",
        "properties": {
            "event": {"const": "error"},
            "id": {
                "description": "The `id` of the frame in error; null if it had none.",
                "anyOf": [{"type": "integer"}, {"type": "string"}, {"type": "null"}],
            },
            "data": data,
        },
        "required": ["event", "id", "data"],
    }
    return {
        "name": "error",
        "title": f"error: {code}",
        "summary": when,
        "contentType": "application/json",
        "correlationId": _CORRELATION,
        "payload": payload,
    }


class _MessageAdder:
    """Registers a channel's messages under components/messages and in the channel."""

    def __init__(self, cid: str, messages: dict[str, Any], chan_msgs: dict[str, Any]) -> None:
        self.cid = cid
        self.messages = messages
        self.chan_msgs = chan_msgs
        self.keys: set[str] = set()

    def __call__(self, key: str, message: dict[str, Any]) -> dict[str, str]:
        """Add ``message``; return the reference an operation uses for it."""
        key = _unique(_KEY.sub("_", key), self.keys)
        self.messages[f"{self.cid}.{key}"] = message
        self.chan_msgs[key] = _ref("components", "messages", f"{self.cid}.{key}")
        return _ref("channels", self.cid, "messages", key)


_HISTORY_NOTE = (
    " Frames broadcast to a group with history carry one more member, `pos`: "
    '`{"group": <string>, "offset": <integer>, "epoch": <string>}`. A client that '
    "reconnects presents the last position it saw per group in the `wsgate.since` query "
    "parameter; when it is subscribed to such a group again it is sent the frames it "
    "missed, then `wsgate.recovery`."
)

_SINCE_SCHEMA: dict[str, Any] = {
    "type": "string",
    "description": "JSON object `{<group>: [<offset>, <epoch>]}`: the last position the "
    "client saw in each group with history (sent by reconnecting clients).",
}


def _recovery_message() -> dict[str, Any]:
    data = {
        "type": "object",
        "properties": {
            "group": {"type": "string"},
            "recovered": {
                "type": "boolean",
                "description": "False when the position was older than the history or "
                "its epoch changed: the application should reload its state.",
            },
            "missed": {"type": "integer", "description": "Frames replayed."},
            "offset": {"type": "integer"},
            "epoch": {"type": "string"},
        },
        "required": ["group", "recovered", "missed", "offset", "epoch"],
    }
    return {
        "name": RECOVERY_EVENT,
        "title": "recovery",
        "summary": "Sent after the replay of a group; `offset` and `epoch` are the "
        "client's position in the group from then on.",
        "contentType": "application/json",
        "payload": _envelope({"const": RECOVERY_EVENT}, data, id=None),
    }


def asyncapi_document(
    app: App, *, title: str = "wsgate application", version: str = "1.0.0"
) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of ``app``'s gateways, as a JSON-ready dict.

    One channel per gateway (its path template, with its parameters), a ``receive``
    operation per ``@on_message`` event with its ``reply``, a ``send`` operation for the
    items of each stream, for each event declared in ``@ws_controller(emits=...)`` and
    for the error frames. Types msgspec cannot describe are left open (``{}``) with a
    description saying so; nothing here raises for a gateway the App accepted.
    """
    gateways = describe(app)
    schemas = Schemas(_all_types(gateways))
    messages: dict[str, Any] = {f"error.{code}": _error_message(code) for code in ERROR_CODES}
    # Groups with history: positions on frames, wsgate.since, the recovery frame.
    history = any(getattr(b, "history_config", None) for b in app.broadcasters)
    if history:
        messages[RECOVERY_EVENT] = _recovery_message()
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    op_names: set[str] = set()
    for g in gateways:
        cid = g.name
        channel: dict[str, Any] = {"address": g.address, "title": g.cls.__qualname__}
        _info(channel, g.summary, g.description, g.tags)
        if g.params:
            channel["parameters"] = {
                name: {"description": f"Path parameter ({conv}) of `{g.template}`."}
                for name, conv in g.params
            }
        query = {k: schemas.of(tp) for k, tp in g.query}
        if history:
            query[SINCE_PARAM] = _SINCE_SCHEMA
        if query:
            channel["bindings"] = {
                "ws": {"bindingVersion": "0.1.0", "query": {"type": "object", "properties": query}}
            }
        chan_msgs: dict[str, Any] = {}

        add = _MessageAdder(cid, messages, chan_msgs)
        error_refs = {
            code: _ref("channels", cid, "messages", f"error.{code}") for code in ERROR_CODES
        }
        for code in ERROR_CODES:
            add.keys.add(f"error.{code}")
            chan_msgs[f"error.{code}"] = _ref("components", "messages", f"error.{code}")

        for e in g.events:
            op: dict[str, Any] = {"action": "receive", "channel": _ref("channels", cid)}
            _info(op, e.summary, e.description, e.tags)
            op["x-wsgate-handler"] = e.handler
            if e.binary:
                req = {
                    "name": e.name,
                    "title": "binary frame",
                    "contentType": "application/octet-stream",
                    "payload": {"type": "string", "format": "binary"},
                }
                op["messages"] = [add("binary", req)]
                operations[_unique(f"{cid}.binary", op_names)] = op
                continue
            label = "wildcard" if e.wildcard else e.name  # "*" cannot be a key
            event_schema = (
                {"type": "string", "description": "Any event without a handler of its own."}
                if e.wildcard
                else {"const": e.name}
            )
            data = schemas.of(e.data)
            if e.data_optional:
                data = {"anyOf": [data, {"type": "null"}], "description": "May be left out."}
            payload = _envelope(event_schema, data, id="request")
            if e.data is NO_DATA or e.data_optional:
                payload["required"].remove("data")
            request = {
                "name": e.name,
                "title": f"{e.name} request",
                "contentType": "application/json",
                "correlationId": _CORRELATION,
                "payload": payload,
            }
            _info(request, e.summary, e.description, ())
            op["messages"] = [add(f"request.{label}", request)]
            reply_schema = {"type": "null"} if e.is_stream else schemas.of(e.reply)
            reply = {
                "name": e.name,
                "title": f"{e.name} reply",
                "summary": "The handler's return value; sent for a request with an `id` "
                "(and without one, with no `id`, if the value is not null).",
                "contentType": "application/json",
                "correlationId": _CORRELATION,
                "payload": _envelope(event_schema, reply_schema, id="answer"),
            }
            if e.is_stream:
                reply["summary"] = "Sent at once for a stream request with an `id`."
            op["reply"] = {
                "channel": _ref("channels", cid),
                "messages": [
                    add(f"reply.{label}", reply),
                    *(error_refs[c] for c in REQUEST_ERRORS),
                ],
            }
            op_id = _unique(_KEY.sub("_", f"{cid}.{label}"), op_names)
            operations[op_id] = op
            if e.is_stream:
                item = {
                    "name": e.name,
                    "title": f"{e.name} stream item",
                    "summary": "One per item the stream yields, until it ends or the "
                    "connection closes.",
                    "contentType": "application/json",
                    "payload": _envelope(event_schema, schemas.of(e.item), id=None),
                }
                operations[_unique(f"{op_id}.items", op_names)] = {
                    "action": "send",
                    "channel": _ref("channels", cid),
                    "summary": f"The items of the {e.name} stream.",
                    "messages": [add(f"item.{label}", item)],
                }
        for event, tp in g.pushes.items():
            push = {
                "name": event,
                "title": f"{event} push",
                "contentType": "application/json",
                "payload": _envelope({"const": event}, schemas.of(tp), id=None),
            }
            operations[_unique(_KEY.sub("_", f"{cid}.push.{event}"), op_names)] = {
                "action": "send",
                "channel": _ref("channels", cid),
                "summary": f"The gateway pushes {event}.",
                "messages": [add(f"push.{event}", push)],
            }
        if history:
            chan_msgs[RECOVERY_EVENT] = _ref("components", "messages", RECOVERY_EVENT)
            operations[_unique(f"{cid}.recovery", op_names)] = {
                "action": "send",
                "channel": _ref("channels", cid),
                "summary": "After a reconnect that presented `wsgate.since`: whether the "
                "client recovered what it missed in a group it is subscribed to again.",
                "messages": [_ref("channels", cid, "messages", RECOVERY_EVENT)],
            }
        operations[_unique(f"{cid}.errors", op_names)] = {
            "action": "send",
            "channel": _ref("channels", cid),
            "summary": "Error frames; the connection stays open after each.",
            "messages": list(error_refs.values()),
        }
        channel["messages"] = chan_msgs
        channels[cid] = channel
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": title,
            "version": version,
            "description": "Generated by wsgate from the application's gateways. Text "
            "frames carry JSON envelopes `{event, data, id}`." + (_HISTORY_NOTE if history else ""),
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas.components, "messages": messages},
    }


# --------------------------------------------------------------------------- the command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``wsgate asyncapi``."""
    parser.add_argument("app", metavar="MODULE:APP", help="the App, e.g. examples.chat.app:app")
    parser.add_argument("-o", "--output", help="write to this file instead of stdout")
    parser.add_argument("--title", default="wsgate application", help="info.title")
    parser.add_argument("--version", dest="doc_version", default="1.0.0", help="info.version")
    parser.add_argument("--indent", type=int, default=2, help="JSON indentation (0: compact)")


def run(args: argparse.Namespace) -> int:
    """``wsgate asyncapi MODULE:APP``: print (or write) the app's AsyncAPI document."""
    from .loading import load_app

    app = load_app(args.app)
    if not hasattr(app, "asyncapi"):
        raise SystemExit(f"wsgate: {args.app} is not a wsgate App ({type(app).__name__})")
    doc = asyncapi_document(app, title=args.title, version=args.doc_version)
    text = json.dumps(doc, indent=args.indent or None, ensure_ascii=False) + "\n"
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


def plugin(setup: AppSetup) -> None:
    """The AsyncAPI plug-in: ``App.asyncapi()`` returns :func:`asyncapi_document`."""
    setup.describe_with(asyncapi_document)


register("asyncapi", plugin)
