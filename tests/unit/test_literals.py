"""The literal codec: round trips per type, error paths, and agreement with flytekit's own type engine."""

from __future__ import annotations

import datetime as dt
import enum
import typing
from typing import TYPE_CHECKING, Any

import msgpack
import pytest
from flyteidl.core import interface_pb2, literals_pb2, types_pb2
from flytekit import FlyteContextManager
from flytekit.core.type_engine import TypeEngine
from flytekit.models.literals import Literal as FlytekitLiteral
from flytekit.types.directory import FlyteDirectory
from flytekit.types.file import FlyteFile
from flytekit.types.structured import StructuredDataset as FlytekitDataset
from google.protobuf import struct_pb2

from serverless_agents.exceptions import LiteralConversionError
from serverless_agents.flyte.literals import (
    Blob,
    StructuredDataset,
    check_literal_type,
    decode_literal_map,
    encode_literal_map,
    to_literal,
    to_python,
)

if TYPE_CHECKING:
    from collections.abc import Callable

S = types_pb2.SimpleType
UTC = dt.UTC


def simple(kind: int) -> types_pb2.LiteralType:
    return types_pb2.LiteralType(simple=kind)


def list_of(item: types_pb2.LiteralType) -> types_pb2.LiteralType:
    return types_pb2.LiteralType(collection_type=item)


def map_of(value: types_pb2.LiteralType) -> types_pb2.LiteralType:
    return types_pb2.LiteralType(map_value_type=value)


def optional(inner: types_pb2.LiteralType, tag: str = "int") -> types_pb2.LiteralType:
    # Tagged exactly as flytekit tags Optional[T] variants.
    variants = [types_pb2.LiteralType(), types_pb2.LiteralType(simple=S.NONE)]
    variants[0].CopyFrom(inner)
    variants[0].structure.tag = tag
    variants[1].structure.tag = "none"
    return types_pb2.LiteralType(union_type=types_pb2.UnionType(variants=variants))


def blob_type(fmt: str = "", multipart: bool = False) -> types_pb2.LiteralType:
    dims = types_pb2.BlobType.BlobDimensionality
    dim = dims.MULTIPART if multipart else dims.SINGLE
    return types_pb2.LiteralType(blob=types_pb2.BlobType(format=fmt, dimensionality=dim))


def dataset_type(fmt: str = "") -> types_pb2.LiteralType:
    return types_pb2.LiteralType(structured_dataset_type=types_pb2.StructuredDatasetType(format=fmt))


def enum_type(*values: str) -> types_pb2.LiteralType:
    return types_pb2.LiteralType(enum_type=types_pb2.EnumType(values=values))


def variables(**types: types_pb2.LiteralType) -> dict[str, interface_pb2.Variable]:
    return {name: interface_pb2.Variable(type=t) for name, t in types.items()}


def over_the_wire(literal_map: literals_pb2.LiteralMap) -> literals_pb2.LiteralMap:
    """Serialize and parse again, so a round trip also proves the message is valid on the wire."""
    return literals_pb2.LiteralMap.FromString(literal_map.SerializeToString())


