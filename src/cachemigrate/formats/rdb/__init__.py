"""RDB reading: a streaming sans-IO parser (fast path: raw value bytes) and value decoding.

    parser = RdbParser()                 # verify_checksum, max_value_bytes, chunk_elements, source
    for chunk in chunks:                 # any split: file chunks, 64 KiB socket reads, single bytes
        parser.feed(chunk)
        for rec in parser.records():     # stops when it needs more bytes; call again after feed()
            ...                          # KeyRecord.value = the value's bytes exactly as in the file
    parser.close()                       # RdbFormatError (with offset) if the RDB is incomplete
    parser.remainder()                   # bytes after the CRC (an AOF's RESP tail)

    decode_value(rec.type_byte, rec.value, header=parser.header)   # -> StringValue, HashValue...

With ``parser.key_hook`` / ``parser.batch_hook`` set (``KeyHook[H]``, ``BatchHook[H]``), a
``HookedParser[H]`` yields what they return (``H``) in place of most key records.

A value over ``max_value_bytes`` comes as ``KeyRecord(big=True, value=b"")`` followed by
``ValueChunk`` records holding parts of the decoded value (the last with ``last=True``).
``iter_file(path_or_file)`` does the feeding for a file.
"""

from __future__ import annotations

from ._state import BatchHook, KeyHook
from .decode import decode_value
from .model import (
    NO_EXPIRE,
    Aux,
    End,
    Function,
    HashValue,
    KeyRecord,
    ListValue,
    ModuleAux,
    ModuleValue,
    RdbHeader,
    Record,
    ResizeDb,
    SelectDb,
    SetValue,
    SlotInfo,
    StreamConsumer,
    StreamGroup,
    StreamId,
    StreamPending,
    StreamValue,
    StringValue,
    Value,
    ValueChunk,
    ZSetValue,
)
from .parser import DEFAULT_CHUNK_ELEMENTS, DEFAULT_MAX_VALUE_BYTES, HookedParser, RdbParser, iter_file

__all__ = [
    "DEFAULT_CHUNK_ELEMENTS",
    "DEFAULT_MAX_VALUE_BYTES",
    "NO_EXPIRE",
    "Aux",
    "BatchHook",
    "End",
    "Function",
    "HashValue",
    "HookedParser",
    "KeyHook",
    "KeyRecord",
    "ListValue",
    "ModuleAux",
    "ModuleValue",
    "RdbHeader",
    "RdbParser",
    "Record",
    "ResizeDb",
    "SelectDb",
    "SetValue",
    "SlotInfo",
    "StreamConsumer",
    "StreamGroup",
    "StreamId",
    "StreamPending",
    "StreamValue",
    "StringValue",
    "Value",
    "ValueChunk",
    "ZSetValue",
    "decode_value",
    "iter_file",
]
