from collections.abc import Callable

def walk(
    buf: bytes,
    pos: int,
    end: int,
    footer: bytes,
    now_ms: int,
    replace: bool,
    max_value: int,
    out_limit: int,
    counts: object,
    key_filter: tuple[object, ...] | Callable[[bytes], bytes | None] | None = None,
    /,
) -> tuple[bytes, int, int, int] | tuple[bytes, int, int, int, int]: ...
def crc64(data: bytes, crc: int = 0, /) -> int: ...
def skip_groups(buf: bytes, pos: int, end: int, shape: int, n: int, /) -> tuple[int, int]: ...