AWARE = dt.datetime(2024, 2, 29, 23, 59, 58, 123456, tzinfo=UTC)
ROUND_TRIPS: list[tuple[str, types_pb2.LiteralType, Any]] = [
    ("int", simple(S.INTEGER), 42),
    ("int-min", simple(S.INTEGER), -(2**63)),
    ("float", simple(S.FLOAT), 1.5),
    ("str", simple(S.STRING), "héllo"),
    ("bool-true", simple(S.BOOLEAN), True),
    ("bool-false", simple(S.BOOLEAN), False),
    ("datetime", simple(S.DATETIME), AWARE),
    ("duration", simple(S.DURATION), dt.timedelta(days=-1, seconds=5, microseconds=7)),
    ("none", simple(S.NONE), None),
    ("struct", simple(S.STRUCT), {"a": 1.0, "b": [True, None, "x", {"c": 2.5}], "d": {}}),
    ("binary", simple(S.BINARY), b"\x00\xffbytes"),
    ("list-int", list_of(simple(S.INTEGER)), [1, 2, 3]),
    ("list-empty", list_of(simple(S.INTEGER)), []),
    ("map-float", map_of(simple(S.FLOAT)), {"a": 1.5, "b": -2.0}),
    (
        "list-of-map-of-list",
        list_of(map_of(list_of(simple(S.STRING)))),
        [{"a": ["x", "y"], "b": []}, {}, {"c": ["z"]}],
    ),
    ("blob", blob_type("csv"), Blob("s3://bucket/key.csv", "csv")),
    ("blob-multipart", blob_type(multipart=True), Blob("s3://bucket/dir/", multipart=True)),
    ("dataset", dataset_type("parquet"), StructuredDataset("s3://bucket/data", "parquet")),
    ("enum", enum_type("red", "blue"), "blue"),
    ("optional-present", optional(simple(S.INTEGER)), 7),
    ("optional-absent", optional(simple(S.INTEGER)), None),
    ("optional-list", optional(list_of(simple(S.INTEGER)), tag="Typed List"), [1, 2]),
    ("list-of-optional", list_of(optional(simple(S.FLOAT), tag="float")), [1.0, None, 2.0]),
]


@pytest.mark.parametrize(
    ("literal_type", "value"), [c[1:] for c in ROUND_TRIPS], ids=[c[0] for c in ROUND_TRIPS]
)
def test_round_trip(literal_type: types_pb2.LiteralType, value: Any) -> None:
    declared = variables(x=literal_type)
    encoded = over_the_wire(encode_literal_map({"x": value}, declared))
    decoded = decode_literal_map(encoded, declared, prefix="outputs")
    assert decoded == {"x": value}
    assert type(decoded["x"]) is type(value)


@pytest.mark.parametrize(
    ("literal_type", "value"), [c[1:] for c in ROUND_TRIPS], ids=[c[0] for c in ROUND_TRIPS]
)
def test_untyped_decode_reads_the_literals_own_shape(literal_type: types_pb2.LiteralType, value: Any) -> None:
    encoded = encode_literal_map({"x": value}, variables(x=literal_type))
    if literal_type.WhichOneof("type") == "enum_type":
        value = str(value)  # an enum travels as a plain string
    assert decode_literal_map(encoded, None) == {"x": value}
    assert decode_literal_map(encoded, variables(other=simple(S.INTEGER))) == {"x": value}


@pytest.mark.parametrize(
    ("literal_type", "value", "expected"),
    [
        (simple(S.FLOAT), 3, 3.0),
        (simple(S.DATETIME), dt.datetime(2024, 1, 1, 12), dt.datetime(2024, 1, 1, 12, tzinfo=UTC)),
        (
            simple(S.DATETIME),
            dt.datetime(2024, 1, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=2))),
            dt.datetime(2024, 1, 1, 10, tzinfo=UTC),
        ),
        (list_of(simple(S.INTEGER)), (1, 2), [1, 2]),
        (blob_type("csv"), "s3://bucket/key.csv", Blob("s3://bucket/key.csv", "csv")),
        (blob_type("csv"), Blob("s3://bucket/key.csv"), Blob("s3://bucket/key.csv", "csv")),
        (blob_type(multipart=True), "s3://bucket/dir/", Blob("s3://bucket/dir/", multipart=True)),
        (dataset_type("parquet"), "s3://bucket/data", StructuredDataset("s3://bucket/data", "parquet")),
        (dataset_type(), StructuredDataset("s3://b/d", "csv"), StructuredDataset("s3://b/d", "csv")),
        (simple(S.BINARY), bytearray(b"ab"), b"ab"),
    ],
)
def test_encode_normalizes(literal_type: types_pb2.LiteralType, value: Any, expected: Any) -> None:
    literal = to_literal(value, literal_type, field="outputs.x")
    decoded = to_python(literal, literal_type, field="outputs.x")
    assert decoded == expected
    assert type(decoded) is type(expected)


