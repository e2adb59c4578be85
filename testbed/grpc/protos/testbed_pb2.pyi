from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Colour(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COLOUR_UNSPECIFIED: _ClassVar[Colour]
    COLOUR_RED: _ClassVar[Colour]
    COLOUR_GREEN: _ClassVar[Colour]
    COLOUR_BLUE: _ClassVar[Colour]
COLOUR_UNSPECIFIED: Colour
COLOUR_RED: Colour
COLOUR_GREEN: Colour
COLOUR_BLUE: Colour

class Behaviour(_message.Message):
    __slots__ = ("latency_ms", "interval_ms", "status_code", "status_message", "count", "size", "fail_after")
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    STATUS_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    FAIL_AFTER_FIELD_NUMBER: _ClassVar[int]
    latency_ms: int
    interval_ms: int
    status_code: int
    status_message: str
    count: int
    size: int
    fail_after: int
    def __init__(self, latency_ms: _Optional[int] = ..., interval_ms: _Optional[int] = ..., status_code: _Optional[int] = ..., status_message: _Optional[str] = ..., count: _Optional[int] = ..., size: _Optional[int] = ..., fail_after: _Optional[int] = ...) -> None: ...

class Sample(_message.Message):
    __slots__ = ("f_double", "f_float", "f_int32", "f_int64", "f_uint32", "f_uint64", "f_sint32", "f_sint64", "f_fixed32", "f_fixed64", "f_sfixed32", "f_sfixed64", "f_bool", "f_string", "f_bytes", "colour", "packed_ints", "names", "counts", "child", "children", "choice_text", "choice_number")
    class CountsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    F_DOUBLE_FIELD_NUMBER: _ClassVar[int]
    F_FLOAT_FIELD_NUMBER: _ClassVar[int]
    F_INT32_FIELD_NUMBER: _ClassVar[int]
    F_INT64_FIELD_NUMBER: _ClassVar[int]
    F_UINT32_FIELD_NUMBER: _ClassVar[int]
    F_UINT64_FIELD_NUMBER: _ClassVar[int]
    F_SINT32_FIELD_NUMBER: _ClassVar[int]
    F_SINT64_FIELD_NUMBER: _ClassVar[int]
    F_FIXED32_FIELD_NUMBER: _ClassVar[int]
    F_FIXED64_FIELD_NUMBER: _ClassVar[int]
    F_SFIXED32_FIELD_NUMBER: _ClassVar[int]
    F_SFIXED64_FIELD_NUMBER: _ClassVar[int]
    F_BOOL_FIELD_NUMBER: _ClassVar[int]
    F_STRING_FIELD_NUMBER: _ClassVar[int]
    F_BYTES_FIELD_NUMBER: _ClassVar[int]
    COLOUR_FIELD_NUMBER: _ClassVar[int]
    PACKED_INTS_FIELD_NUMBER: _ClassVar[int]
    NAMES_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    CHILD_FIELD_NUMBER: _ClassVar[int]
    CHILDREN_FIELD_NUMBER: _ClassVar[int]
    CHOICE_TEXT_FIELD_NUMBER: _ClassVar[int]
    CHOICE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    f_double: float
    f_float: float
    f_int32: int
    f_int64: int
    f_uint32: int
    f_uint64: int
    f_sint32: int
    f_sint64: int
    f_fixed32: int
    f_fixed64: int
    f_sfixed32: int
    f_sfixed64: int
    f_bool: bool
    f_string: str
    f_bytes: bytes
    colour: Colour
    packed_ints: _containers.RepeatedScalarFieldContainer[int]
    names: _containers.RepeatedScalarFieldContainer[str]
    counts: _containers.ScalarMap[str, int]
    child: Sample
    children: _containers.RepeatedCompositeFieldContainer[Sample]
    choice_text: str
    choice_number: int
    def __init__(self, f_double: _Optional[float] = ..., f_float: _Optional[float] = ..., f_int32: _Optional[int] = ..., f_int64: _Optional[int] = ..., f_uint32: _Optional[int] = ..., f_uint64: _Optional[int] = ..., f_sint32: _Optional[int] = ..., f_sint64: _Optional[int] = ..., f_fixed32: _Optional[int] = ..., f_fixed64: _Optional[int] = ..., f_sfixed32: _Optional[int] = ..., f_sfixed64: _Optional[int] = ..., f_bool: _Optional[bool] = ..., f_string: _Optional[str] = ..., f_bytes: _Optional[bytes] = ..., colour: _Optional[_Union[Colour, str]] = ..., packed_ints: _Optional[_Iterable[int]] = ..., names: _Optional[_Iterable[str]] = ..., counts: _Optional[_Mapping[str, int]] = ..., child: _Optional[_Union[Sample, _Mapping]] = ..., children: _Optional[_Iterable[_Union[Sample, _Mapping]]] = ..., choice_text: _Optional[str] = ..., choice_number: _Optional[int] = ...) -> None: ...

class Request(_message.Message):
    __slots__ = ("behaviour", "payload", "tag", "sample")
    BEHAVIOUR_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_FIELD_NUMBER: _ClassVar[int]
    behaviour: Behaviour
    payload: bytes
    tag: str
    sample: Sample
    def __init__(self, behaviour: _Optional[_Union[Behaviour, _Mapping]] = ..., payload: _Optional[bytes] = ..., tag: _Optional[str] = ..., sample: _Optional[_Union[Sample, _Mapping]] = ...) -> None: ...

class Response(_message.Message):
    __slots__ = ("seq", "payload", "tag", "requests_seen", "request_payload_size", "metadata", "method")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SEQ_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_SEEN_FIELD_NUMBER: _ClassVar[int]
    REQUEST_PAYLOAD_SIZE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    seq: int
    payload: bytes
    tag: str
    requests_seen: int
    request_payload_size: int
    metadata: _containers.ScalarMap[str, str]
    method: str
    def __init__(self, seq: _Optional[int] = ..., payload: _Optional[bytes] = ..., tag: _Optional[str] = ..., requests_seen: _Optional[int] = ..., request_payload_size: _Optional[int] = ..., metadata: _Optional[_Mapping[str, str]] = ..., method: _Optional[str] = ...) -> None: ...
