"""JSON encoding shared by every send path: msgspec with a permissive default.

msgspec encodes Structs, dataclasses, attrs classes, datetimes, UUIDs, Decimals, enums
and sets natively; the hook below adds objects with a ``model_dump`` method (Pydantic
models) and ``__json__``, and says how to fix anything else.
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["decode", "encode"]


def _enc_hook(obj: Any) -> Any:
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    to_json = getattr(obj, "__json__", None)
    if callable(to_json):
        return to_json()
    raise TypeError(
        f"wsgate cannot encode an object of type {type(obj).__qualname__} as JSON; send a "
        "msgspec Struct, a dataclass, an attrs class, a dict/list of JSON values, or give "
        "the class a __json__() method that returns one"
    )


_encoder = msgspec.json.Encoder(enc_hook=_enc_hook)
_decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder()

#: Encode a value as JSON bytes.
encode = _encoder.encode
#: Decode JSON text or bytes into builtin types.
decode = _decoder.decode