def test_dataset_keeps_declared_columns() -> None:
    column = types_pb2.StructuredDatasetType.DatasetColumn(name="a", literal_type=simple(S.INTEGER))
    literal_type = types_pb2.LiteralType(
        structured_dataset_type=types_pb2.StructuredDatasetType(columns=[column])
    )
    literal = to_literal(StructuredDataset("s3://b/d", "parquet"), literal_type, field="outputs.x")
    stored = literal.scalar.structured_dataset.metadata.structured_dataset_type
    assert [c.name for c in stored.columns] == ["a"]
    assert stored.format == "parquet"


def test_optional_output_may_be_omitted() -> None:
    declared = variables(x=optional(simple(S.INTEGER)), y=simple(S.NONE))
    assert decode_literal_map(encode_literal_map({}, declared), declared) == {"x": None, "y": None}


def test_plain_none_literal_decodes_as_optional() -> None:
    none = literals_pb2.Literal(scalar=literals_pb2.Scalar(none_type=literals_pb2.Void()))
    assert to_python(none, optional(simple(S.INTEGER)), field="inputs.x") is None


def test_union_picks_the_first_variant_that_fits() -> None:
    variants = [simple(S.INTEGER), simple(S.FLOAT), simple(S.STRING)]
    union = types_pb2.LiteralType(union_type=types_pb2.UnionType(variants=variants))
    for value, expected in [(1, S.INTEGER), (True, None), (1.5, S.FLOAT), ("s", S.STRING)]:
        if expected is None:
            with pytest.raises(
                LiteralConversionError, match=r"^outputs\.u: expected INTEGER \| FLOAT \| STRING"
            ):
                to_literal(value, union, field="outputs.u")
            continue
        literal = to_literal(value, union, field="outputs.u")
        assert literal.scalar.union.type.simple == expected
        assert to_python(literal, union, field="inputs.u") == value


def test_unset_variable_type_decodes_by_shape() -> None:
    assert to_python(literal_of({"a": 1}, simple(S.STRUCT)), types_pb2.LiteralType(), field="inputs.x") == {
        "a": 1
    }
    assert to_python(literal_of(5, simple(S.INTEGER)), types_pb2.LiteralType(), field="inputs.x") == 5


def test_decode_tolerates_inputs_missing_from_the_map() -> None:
    assert decode_literal_map(literals_pb2.LiteralMap(), variables(x=simple(S.INTEGER))) == {}


