"""Codec between Flyte literals and plain Python values, for agents that run as Lambdas.

An agent gets its task inputs as a flyteidl `LiteralMap` plus the task template's interface, and hands back
its outputs as a dict that must travel as a `LiteralMap` again. flytekit's type engine does this inside a
normal Flyte task, but importing it costs seconds of cold start and a large deployment package, so this
module covers the types agents exchange using only the standard library, protobuf and flyteidl.

=======================  ====================================================================================
LiteralType              Python value
=======================  ====================================================================================
simple INTEGER           int (a bool is refused: Python treats it as an int, Flyte does not)
simple FLOAT             float (an int is accepted on encode)
simple STRING, BOOLEAN   str, bool
simple DATETIME          timezone-aware datetime in UTC (a naive datetime is taken as UTC on encode)
simple DURATION          timedelta
simple NONE              None (a literal with scalar.none_type)
simple STRUCT            dict; decoded from scalar.generic (a protobuf Struct) or from a msgpack scalar.binary
                         (what flytekit >= 1.14 writes for `dict` and dataclasses); encoded as msgpack, so
                         ints stay ints (a Struct holds every number as a float)
simple BINARY            bytes (scalar.binary.value)
collection_type          list (a tuple is accepted on encode)
map_value_type           dict with str keys
blob                     `Blob` (a str URI is accepted on encode and takes the declared format)
structured_dataset_type  `StructuredDataset` (a str URI is accepted on encode and takes the declared format)
enum_type                str, one of the enum's values
union_type               the value of the variant that holds it; `Optional[T]` is a union of T and NONE
=======================  ====================================================================================

Unions are written the way flytekit writes them: scalar.union holding the inner literal and the chosen
variant's type, copied from the interface so it keeps the `structure.tag` flytekit uses to pick the variant
back. Unlike flytekit, which refuses a value that fits several variants, encoding picks the first that fits.
A literal whose variable is absent from the interface is decoded by its own shape.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flyteidl.core import literals_pb2 as lit
from flyteidl.core import types_pb2 as types
from flyteidl.core.literals_pb2 import Literal, LiteralMap
from google.protobuf import duration_pb2, json_format, timestamp_pb2

from serverless_agents.exceptions import LiteralConversionError
from serverless_agents.flyte.wire import MAX_DURATION_SECONDS, duration_problem, timestamp_problem

if TYPE_CHECKING:
    from flyteidl.core.interface_pb2 import Variable
    from flyteidl.core.types_pb2 import LiteralType

__all__ = ["Blob", "StructuredDataset", "decode_literal_map", "encode_literal_map", "to_literal", "to_python"]

_S = types.SimpleType
_MULTIPART = types.BlobType.BlobDimensionality.MULTIPART
_MSGPACK_TAG = "msgpack"
# Literal shapes (see `_shape`) that a literal of each simple type may have.
_SIMPLE_SHAPES: dict[int, tuple[str, ...]] = {
    _S.INTEGER: ("integer",),
    _S.FLOAT: ("float_value",),
    _S.STRING: ("string_value",),
    _S.BOOLEAN: ("boolean",),
    _S.DATETIME: ("datetime",),
    _S.DURATION: ("duration",),
    _S.NONE: ("none_type",),
    _S.STRUCT: ("generic", "binary"),
    _S.BINARY: ("binary",),
}
_TYPE_SHAPES = {
    "collection_type": "collection",
    "map_value_type": "map",
    "blob": "blob",
    "structured_dataset_type": "structured_dataset",
    "enum_type": "string_value",
}


@dataclass(frozen=True)
class Blob:
    """A file (or a directory, when multipart) by reference: agents pass URIs, never the bytes."""

    uri: str
    format: str = ""
    multipart: bool = False


@dataclass(frozen=True)
class StructuredDataset:
    """A dataframe-like dataset by reference; `format` is e.g. "parquet", or "" when unspecified."""

    uri: str
    format: str = ""


def decode_literal_map(
    literals: LiteralMap,
    variables: Mapping[str, Variable] | None,
    *,
    prefix: str = "inputs",
    exact: bool = False,
) -> dict[str, Any]:
    """Decode every literal, checked against its variable's type.

    With `exact`, the names must be the interface's: none unknown, none missing but those whose type admits
    None. That is what propeller sends: every input of the interface, defaults already filled in by the
    workflow's bindings or the launch plan.
    """
    variables = variables or {}
    if exact:
        _check_names(literals, variables, prefix)
    return {
        name: to_python(value, variables[name].type if name in variables else None, field=f"{prefix}.{name}")
        for name, value in literals.literals.items()
    }


def _check_names(literals: LiteralMap, variables: Mapping[str, Variable], prefix: str) -> None:
    unknown = sorted(name for name in literals.literals if name not in variables)
    if unknown:
        declared = ", ".join(sorted(variables)) or "nothing"
        raise LiteralConversionError(
            f"{prefix}.{unknown[0]}", f"not in the interface, which declares {declared}"
        )
    for name, variable in sorted(variables.items()):
        if name not in literals.literals and not _allows_none(variable.type):
            raise LiteralConversionError(f"{prefix}.{name}", f"missing: expected {_type_name(variable.type)}")


def encode_literal_map(
    values: Mapping[str, Any], variables: Mapping[str, Variable], *, prefix: str = "outputs"
) -> LiteralMap:
    """Encode exactly the declared variables; a missing value is only allowed where the type admits None."""
    unknown = sorted(str(name) for name in values if name not in variables)
    if unknown:
        declared = ", ".join(sorted(variables)) or "nothing"
        problem = f"not in the interface, which declares {declared}"
        raise LiteralConversionError(f"{prefix}.{unknown[0]}", problem)
    result = LiteralMap()
    for name, variable in variables.items():
        field = f"{prefix}.{name}"
        if name not in values and not _allows_none(variable.type):
            raise LiteralConversionError(field, f"missing: expected {_type_name(variable.type)}")
        result.literals[name].CopyFrom(to_literal(values.get(name), variable.type, field=field))
    return result


def to_python(literal: Literal, literal_type: LiteralType | None, *, field: str) -> Any:
    """Decode one literal, checking it against `literal_type`, or trusting its own shape when that is None."""
    shape = _shape(literal)
    kind = literal_type.WhichOneof("type") if literal_type is not None else None
    if literal_type is None or kind is None:  # an unset type says as little as no type
        return _decode_shape(literal, shape, None, field)
    check_literal_type(literal_type, field=field)
    if kind == "union_type":
        return _decode_union(literal, literal_type, field)
    allowed = _SIMPLE_SHAPES.get(literal_type.simple, ()) if kind == "simple" else (_TYPE_SHAPES.get(kind),)
    if shape not in allowed:
        raise LiteralConversionError(field, f"expected {_type_name(literal_type)}, found {shape} literal")
    value = _decode_shape(literal, shape, literal_type, field)
    if kind == "enum_type" and value not in literal_type.enum_type.values:
        raise LiteralConversionError(field, f"expected {_type_name(literal_type)}, found {value!r}")
    return value


def to_literal(value: Any, literal_type: LiteralType, *, field: str) -> Literal:
    """Encode one Python value as a literal of `literal_type`."""
    kind = literal_type.WhichOneof("type")
    if kind == "union_type":
        return _encode_union(value, literal_type, field)
    if kind == "collection_type" and isinstance(value, (list, tuple)):
        item_type = literal_type.collection_type
        items = [to_literal(item, item_type, field=f"{field}[{i}]") for i, item in enumerate(value)]
        return Literal(collection=lit.LiteralCollection(literals=items))
    if kind == "map_value_type" and isinstance(value, Mapping):
        entries = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise LiteralConversionError(field, f"expected str map keys, found {_found(key)}")
            entries[key] = to_literal(item, literal_type.map_value_type, field=_key(field, key))
        return Literal(map=LiteralMap(literals=entries))
    scalar = None
    if kind == "simple":
        scalar = _encode_simple(value, literal_type.simple, field)
    elif kind == "blob" and isinstance(value, (Blob, str)):
        scalar = lit.Scalar(blob=_encode_blob(value, literal_type.blob, field))
    elif kind == "structured_dataset_type" and isinstance(value, (StructuredDataset, str)):
        dataset = _encode_dataset(value, literal_type.structured_dataset_type, field)
        scalar = lit.Scalar(structured_dataset=dataset)
    elif kind == "enum_type" and isinstance(value, str) and value in literal_type.enum_type.values:
        scalar = lit.Scalar(primitive=lit.Primitive(string_value=value))
    if scalar is None:
        raise LiteralConversionError(field, f"expected {_type_name(literal_type)}, found {_found(value)}")
    return Literal(scalar=scalar)


def _shape(literal: Literal) -> str:
    """One word for what a literal holds, down to the primitive kind, so checks and messages can share it."""
    kind = literal.WhichOneof("value")
    if kind != "scalar":
        return str(kind or "empty")
    scalar_kind = literal.scalar.WhichOneof("value")
    if scalar_kind == "primitive":
        return str(literal.scalar.primitive.WhichOneof("value") or "empty primitive")
    return str(scalar_kind or "empty scalar")


def _decode_shape(literal: Literal, shape: str, literal_type: LiteralType | None, field: str) -> Any:
    scalar = literal.scalar
    if shape == "collection":
        item_type = literal_type.collection_type if literal_type is not None else None
        items = literal.collection.literals
        return [to_python(item, item_type, field=f"{field}[{i}]") for i, item in enumerate(items)]
    if shape == "map":
        value_type = literal_type.map_value_type if literal_type is not None else None
        return {k: to_python(v, value_type, field=_key(field, k)) for k, v in literal.map.literals.items()}
    if shape in ("integer", "float_value", "string_value", "boolean"):
        return getattr(scalar.primitive, shape)
    if shape == "datetime":
        return _decode_datetime(scalar.primitive.datetime, field)
    if shape == "duration":
        return _decode_duration(scalar.primitive.duration, field)
    if shape == "none_type":
        return None
    if shape == "generic":
        return json_format.MessageToDict(scalar.generic)
    if shape == "binary" and scalar.binary.tag == _MSGPACK_TAG:
        try:
            return _unpack_msgpack(scalar.binary.value)
        except ValueError as exc:  # msgpack's own errors (invalid, truncated, trailing, too deep) included
            reason = str(exc) or "a reserved or malformed type byte"  # msgpack's FormatError says nothing
            raise LiteralConversionError(field, f"expected valid msgpack data, {reason}") from None
    if shape == "binary":
        return scalar.binary.value
    if shape == "blob":
        blob_type = scalar.blob.metadata.type
        declared = literal_type.blob.format if literal_type is not None else ""
        _check_reference(scalar.blob.uri, declared, blob_type.format or declared, field)
        return Blob(scalar.blob.uri, blob_type.format, blob_type.dimensionality == _MULTIPART)
    if shape == "structured_dataset":
        dataset = scalar.structured_dataset
        fmt = dataset.metadata.structured_dataset_type.format
        declared = literal_type.structured_dataset_type.format if literal_type is not None else ""
        _check_reference(dataset.uri, declared, fmt or declared, field)
        return StructuredDataset(dataset.uri, fmt)
    if shape == "union":
        return to_python(scalar.union.value, scalar.union.type, field=field)
    raise LiteralConversionError(field, f"cannot decode {shape} literal")


def _decode_union(literal: Literal, literal_type: LiteralType, field: str) -> Any:
    variants = list(literal_type.union_type.variants)
    inner = literal
    if _shape(literal) == "union":
        inner, tag = literal.scalar.union.value, literal.scalar.union.type.structure.tag
        # flytekit tags each variant with its transformer's name: the tag, not the shape, says which it wrote.
        variants = [v for v in variants if tag and v.structure.tag == tag] or variants
    errors = []
    for variant in variants:
        try:
            return to_python(inner, variant, field=field)
        except LiteralConversionError as exc:
            errors.append(exc)
    raise _union_error(errors, field, f"expected {_type_name(literal_type)}, found {_shape(inner)} literal")


def _encode_union(value: Any, literal_type: LiteralType, field: str) -> Literal:
    errors = []
    for variant in literal_type.union_type.variants:
        try:
            inner = to_literal(value, variant, field=field)
        except LiteralConversionError as exc:
            errors.append(exc)
            continue
        return Literal(scalar=lit.Scalar(union=lit.Union(value=inner, type=variant)))
    raise _union_error(errors, field, f"expected {_type_name(literal_type)}, found {_found(value)}")


def _union_error(errors: list[LiteralConversionError], field: str, problem: str) -> LiteralConversionError:
    # An error deeper than the union itself means that variant's outer shape matched: it is the useful one.
    nested = [e for e in errors if e.field != field]
    return nested[0] if nested else LiteralConversionError(field, problem)


def _encode_simple(value: Any, simple: int, field: str) -> Any:
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if simple == _S.INTEGER and is_int:
        if not -(2**63) <= value < 2**63:
            raise LiteralConversionError(field, f"expected a 64-bit integer, found {value}")
        return lit.Scalar(primitive=lit.Primitive(integer=value))
    if simple == _S.FLOAT and (is_int or isinstance(value, float)):
        return lit.Scalar(primitive=lit.Primitive(float_value=float(value)))
    if simple == _S.STRING and isinstance(value, str):
        return lit.Scalar(primitive=lit.Primitive(string_value=value))
    if simple == _S.BOOLEAN and isinstance(value, bool):
        return lit.Scalar(primitive=lit.Primitive(boolean=value))
    if simple == _S.DATETIME and isinstance(value, dt.datetime):
        stamp = timestamp_pb2.Timestamp()
        stamp.FromDatetime(value if value.tzinfo else value.replace(tzinfo=dt.UTC))
        return lit.Scalar(primitive=lit.Primitive(datetime=stamp))
    if simple == _S.DURATION and isinstance(value, dt.timedelta):
        if abs(value.total_seconds()) > MAX_DURATION_SECONDS:
            raise LiteralConversionError(field, f"expected a duration within 10,000 years, found {value}")
        duration = duration_pb2.Duration()
        duration.FromTimedelta(value)
        return lit.Scalar(primitive=lit.Primitive(duration=duration))
    if simple == _S.NONE and value is None:
        return lit.Scalar(none_type=lit.Void())
    if simple == _S.STRUCT and isinstance(value, Mapping):
        # As flytekit >= 1.14 writes `dict` and dataclasses: msgpack keeps 2 an int (a Struct makes it 2.0).
        try:
            packed = _pack_msgpack(dict(value))
        except (TypeError, ValueError, OverflowError) as exc:
            raise LiteralConversionError(field, f"expected a JSON-like dict with str keys, {exc}") from None
        return lit.Scalar(binary=lit.Binary(value=packed, tag=_MSGPACK_TAG))
    if simple == _S.BINARY and isinstance(value, (bytes, bytearray)):
        return lit.Scalar(binary=lit.Binary(value=bytes(value)))
    return None


def _encode_blob(value: Blob | str, blob_type: Any, field: str) -> Any:
    declared = blob_type.format
    uri, fmt = (value, declared) if isinstance(value, str) else (value.uri, value.format or declared)
    multipart = blob_type.dimensionality == _MULTIPART
    if isinstance(value, Blob) and value.multipart != multipart:
        want, got = ("multipart", "single") if multipart else ("single", "multipart")
        raise LiteralConversionError(field, f"expected a {want} blob, found a {got} one")
    _check_reference(uri, declared, fmt, field)
    stored_type = types.BlobType(format=fmt, dimensionality=blob_type.dimensionality)
    return lit.Blob(uri=uri, metadata=lit.BlobMetadata(type=stored_type))


def _encode_dataset(value: StructuredDataset | str, dataset_type: Any, field: str) -> Any:
    declared = dataset_type.format
    uri, fmt = (value, declared) if isinstance(value, str) else (value.uri, value.format or declared)
    _check_reference(uri, declared, fmt, field)
    stored_type = types.StructuredDatasetType()
    stored_type.CopyFrom(dataset_type)  # keep the declared columns and schema, only the format may differ
    stored_type.format = fmt
    metadata = lit.StructuredDatasetMetadata(structured_dataset_type=stored_type)
    return lit.StructuredDataset(uri=uri, metadata=metadata)


def _check_reference(uri: str, declared: str, fmt: str, field: str) -> None:
    if not uri:
        raise LiteralConversionError(field, "expected a URI, found an empty string")
    # An empty format is Flyte's "any format", so only two different non-empty formats conflict.
    if declared and fmt != declared:
        raise LiteralConversionError(field, f"expected format {declared!r}, found {fmt!r}")


def check_literal_type(literal_type: LiteralType, *, field: str) -> None:
    """Refuse a type naming an enum value flyteidl lacks: `{"simple": 99}` parses, but means nothing."""
    kind = literal_type.WhichOneof("type")
    if kind == "simple" and literal_type.simple not in _SIMPLE_SHAPES:
        raise LiteralConversionError(field, f"unknown simple type {literal_type.simple}")
    if kind == "blob" and literal_type.blob.dimensionality not in types.BlobType.BlobDimensionality.values():
        raise LiteralConversionError(field, f"unknown blob dimensionality {literal_type.blob.dimensionality}")
    for inner in _inner_types(literal_type):
        check_literal_type(inner, field=field)


def _inner_types(literal_type: LiteralType) -> list[LiteralType]:
    kind = literal_type.WhichOneof("type")
    if kind == "collection_type":
        return [literal_type.collection_type]
    if kind == "map_value_type":
        return [literal_type.map_value_type]
    if kind == "union_type":
        return list(literal_type.union_type.variants)
    return []


def _decode_datetime(stamp: timestamp_pb2.Timestamp, field: str) -> dt.datetime:
    if (problem := timestamp_problem(stamp)) is not None:
        raise LiteralConversionError(field, problem)
    return stamp.ToDatetime(tzinfo=dt.UTC)


def _decode_duration(duration: duration_pb2.Duration, field: str) -> dt.timedelta:
    if (problem := duration_problem(duration)) is not None:
        raise LiteralConversionError(field, problem)
    return duration.ToTimedelta()


def _allows_none(literal_type: LiteralType) -> bool:
    if literal_type.WhichOneof("type") == "union_type":
        return any(_allows_none(v) for v in literal_type.union_type.variants)
    return bool(literal_type.WhichOneof("type") == "simple" and literal_type.simple == _S.NONE)


def _type_name(literal_type: LiteralType) -> str:
    kind = literal_type.WhichOneof("type")
    if kind == "simple":
        known = literal_type.simple in _SIMPLE_SHAPES
        return str(_S.Name(literal_type.simple)) if known else f"unknown simple type {literal_type.simple}"
    if kind == "collection_type":
        return f"a list of {_type_name(literal_type.collection_type)}"
    if kind == "map_value_type":
        return f"a map of str to {_type_name(literal_type.map_value_type)}"
    if kind == "union_type":
        return " | ".join(_type_name(v) for v in literal_type.union_type.variants)
    if kind == "enum_type":
        return f"one of {list(literal_type.enum_type.values)}"
    return str(kind or "an unset type")


def _found(value: Any) -> str:
    if value is None:
        return "None"
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


def _key(field: str, key: str) -> str:
    return f"{field}[{json.dumps(key, ensure_ascii=False)}]"


def _pack_msgpack(value: dict[str, Any]) -> bytes:
    """Encode a JSON-like dict as msgpack, as flytekit writes `dict` and dataclasses.

    The codec is the `msgpack` package's (a well-kept library's job: a 0.5 MB wheel, 1.7 MB unpacked, about
    2 ms to import after its dependencies: `python -X importtime -c "import msgpack"`), imported here rather
    than at module level: most tasks carry no such literal, and a Lambda's cold start pays for what it
    imports. Only what JSON holds is accepted (None, bool, int, float, str, lists, dicts with str keys):
    Flyte shows these values as JSON, and flytekit's `dict` means a JSON-like dict.
    """
    import msgpack

    _check_json_like(value, depth=0)
    return msgpack.packb(value, use_bin_type=True)  # type: ignore[no-any-return]


def _unpack_msgpack(data: bytes) -> Any:
    """Decode the msgpack flytekit writes; trailing bytes, invalid data, extension types (flytekit writes
    none for a JSON-like dict) and nesting beyond msgpack's own stack limit are ValueErrors."""
    import msgpack

    return msgpack.unpackb(data, raw=False, strict_map_key=True, ext_hook=_no_extension, timestamp=0)


_MAX_PACK_DEPTH = 100


def _check_json_like(value: Any, depth: int) -> None:
    """msgpack packs bytes, non-str keys and more; a JSON-like dict holds what JSON does, with str keys."""
    if depth > _MAX_PACK_DEPTH:
        raise ValueError(f"nested deeper than {_MAX_PACK_DEPTH} levels")
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"found a {type(key).__name__} key {key!r}")
            _check_json_like(item, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            _check_json_like(item, depth + 1)
    elif not (value is None or isinstance(value, bool | int | float | str)):
        raise TypeError(f"found {_found(value)}, which JSON cannot hold")


def _no_extension(code: int, data: bytes) -> Any:
    raise ValueError(f"unsupported msgpack extension type {code}")


def jsonable(value: Any) -> Any:
    """A decoded value as plain JSON: references as their URI, times as ISO 8601 or seconds, bytes base64."""
    if isinstance(value, Blob | StructuredDataset):
        return value.uri
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value
