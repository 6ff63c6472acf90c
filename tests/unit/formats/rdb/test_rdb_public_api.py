"""The curated public surface of cachemigrate.formats.rdb."""

from __future__ import annotations

import inspect

from cachemigrate.formats import rdb


def test_exported_members() -> None:
    assert sorted(rdb.__all__) == sorted(
        {
            "RdbParser", "iter_file", "decode_value", "DEFAULT_MAX_VALUE_BYTES", "DEFAULT_CHUNK_ELEMENTS",
            "NO_EXPIRE", "RdbHeader", "Record", "Aux", "SelectDb", "ResizeDb", "SlotInfo", "Function",
            "ModuleAux", "KeyRecord", "ValueChunk", "End", "Value", "StringValue", "ListValue",
            "SetValue", "ZSetValue", "HashValue", "StreamValue", "StreamId", "StreamPending",
            "StreamConsumer", "StreamGroup", "ModuleValue", "KeyHook", "BatchHook", "HookedParser",
        }
    )
    for name in rdb.__all__:
        assert hasattr(rdb, name), name


def test_signatures() -> None:
    params = inspect.signature(rdb.RdbParser).parameters
    assert list(params) == ["verify_checksum", "max_value_bytes", "chunk_elements", "source"]
    assert all(p.kind is p.KEYWORD_ONLY for p in params.values())
    dv = inspect.signature(rdb.decode_value).parameters
    assert list(dv)[:3] == ["type_byte", "raw", "header"] and dv["header"].kind is dv["header"].KEYWORD_ONLY
    assert list(inspect.signature(rdb.iter_file).parameters)[:2] == ["source", "chunk_size"]