ENCODE_ERRORS: list[tuple[types_pb2.LiteralType, Any, str]] = [
    (simple(S.INTEGER), "1", r"outputs\.x: expected INTEGER, found str '1'"),
    (simple(S.INTEGER), True, r"outputs\.x: expected INTEGER, found bool True"),
    (simple(S.INTEGER), 2**63, r"outputs\.x: expected a 64-bit integer"),
    (simple(S.FLOAT), False, r"outputs\.x: expected FLOAT, found bool False"),
    (simple(S.BOOLEAN), 1, r"outputs\.x: expected BOOLEAN, found int 1"),
    (simple(S.STRING), None, r"outputs\.x: expected STRING, found None"),
    (simple(S.DATETIME), dt.date(2024, 1, 1), r"outputs\.x: expected DATETIME, found date"),
    (simple(S.STRUCT), {"a": b"x"}, r"outputs\.x: expected a JSON-like dict"),
    (simple(S.STRUCT), {1: "a"}, r"outputs\.x: expected a JSON-like dict"),
    (list_of(simple(S.INTEGER)), [1, 2, "3"], r"outputs\.x\[2\]: expected INTEGER, found str '3'"),
    (list_of(simple(S.INTEGER)), "123", r"outputs\.x: expected a list of INTEGER, found str"),
    (map_of(simple(S.FLOAT)), {"k": "v"}, r'outputs\.x\["k"\]: expected FLOAT, found str'),
    (map_of(simple(S.FLOAT)), {1: 1.0}, r"outputs\.x: expected str map keys, found int 1"),
    (
        list_of(map_of(list_of(simple(S.STRING)))),
        [{"a": []}, {"b": ["ok", 5]}],
        r'outputs\.x\[1\]\["b"\]\[1\]: expected STRING, found int 5',
    ),
    (enum_type("red"), "green", r"outputs\.x: expected one of \['red'\], found str 'green'"),
    (optional(simple(S.INTEGER)), "7", r"outputs\.x: expected INTEGER \| NONE, found str '7'"),
    (optional(list_of(simple(S.INTEGER))), [1, "2"], r"outputs\.x\[1\]: expected INTEGER"),
    (blob_type("csv"), Blob("s3://b/k", "json"), r"outputs\.x: expected format 'csv', found 'json'"),
    (blob_type(), Blob("s3://b/d", multipart=True), r"outputs\.x: expected a single blob, found a multipart"),
    (blob_type(multipart=True), Blob("s3://b/d"), r"outputs\.x: expected a multipart blob"),
    (blob_type(), "", r"outputs\.x: expected a URI, found an empty string"),
    (blob_type(), StructuredDataset("s3://b/d"), r"outputs\.x: expected blob, found StructuredDataset"),
    (dataset_type("parquet"), StructuredDataset("s3://b/d", "csv"), r"outputs\.x: expected format 'parquet'"),
]


@pytest.mark.parametrize(("literal_type", "value", "message"), ENCODE_ERRORS)
def test_encode_errors_name_the_path(literal_type: types_pb2.LiteralType, value: Any, message: str) -> None:
    with pytest.raises(LiteralConversionError, match=f"^{message}"):
        encode_literal_map({"x": value}, variables(x=literal_type))


def test_encode_rejects_missing_and_undeclared_outputs() -> None:
    declared = variables(o0=simple(S.INTEGER))
    with pytest.raises(LiteralConversionError, match=r"^outputs\.o0: missing: expected INTEGER$") as missing:
        encode_literal_map({}, declared)
    assert missing.value.field == "outputs.o0"
    with pytest.raises(
        LiteralConversionError, match=r"^outputs\.o9: not in the interface, which declares o0$"
    ):
        encode_literal_map({"o0": 1, "o9": 2}, declared)


def literal_of(value: Any, literal_type: types_pb2.LiteralType) -> literals_pb2.Literal:
    return to_literal(value, literal_type, field="setup")


def offloaded() -> literals_pb2.Literal:
    return literals_pb2.Literal(offloaded_metadata=literals_pb2.LiteralOffloadedMetadata(uri="s3://b/o"))


DECODE_ERRORS: list[tuple[literals_pb2.Literal, types_pb2.LiteralType | None, str]] = [
    (
        literal_of("1", simple(S.STRING)),
        simple(S.INTEGER),
        r"inputs\.x: expected INTEGER, found string_value literal",
    ),
    (
        literal_of(1, simple(S.INTEGER)),
        simple(S.FLOAT),
        r"inputs\.x: expected FLOAT, found integer literal",
    ),
    (
        literal_of([1], list_of(simple(S.INTEGER))),
        simple(S.INTEGER),
        r"inputs\.x: expected INTEGER, found collection literal",
    ),
    (
        literal_of([1, 2], list_of(simple(S.INTEGER))),
        list_of(simple(S.STRING)),
        r"inputs\.x\[0\]: expected STRING, found integer literal",
    ),
    (
        literal_of({"k": 1}, map_of(simple(S.INTEGER))),
        map_of(simple(S.BOOLEAN)),
        r'inputs\.x\["k"\]: expected B',
    ),
    (
        literal_of("green", simple(S.STRING)),
        enum_type("red"),
        r"inputs\.x: expected one of \['red'\], found 'gre",
    ),
    (
        literal_of(1.5, simple(S.FLOAT)),
        optional(simple(S.INTEGER)),
        r"inputs\.x: expected INTEGER \| NONE, found",
    ),
    (
        literal_of("s3://b/k", blob_type()),
        dataset_type(),
        r"inputs\.x: expected structured_dataset_type, found blob literal",
    ),
    (offloaded(), None, r"inputs\.x: cannot decode offloaded_metadata literal"),
    (literals_pb2.Literal(), simple(S.INTEGER), r"inputs\.x: expected INTEGER, found empty literal"),
    (
        literals_pb2.Literal(
            scalar=literals_pb2.Scalar(binary=literals_pb2.Binary(value=b"\xc1", tag="msgpack"))
        ),
        simple(S.STRUCT),
        r"inputs\.x: expected valid msgpack data, a reserved or malformed type byte",
    ),
]


@pytest.mark.parametrize(("literal", "literal_type", "message"), DECODE_ERRORS)
def test_decode_errors_name_the_path(
    literal: literals_pb2.Literal, literal_type: types_pb2.LiteralType | None, message: str
) -> None:
    literal_map = literals_pb2.LiteralMap(literals={"x": literal})
    declared = variables(x=literal_type) if literal_type is not None else None
    with pytest.raises(LiteralConversionError, match=f"^{message}"):
        decode_literal_map(literal_map, declared)


def test_msgpack_decoder_agrees_with_msgpack() -> None:
    value = {
        "small": [0, 127, -1, -32, 128, 255, 256, 65536, 2**32, 2**63 - 1, -33, -129, -32769, -(2**31) - 1],
        "floats": [1.5, -0.0, 0.1],
        "strings": ["", "x" * 31, "y" * 32, "z" * 256, "w" * 65536, "ünï"],
        "bytes": [b"", b"b" * 256, b"c" * 65536],
        "long_list": list(range(20)),
        "big_map": {f"k{i}": i for i in range(20)},
        "consts": [None, True, False],
        "nested": {"a": [{"b": [[]]}]},
    }
    for packed in (msgpack.packb(value), msgpack.packb(value, use_single_float=True)):
        literal = literals_pb2.Literal(
            scalar=literals_pb2.Scalar(binary=literals_pb2.Binary(value=packed, tag="msgpack"))
        )
        assert to_python(literal, simple(S.STRUCT), field="inputs.x") == msgpack.unpackb(packed)
    truncated = literals_pb2.Literal(
        scalar=literals_pb2.Scalar(binary=literals_pb2.Binary(value=msgpack.packb("abc")[:-1], tag="msgpack"))
    )
    with pytest.raises(LiteralConversionError, match=r"^inputs\.x: expected valid msgpack data"):
        to_python(truncated, None, field="inputs.x")
    deep = literals_pb2.Literal(
        scalar=literals_pb2.Scalar(
            binary=literals_pb2.Binary(value=b"\x91" * 10_000 + b"\xc0", tag="msgpack")
        )
    )
    with pytest.raises(LiteralConversionError, match=r"^inputs\.x: expected valid msgpack data"):
        to_python(deep, None, field="inputs.x")


def test_untyped_union_literal_uses_its_stored_type() -> None:
    literal = literal_of(3, optional(simple(S.INTEGER)))
    assert to_python(literal, None, field="inputs.x") == 3
    assert to_python(literal_of(None, optional(simple(S.INTEGER))), None, field="inputs.x") is None


def test_struct_decodes_from_generic() -> None:
    struct = struct_pb2.Struct()
    struct.update({"a": [1, "b"]})
    literal = literals_pb2.Literal(scalar=literals_pb2.Scalar(generic=struct))
    assert to_python(literal, simple(S.STRUCT), field="inputs.x") == {"a": [1.0, "b"]}


# Cross-checks against flytekit's type engine, a test-only dependency: the Lambdas never import it.


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


CsvFile = FlyteFile[typing.TypeVar("csv")]


def same(value: Any) -> Any:
    return value


def flytekit_dataset(value: Any) -> StructuredDataset:
    return StructuredDataset(value.literal.uri, value.metadata.structured_dataset_type.format)


UNTYPED_DICT = {"a": 1, "b": [True, None, "x"], "c": {"d": 2.5}}
# (id, python type, value as flytekit holds it, value as we hold it, flytekit value -> ours (None: a Blob),
#  whether our literal must equal flytekit's field for field)
CROSS: list[tuple[str, Any, Any, Any, Callable[[Any], Any] | None, bool]] = [
    ("int", int, 7, 7, same, True),
    ("float", float, 2.5, 2.5, same, True),
    ("str", str, "hi", "hi", same, True),
    ("bool", bool, True, True, same, True),
    ("datetime", dt.datetime, AWARE, AWARE, same, True),
    (
        "timedelta",
        dt.timedelta,
        dt.timedelta(hours=1, microseconds=3),
        dt.timedelta(hours=1, microseconds=3),
        same,
        True,
    ),
    ("list-int", list[int], [1, 2, 3], [1, 2, 3], same, True),
    ("dict-str-float", dict[str, float], {"a": 1.5, "b": 2.0}, {"a": 1.5, "b": 2.0}, same, True),
    ("optional-int-value", typing.Optional[int], 3, 3, same, True),  # noqa: UP045
    ("optional-int-none", typing.Optional[int], None, None, same, True),  # noqa: UP045
    ("optional-str-pipe", str | None, "x", "x", same, True),
    (
        "list-of-dict-of-optional",
        list[dict[str, int | None]],
        [{"a": 1, "b": None}, {}],
        [{"a": 1, "b": None}, {}],
        same,
        True,
    ),
    # An untyped dict is msgpack on both sides, byte for byte: 1 stays an int through flytekit.
    ("dict-generic", dict, UNTYPED_DICT, UNTYPED_DICT, same, True),
    ("enum", Color, Color.BLUE, "blue", lambda c: c.value, True),
    ("flytefile", FlyteFile, FlyteFile("s3://bucket/key.csv"), Blob("s3://bucket/key.csv"), None, True),
    (
        "flytefile-csv",
        CsvFile,
        CsvFile("s3://bucket/key.csv"),
        Blob("s3://bucket/key.csv", "csv"),
        None,
        True,
    ),
    (
        "flytedirectory",
        FlyteDirectory,
        FlyteDirectory("s3://bucket/dir/"),
        Blob("s3://bucket/dir/", "", True),
        None,
        True,
    ),
    (
        "structured-dataset",
        FlytekitDataset,
        FlytekitDataset(uri="s3://bucket/data.parquet", file_format="parquet"),
        StructuredDataset("s3://bucket/data.parquet", "parquet"),
        flytekit_dataset,
        True,
    ),
]


def blob_of(value: Any) -> Blob:
    # FlyteFile[fmt] builds a new class per subscription, so ask the value for its format.
    return Blob(value.remote_source, value.extension(), isinstance(value, FlyteDirectory))


@pytest.fixture
def ctx() -> Any:
    return FlyteContextManager.current_context()


@pytest.mark.parametrize(
    ("py_type", "flytekit_value", "our_value", "to_ours", "same_wire"),
    [c[1:] for c in CROSS],
    ids=[c[0] for c in CROSS],
)
def test_flytekit_to_ours(
    ctx: Any, py_type: Any, flytekit_value: Any, our_value: Any, to_ours: Any, same_wire: bool
) -> None:
    literal_type = TypeEngine.to_literal_type(py_type)
    flytekit_literal = TypeEngine.to_literal(ctx, flytekit_value, py_type, literal_type).to_flyte_idl()
    assert to_python(flytekit_literal, literal_type.to_flyte_idl(), field="inputs.x") == our_value
    assert to_python(flytekit_literal, None, field="inputs.x") == our_value
    if same_wire:
        assert to_literal(our_value, literal_type.to_flyte_idl(), field="outputs.x") == flytekit_literal


@pytest.mark.parametrize(
    ("py_type", "flytekit_value", "our_value", "to_ours", "same_wire"),
    [c[1:] for c in CROSS],
    ids=[c[0] for c in CROSS],
)
def test_ours_to_flytekit(
    ctx: Any, py_type: Any, flytekit_value: Any, our_value: Any, to_ours: Any, same_wire: bool
) -> None:
    literal_type = TypeEngine.to_literal_type(py_type)
    ours = to_literal(our_value, literal_type.to_flyte_idl(), field="outputs.x")
    decoded = TypeEngine.to_python_value(ctx, FlytekitLiteral.from_flyte_idl(ours), py_type)
    assert (to_ours or blob_of)(decoded) == our_value


def test_flytekit_old_generic_dict_format(ctx: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYTE_USE_OLD_DC_FORMAT", "true")
    value = {"a": 1, "b": ["x", None]}
    literal_type = TypeEngine.to_literal_type(dict)
    flytekit_literal = TypeEngine.to_literal(ctx, value, dict, literal_type).to_flyte_idl()
    assert flytekit_literal.scalar.WhichOneof("value") == "generic"
    assert to_python(flytekit_literal, literal_type.to_flyte_idl(), field="inputs.x") == value


def test_exact_decoding_refuses_unknown_and_missing_names_but_not_optional_ones() -> None:
    from flyteidl.core import interface_pb2

    optional = types_pb2.LiteralType(
        union_type=types_pb2.UnionType(variants=[simple(S.INTEGER), simple(S.NONE)])
    )
    variables = {
        "n": interface_pb2.Variable(type=simple(S.INTEGER)),
        "maybe": interface_pb2.Variable(type=optional),
    }
    n = literals_pb2.Literal(scalar=literals_pb2.Scalar(primitive=literals_pb2.Primitive(integer=1)))

    assert decode_literal_map(literals_pb2.LiteralMap(literals={"n": n}), variables, exact=True) == {"n": 1}
    with pytest.raises(LiteralConversionError, match=r"^inputs\.extra: not in the interface, which declares"):
        decode_literal_map(literals_pb2.LiteralMap(literals={"n": n, "extra": n}), variables, exact=True)
    with pytest.raises(LiteralConversionError, match=r"^inputs\.n: missing: expected INTEGER$"):
        decode_literal_map(literals_pb2.LiteralMap(), variables, exact=True)
    assert decode_literal_map(literals_pb2.LiteralMap(literals={"extra": n}), variables) == {"extra": 1}


def _primitive(**kwargs: Any) -> literals_pb2.Literal:
    return literals_pb2.Literal(scalar=literals_pb2.Scalar(primitive=literals_pb2.Primitive(**kwargs)))


def _blob(uri: str, fmt: str = "") -> literals_pb2.Literal:
    blob_type = types_pb2.BlobType(format=fmt)
    blob = literals_pb2.Blob(uri=uri, metadata=literals_pb2.BlobMetadata(type=blob_type))
    return literals_pb2.Literal(scalar=literals_pb2.Scalar(blob=blob))


def _dataset(uri: str, fmt: str = "") -> literals_pb2.Literal:
    metadata = literals_pb2.StructuredDatasetMetadata(
        structured_dataset_type=types_pb2.StructuredDatasetType(format=fmt)
    )
    dataset = literals_pb2.StructuredDataset(uri=uri, metadata=metadata)
    return literals_pb2.Literal(scalar=literals_pb2.Scalar(structured_dataset=dataset))


HOSTILE_LITERALS = [
    # Once ValueError / OverflowError out of protobuf's ToDatetime / ToTimedelta: a 500.
    (_primitive(datetime={"seconds": 10**15}), simple(S.DATETIME), "between the years 1 and 9999"),
    (_primitive(datetime={"seconds": 0, "nanos": -1}), None, "between the years 1 and 9999"),
    (_primitive(duration={"seconds": 10**15}), simple(S.DURATION), "within 10,000 years"),
    (_primitive(duration={"seconds": 1, "nanos": -1}), None, "of one sign"),
    # Once ValueError out of SimpleType.Name(99): a 500.
    (_primitive(integer=1), simple(99), "unknown simple type 99"),
    (_primitive(integer=1), types_pb2.LiteralType(collection_type=simple(-1)), "unknown simple type -1"),
    (
        _primitive(integer=1),
        types_pb2.LiteralType(union_type=types_pb2.UnionType(variants=[simple(S.INTEGER), simple(42)])),
        "unknown simple type 42",
    ),
    # Once accepted: a file with no URI, or in another format than the interface declares.
    (_blob(""), types_pb2.LiteralType(blob=types_pb2.BlobType()), "expected a URI"),
    (_blob("", "csv"), None, "expected a URI"),
    (
        _blob("s3://b/k", "parquet"),
        types_pb2.LiteralType(blob=types_pb2.BlobType(format="csv")),
        "format 'csv'",
    ),
    (_dataset(""), types_pb2.LiteralType(structured_dataset_type=types_pb2.StructuredDatasetType()), "a URI"),
    (
        _dataset("s3://b/d", "csv"),
        types_pb2.LiteralType(structured_dataset_type=types_pb2.StructuredDatasetType(format="parquet")),
        "format 'parquet'",
    ),
]


@pytest.mark.parametrize(("literal", "literal_type", "message"), HOSTILE_LITERALS)
def test_hostile_literals_are_conversion_errors(
    literal: literals_pb2.Literal, literal_type: types_pb2.LiteralType | None, message: str
) -> None:
    with pytest.raises(LiteralConversionError, match=message) as error:
        to_python(literal, literal_type, field="inputs.x")

    assert error.value.field.startswith("inputs.x")
    assert "\n" not in str(error.value)


def test_blob_formats_agree_when_either_is_any_format() -> None:
    csv_type = types_pb2.LiteralType(blob=types_pb2.BlobType(format="csv"))
    any_type = types_pb2.LiteralType(blob=types_pb2.BlobType())

    assert to_python(_blob("s3://b/k"), csv_type, field="x") == Blob("s3://b/k", "")
    assert to_python(_blob("s3://b/k", "csv"), any_type, field="x") == Blob("s3://b/k", "csv")


def test_time_literals_at_the_edges_of_the_range_decode() -> None:
    earliest = _primitive(datetime={"seconds": -62_135_596_800})
    latest = _primitive(datetime={"seconds": 253_402_300_799, "nanos": 999_999_000})
    longest = _primitive(duration={"seconds": -315_576_000_000})

    assert to_python(earliest, simple(S.DATETIME), field="x") == dt.datetime(1, 1, 1, tzinfo=UTC)
    assert to_python(latest, simple(S.DATETIME), field="x").year == 9999
    assert to_python(longest, simple(S.DURATION), field="x") == dt.timedelta(seconds=-315_576_000_000)


def test_a_timedelta_beyond_what_flyte_can_carry_is_refused() -> None:
    with pytest.raises(LiteralConversionError, match="within 10,000 years"):
        to_literal(dt.timedelta(days=999_999_999), simple(S.DURATION), field="outputs.d")


@pytest.mark.parametrize(
    ("literal_type", "message"),
    [
        (simple(99), "unknown simple type 99"),
        (types_pb2.LiteralType(map_value_type=simple(-3)), "unknown simple type -3"),
        (types_pb2.LiteralType(blob=types_pb2.BlobType(dimensionality=7)), "dimensionality 7"),
    ],
)
def test_check_literal_type_refuses_enum_values_flyteidl_lacks(
    literal_type: types_pb2.LiteralType, message: str
) -> None:
    with pytest.raises(LiteralConversionError, match=message):
        check_literal_type(literal_type, field="template.interface.inputs.x")
