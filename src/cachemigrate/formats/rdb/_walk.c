/* The RDB -> RESTORE hot loop in C: walk whole key records in a buffer and write, for each one,
 * the RESP command `RESTORE key ttl payload [REPLACE] ABSTTL` whose payload is the value's raw
 * bytes + footer (version, CRC-64/Jones), all into one bytes object.
 *
 * It only takes the common records: a key of a type the caller marks as fast (a non-zero footer
 * version in `footer`), optionally after an EXPIRETIME/EXPIRETIME_MS prefix, whole in the buffer,
 * whose value is at most `max_value` bytes. At anything else (another opcode, LRU/LFU info, an
 * LZF-compressed key, a tiny collection that may be empty, a record cut by the buffer's end,
 * malformed bytes) it stops at the start of that record and returns: the Python parser takes that
 * record on (and raises the error naming the offset when the bytes are bad).
 *
 * The format facts (length and string encodings, value layouts, DUMP footer) are from
 * shared/spec/formats.md; the Python walker in _fast.py / _skip.py is the reference it must
 * agree with (tests/unit/test_walk_ext.py compares the two on every corpus file).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* ---- CRC-64/Jones (reflected, poly 0xad93d23594c935a9, init 0, no final xor) ------------- */

static uint64_t crc_table[8][256];

static void crc_init(void)
{
    const uint64_t poly = 0x95ac9329ac4bc9b5ULL; /* 0xad93d23594c935a9 bit-reversed */
    for (int n = 0; n < 256; n++) {
        uint64_t c = (uint64_t)n;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ poly : c >> 1;
        crc_table[0][n] = c;
    }
    for (int n = 0; n < 256; n++) {
        uint64_t c = crc_table[0][n];
        for (int k = 1; k < 8; k++) {
            c = crc_table[0][c & 0xff] ^ (c >> 8);
            crc_table[k][n] = c;
        }
    }
}

static uint64_t crc64(uint64_t crc, const unsigned char *p, size_t n)
{
    while (n && ((uintptr_t)p & 7)) {
        crc = crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
        n--;
    }
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        w ^= crc; /* little-endian host (x86_64, aarch64) */
        crc = crc_table[7][w & 0xff] ^ crc_table[6][(w >> 8) & 0xff] ^
              crc_table[5][(w >> 16) & 0xff] ^ crc_table[4][(w >> 24) & 0xff] ^
              crc_table[3][(w >> 32) & 0xff] ^ crc_table[2][(w >> 40) & 0xff] ^
              crc_table[1][(w >> 48) & 0xff] ^ crc_table[0][w >> 56];
        p += 8;
        n -= 8;
    }
    while (n--)
        crc = crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return crc;
}

/* ---- RDB lengths and strings -------------------------------------------------------------- */

#define BAD ((Py_ssize_t)-1)

/* A length at p (not a special encoding); BAD when it runs past end or is not a length. */
static Py_ssize_t read_len(const unsigned char *b, Py_ssize_t p, Py_ssize_t end, uint64_t *out)
{
    if (p >= end)
        return BAD;
    unsigned c = b[p];
    switch (c >> 6) {
    case 0:
        *out = c;
        return p + 1;
    case 1:
        if (p + 2 > end)
            return BAD;
        *out = ((uint64_t)(c & 0x3f) << 8) | b[p + 1];
        return p + 2;
    default:
        if (c == 0x80) {
            if (p + 5 > end)
                return BAD;
            *out = ((uint64_t)b[p + 1] << 24) | ((uint64_t)b[p + 2] << 16) | ((uint64_t)b[p + 3] << 8) | b[p + 4];
            return p + 5;
        }
        if (c == 0x81) {
            if (p + 9 > end)
                return BAD;
            uint64_t v = 0;
            for (int i = 1; i <= 8; i++)
                v = (v << 8) | b[p + i];
            *out = v;
            return p + 9;
        }
        return BAD;
    }
}

/* Where the string at p ends (any encoding); BAD when past end or malformed. */
static Py_ssize_t skip_string(const unsigned char *b, Py_ssize_t p, Py_ssize_t end)
{
    if (p >= end)
        return BAD;
    unsigned c = b[p];
    uint64_t n;
    if (c < 0x40) {
        p += 1 + c;
    } else if (c < 0x80) {
        if (p + 2 > end)
            return BAD;
        p += 2 + (((c & 0x3f) << 8) | b[p + 1]);
    } else if (c < 0xc0) {
        p = read_len(b, p, end, &n);
        if (p == BAD || n > (uint64_t)(end - p))
            return BAD;
        p += (Py_ssize_t)n;
    } else {
        switch (c & 0x3f) {
        case 0: p += 2; break;
        case 1: p += 3; break;
        case 2: p += 5; break;
        case 3: {
            uint64_t clen, rlen;
            p = read_len(b, p + 1, end, &clen);
            if (p == BAD)
                return BAD;
            p = read_len(b, p, end, &rlen);
            if (p == BAD || clen > (uint64_t)(end - p))
                return BAD;
            p += (Py_ssize_t)clen;
            break;
        }
        default:
            return BAD;
        }
    }
    return p > end ? BAD : p;
}

/* Skip n strings. */
static Py_ssize_t skip_strings(const unsigned char *b, Py_ssize_t p, Py_ssize_t end, uint64_t n)
{
    while (n--) {
        p = skip_string(b, p, end);
        if (p == BAD)
            return BAD;
    }
    return p;
}

/* Skip k lengths. */
static Py_ssize_t skip_lens(const unsigned char *b, Py_ssize_t p, Py_ssize_t end, int k)
{
    uint64_t n;
    while (k-- && p != BAD)
        p = read_len(b, p, end, &n);
    return p;
}

/* A stream of type 15, 19 or 21: n (node key, listpack) pairs, the length, last ID (and for
 * 19/21 the first ID, max deleted ID and entries added), then the consumer groups with their
 * PELs and consumers. */
static Py_ssize_t skip_stream(const unsigned char *b, Py_ssize_t p, Py_ssize_t end, int t)
{
    uint64_t n, groups, npel, consumers;
    const int v2 = t >= 19;
    p = read_len(b, p, end, &n);
    if (p == BAD || n > UINT64_MAX / 2)
        return BAD;
    p = skip_strings(b, p, end, 2 * n);
    p = skip_lens(b, p, end, v2 ? 8 : 3);
    if (p == BAD)
        return BAD;
    p = read_len(b, p, end, &groups);
    while (p != BAD && groups--) {
        p = skip_string(b, p, end);
        p = skip_lens(b, p, end, v2 ? 3 : 2);
        if (p == BAD)
            return BAD;
        p = read_len(b, p, end, &npel);
        while (p != BAD && npel--) {
            if (end - p < 24)
                return BAD;
            p = skip_lens(b, p + 24, end, 1);
        }
        if (p == BAD)
            return BAD;
        p = read_len(b, p, end, &consumers);
        while (p != BAD && consumers--) {
            p = skip_string(b, p, end);
            if (p == BAD || end - p < (t >= 21 ? 16 : 8))
                return BAD;
            p += t >= 21 ? 16 : 8;
            p = read_len(b, p, end, &npel);
            if (p == BAD || npel > (uint64_t)(end - p) / 16)
                return BAD;
            p += (Py_ssize_t)(16 * npel);
        }
    }
    return p;
}

/* Where the value of type t starting at p ends; BAD: not whole, malformed, or not ours. */
static Py_ssize_t skip_value(const unsigned char *b, Py_ssize_t p, Py_ssize_t end, int t)
{
    uint64_t n;
    switch (t) {
    case 0: /* string */
    case 9: case 10: case 11: case 12: case 13: /* zipmap, ziplist, intset, zset/hash ziplist */
    case 16: case 17: case 20: /* listpack hash, zset, set */
        return skip_string(b, p, end);
    case 1: case 2: case 14: /* list, set, quicklist: n strings */
        p = read_len(b, p, end, &n);
        return p == BAD ? BAD : skip_strings(b, p, end, n);
    case 4: /* hash: n field/value pairs */
        p = read_len(b, p, end, &n);
        if (p == BAD || n > UINT64_MAX / 2)
            return BAD;
        return skip_strings(b, p, end, 2 * n);
    case 3: /* zset: n (member, score as 1-byte-length string; 253..255 nan/inf) */
        p = read_len(b, p, end, &n);
        if (p == BAD)
            return BAD;
        while (n--) {
            p = skip_string(b, p, end);
            if (p == BAD || p >= end)
                return BAD;
            unsigned s = b[p];
            p += 1 + (s < 253 ? s : 0);
            if (p > end)
                return BAD;
        }
        return p;
    case 5: /* zset 2: n (member, 8-byte double) */
        p = read_len(b, p, end, &n);
        if (p == BAD)
            return BAD;
        while (n--) {
            p = skip_string(b, p, end);
            if (p == BAD || end - p < 8)
                return BAD;
            p += 8;
        }
        return p;
    case 18: /* quicklist 2: n (container, node string) */
        p = read_len(b, p, end, &n);
        if (p == BAD)
            return BAD;
        while (n--) {
            uint64_t container;
            p = read_len(b, p, end, &container);
            if (p == BAD)
                return BAD;
            p = skip_string(b, p, end);
            if (p == BAD)
                return BAD;
        }
        return p;
    case 15: case 19: case 21: /* streams: listpack nodes, then the metadata (formats.md 3.7) */
        return skip_stream(b, p, end, t);
    default:
        return BAD;
    }
}

static const unsigned char is_collection[32] = {
    [1] = 1, [2] = 1, [3] = 1, [4] = 1, [5] = 1, [9] = 1, [10] = 1, [11] = 1, [12] = 1,
    [13] = 1, [14] = 1, [16] = 1, [17] = 1, [18] = 1, [20] = 1,
};
#define TINY 16 /* collections this small may be empty: the Python side looks (as in transform.py) */
#define LEFT_OUT 255 /* in the footer table: a type the filter rules leave out (walk.LEFT_OUT) */

/* ---- the output buffer -------------------------------------------------------------------- */

typedef struct {
    PyObject *obj;
    char *p;
    Py_ssize_t len, cap;
} Out;

static int out_reserve(Out *o, Py_ssize_t more)
{
    if (o->len + more <= o->cap)
        return 0;
    Py_ssize_t cap = o->cap * 2;
    if (cap < o->len + more)
        cap = o->len + more;
    if (_PyBytes_Resize(&o->obj, cap) < 0)
        return -1;
    o->p = PyBytes_AS_STRING(o->obj);
    o->cap = cap;
    return 0;
}

static inline char *put(char *w, const void *s, size_t n)
{
    memcpy(w, s, n);
    return w + n;
}

/* "$<n>\r\n" */
static inline char *put_bulk_head(char *w, Py_ssize_t n)
{
    char tmp[24];
    int k = 0;
    do {
        tmp[k++] = (char)('0' + n % 10);
        n /= 10;
    } while (n);
    *w++ = '$';
    while (k)
        *w++ = tmp[--k];
    *w++ = '\r';
    *w++ = '\n';
    return w;
}

/* ---- the key rules ------------------------------------------------------------------------ */

/* key_filter given as a tuple of rules, asked without a Python call per key:
 * (block_exact, block_prefix, block_suffix, allow_exact, allow_prefix, allow_suffix, renames):
 * the exact sets a frozenset or None, the others tuples of bytes, renames a tuple of
 * (old prefix, new prefix) pairs, the longest old prefix first (engine/filters.py). */
enum { R_BLOCK_EXACT, R_BLOCK_PREFIX, R_BLOCK_SUFFIX, R_ALLOW_EXACT, R_ALLOW_PREFIX, R_ALLOW_SUFFIX,
       R_RENAMES, R_COUNT };

static int rules_ok(PyObject *rules)
{
    if (!PyTuple_Check(rules) || PyTuple_GET_SIZE(rules) != R_COUNT)
        return 0;
    for (int i = 0; i < R_COUNT; i++) {
        PyObject *r = PyTuple_GET_ITEM(rules, i);
        if (i == R_BLOCK_EXACT || i == R_ALLOW_EXACT) {
            if (r != Py_None && !PyFrozenSet_Check(r))
                return 0;
            continue;
        }
        if (!PyTuple_Check(r))
            return 0;
        for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(r); j++) {
            PyObject *item = PyTuple_GET_ITEM(r, j);
            if (i == R_RENAMES) {
                if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2 ||
                    !PyBytes_Check(PyTuple_GET_ITEM(item, 0)) || !PyBytes_Check(PyTuple_GET_ITEM(item, 1)))
                    return 0;
            } else if (!PyBytes_Check(item)) {
                return 0;
            }
        }
    }
    return 1;
}

static int has_prefix(const char *k, Py_ssize_t n, PyObject *tup)
{
    for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(tup); j++) {
        PyObject *p = PyTuple_GET_ITEM(tup, j);
        Py_ssize_t m = PyBytes_GET_SIZE(p);
        if (m <= n && memcmp(k, PyBytes_AS_STRING(p), (size_t)m) == 0)
            return 1;
    }
    return 0;
}

static int has_suffix(const char *k, Py_ssize_t n, PyObject *tup)
{
    for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(tup); j++) {
        PyObject *p = PyTuple_GET_ITEM(tup, j);
        Py_ssize_t m = PyBytes_GET_SIZE(p);
        if (m <= n && memcmp(k + n - m, PyBytes_AS_STRING(p), (size_t)m) == 0)
            return 1;
    }
    return 0;
}

/* 1: in the set, 0: not, -1: error */
static int in_set(const char *k, Py_ssize_t n, PyObject *set)
{
    if (set == Py_None)
        return 0;
    PyObject *kb = PyBytes_FromStringAndSize(k, n);
    if (kb == NULL)
        return -1;
    int r = PySet_Contains(set, kb);
    Py_DECREF(kb);
    return r;
}

/* What the rules make of key k: -1 error, 0 left out, 1 kept (*renamed: a new reference to its
 * new name, or NULL when it keeps its own). */
static int apply_rules(PyObject *rules, const char *k, Py_ssize_t n, PyObject **renamed)
{
    *renamed = NULL;
    int r = in_set(k, n, PyTuple_GET_ITEM(rules, R_BLOCK_EXACT));
    if (r != 0)
        return r < 0 ? -1 : 0;
    if (has_prefix(k, n, PyTuple_GET_ITEM(rules, R_BLOCK_PREFIX)) ||
        has_suffix(k, n, PyTuple_GET_ITEM(rules, R_BLOCK_SUFFIX)))
        return 0;
    PyObject *ae = PyTuple_GET_ITEM(rules, R_ALLOW_EXACT), *ap = PyTuple_GET_ITEM(rules, R_ALLOW_PREFIX),
             *as = PyTuple_GET_ITEM(rules, R_ALLOW_SUFFIX);
    if (ae != Py_None || PyTuple_GET_SIZE(ap) || PyTuple_GET_SIZE(as)) {
        if (!has_prefix(k, n, ap) && !has_suffix(k, n, as)) {
            r = in_set(k, n, ae);
            if (r <= 0)
                return r;
        }
    }
    PyObject *renames = PyTuple_GET_ITEM(rules, R_RENAMES);
    for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(renames); j++) {
        PyObject *pair = PyTuple_GET_ITEM(renames, j);
        PyObject *old = PyTuple_GET_ITEM(pair, 0), *new = PyTuple_GET_ITEM(pair, 1);
        Py_ssize_t m = PyBytes_GET_SIZE(old), q = PyBytes_GET_SIZE(new);
        if (m <= n && memcmp(k, PyBytes_AS_STRING(old), (size_t)m) == 0) {
            PyObject *name = PyBytes_FromStringAndSize(NULL, q + n - m);
            if (name == NULL)
                return -1;
            memcpy(PyBytes_AS_STRING(name), PyBytes_AS_STRING(new), (size_t)q);
            memcpy(PyBytes_AS_STRING(name) + q, k + m, (size_t)(n - m));
            *renamed = name;
            break;
        }
    }
    return 1;
}

/* ---- walk() --------------------------------------------------------------------------------- */

PyDoc_STRVAR(walk_doc,
"walk(buf, pos, end, footer, now_ms, replace, max_value, out_limit, counts[, key_filter])\n"
"-> (commands: bytes, pos: int, keys: int, expired: int[, filtered: int])\n\n"
"Walk whole key records in buf[pos:end] and write their RESTORE commands. footer: 256 bytes,\n"
"the RDB version for each type's DUMP footer (0: not on this path). Keys with an expire time\n"
"before now_ms are skipped and counted. counts: a writable buffer of 256 uint64, keys written per\n"
"type byte (added to). Stops at the first record it does not take, or once the commands reach\n"
"out_limit bytes; pos is where the caller goes on. key_filter (given: the result has a fifth\n"
"item): called with each key's name (bytes) once it is known not expired; None leaves the key\n"
"out (counted in filtered), a bytes object is the name it gets in its RESTORE. Or a tuple of\n"
"rules asked in C: (block_exact, block_prefix, block_suffix, allow_exact, allow_prefix,\n"
"allow_suffix, renames), exact sets as frozensets or None, renames as (old, new) pairs.\n"
"A footer of 255: the type is left out (skipped by its span, counted in filtered). A key left\n"
"out is skipped whatever its size; only the keys kept may stop the walk (big or tiny values).");

static PyObject *walk(PyObject *self, PyObject *args)
{
    Py_buffer buf, footer, counts;
    Py_ssize_t pos, end, max_value, out_limit;
    long long now_ms;
    int replace;
    PyObject *key_filter = NULL;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*nny*Lpnnw*|O", &buf, &pos, &end, &footer, &now_ms, &replace,
                          &max_value, &out_limit, &counts, &key_filter))
        return NULL;
    if (key_filter == Py_None)
        key_filter = NULL;
    int with_filter = key_filter != NULL;
    int with_rules = with_filter && PyTuple_Check(key_filter);
    if (with_rules && !rules_ok(key_filter)) {
        PyBuffer_Release(&buf);
        PyBuffer_Release(&footer);
        PyBuffer_Release(&counts);
        PyErr_SetString(PyExc_TypeError, "walk: bad key rules tuple");
        return NULL;
    }
    PyObject *result = NULL;
    if (footer.len != 256 || counts.len != 256 * 8 || pos < 0 || end > buf.len || pos > end) {
        PyErr_SetString(PyExc_ValueError, "walk: bad arguments");
        goto done;
    }
    const unsigned char *b = (const unsigned char *)buf.buf;
    const unsigned char *fv = (const unsigned char *)footer.buf;
    uint64_t *per_type = (uint64_t *)counts.buf;
    Out o = {NULL, NULL, 0, 0};
    Py_ssize_t initial = out_limit + 4096;
    o.obj = PyBytes_FromStringAndSize(NULL, initial);
    if (o.obj == NULL)
        goto done;
    o.p = PyBytes_AS_STRING(o.obj);
    o.cap = initial;
    long long keys = 0, expired = 0, filtered = 0;
    const char *tail = replace ? "$7\r\nREPLACE\r\n$6\r\nABSTTL\r\n" : "$6\r\nABSTTL\r\n";
    const size_t tail_len = replace ? 25 : 12;
    const char *head = replace ? "*6\r\n$7\r\nRESTORE\r\n" : "*5\r\n$7\r\nRESTORE\r\n";

    while (pos < end && o.len < out_limit) {
        Py_ssize_t p = pos;
        long long expire = -1;
        unsigned t = b[p];
        if (t == 252) { /* EXPIRETIME_MS: int64 LE */
            if (p + 10 > end)
                break;
            int64_t v;
            memcpy(&v, b + p + 1, 8);
            expire = v;
            p += 9;
            t = b[p];
        } else if (t == 253) { /* EXPIRETIME: int32 LE seconds */
            if (p + 6 > end)
                break;
            int32_t v;
            memcpy(&v, b + p + 1, 4);
            expire = (long long)v * 1000;
            p += 5;
            t = b[p];
        }
        if (t >= 32 || fv[t] == 0)
            break;
        /* the key */
        Py_ssize_t q = p + 1;
        if (q >= end)
            break;
        unsigned c = b[q];
        const char *key;
        Py_ssize_t klen, kend;
        char ibuf[24];
        if (c < 0x40) {
            key = (const char *)b + q + 1;
            klen = c;
            kend = q + 1 + c;
        } else if (c < 0x80) {
            if (q + 2 > end)
                break;
            klen = ((c & 0x3f) << 8) | b[q + 1];
            key = (const char *)b + q + 2;
            kend = q + 2 + klen;
        } else if (c == 0x80) {
            uint64_t n;
            Py_ssize_t s = read_len(b, q, end, &n);
            if (s == BAD || n > (uint64_t)(end - s))
                break;
            key = (const char *)b + s;
            klen = (Py_ssize_t)n;
            kend = s + klen;
        } else if (c >= 0xc0 && c <= 0xc2) { /* integer-encoded key: its decimal text */
            long long v;
            if (c == 0xc0) {
                if (q + 2 > end)
                    break;
                v = (int8_t)b[q + 1];
                kend = q + 2;
            } else if (c == 0xc1) {
                if (q + 3 > end)
                    break;
                int16_t x;
                memcpy(&x, b + q + 1, 2);
                v = x;
                kend = q + 3;
            } else {
                if (q + 5 > end)
                    break;
                int32_t x;
                memcpy(&x, b + q + 1, 4);
                v = x;
                kend = q + 5;
            }
            klen = snprintf(ibuf, sizeof ibuf, "%lld", v);
            key = ibuf;
        } else {
            break; /* LZF key, 64-bit length: the Python side */
        }
        if (kend > end)
            break;
        Py_ssize_t vend = skip_value(b, kend, end, (int)t);
        if (vend == BAD)
            break;
        Py_ssize_t vlen = vend - kend;
        /* Whole in the buffer: an expired key or one the rules leave out is skipped by its span,
         * whatever its size (never decoded, never sent to the Python side). */
        if (expire != -1 && expire < now_ms) { /* as transform.py: -1 is "no expire" */
            expired++;
            pos = vend;
            continue;
        }
        if (fv[t] == LEFT_OUT) {
            filtered++;
            pos = vend;
            continue;
        }
        PyObject *name = NULL; /* the key's new name (a reference held until it is written) */
        if (with_rules) {
            int kept = apply_rules(key_filter, key, klen, &name);
            if (kept < 0)
                goto fail;
            if (kept == 0) {
                filtered++;
                pos = vend;
                continue;
            }
            if (name != NULL) {
                key = PyBytes_AS_STRING(name);
                klen = PyBytes_GET_SIZE(name);
            }
        } else if (key_filter != NULL) {
            PyObject *kb = PyBytes_FromStringAndSize(key, klen);
            if (kb == NULL)
                goto fail;
            name = PyObject_CallOneArg(key_filter, kb);
            Py_DECREF(kb);
            if (name == NULL)
                goto fail;
            if (name == Py_None) {
                Py_DECREF(name);
                filtered++;
                pos = vend;
                continue;
            }
            if (!PyBytes_Check(name)) {
                Py_DECREF(name);
                PyErr_SetString(PyExc_TypeError, "walk: key_filter must return bytes or None");
                goto fail;
            }
            key = PyBytes_AS_STRING(name);
            klen = PyBytes_GET_SIZE(name);
        }
        /* A kept key the Python side takes: big (it chunks it) or a tiny collection (it may be
         * empty); it asks the rules again. */
        if (vlen > max_value || (vlen <= TINY && is_collection[t])) {
            Py_XDECREF(name);
            break;
        }
        /* the command */
        char ttl[24];
        int ttl_len = expire >= 0 ? snprintf(ttl, sizeof ttl, "%lld", expire) : 1;
        if (expire < 0)
            ttl[0] = '0';
        Py_ssize_t need = 17 + 24 + klen + 2 + 24 + ttl_len + 2 + 24 + vlen + 11 + 2 + (Py_ssize_t)tail_len;
        if (o.len > 0 && o.len + need > out_limit && o.len + need > o.cap) {
            if (name != NULL) { /* the next call asks again */
                Py_DECREF(name);
            }
            break; /* the next call starts with it */
        }
        if (out_reserve(&o, need) < 0) {
            Py_XDECREF(name);
            goto fail;
        }
        char *w = o.p + o.len;
        w = put(w, head, 17);
        w = put_bulk_head(w, klen);
        w = put(w, key, (size_t)klen);
        *w++ = '\r';
        *w++ = '\n';
        w = put_bulk_head(w, ttl_len);
        w = put(w, ttl, (size_t)ttl_len);
        *w++ = '\r';
        *w++ = '\n';
        w = put_bulk_head(w, vlen + 11);
        unsigned char tb = (unsigned char)t;
        uint64_t crc = crc64(0, &tb, 1);
        *w++ = (char)t;
        w = put(w, b + kend, (size_t)vlen);
        crc = crc64(crc, b + kend, (size_t)vlen);
        unsigned char ver[2] = {fv[t], 0};
        crc = crc64(crc, ver, 2);
        *w++ = (char)ver[0];
        *w++ = (char)ver[1];
        for (int i = 0; i < 8; i++)
            *w++ = (char)((crc >> (8 * i)) & 0xff);
        *w++ = '\r';
        *w++ = '\n';
        w = put(w, tail, tail_len);
        o.len = w - o.p;
        Py_XDECREF(name);
        per_type[t]++;
        keys++;
        pos = vend;
    }
    if (_PyBytes_Resize(&o.obj, o.len) < 0)
        goto done;
    result = with_filter ? Py_BuildValue("NnLLL", o.obj, pos, keys, expired, filtered)
                         : Py_BuildValue("NnLL", o.obj, pos, keys, expired);
    goto done;
fail:
    Py_XDECREF(o.obj);
done:
    PyBuffer_Release(&buf);
    PyBuffer_Release(&footer);
    PyBuffer_Release(&counts);
    return result;
}

/* ---- skip_groups(): the big-key walk, one element group at a time ------------------------- */

/* One element group of a collection walked group by group (formats/rdb/_skip.py GROUP_SKIP and
 * the stream nodes), by its shape: 0 a string (list, set, quicklist node), 1 two strings (hash
 * field and value, stream node key and listpack), 2 a member and a ZSET score (1-byte length;
 * 253..255 have no bytes), 3 a member and an 8-byte double, 4 a length and a string (quicklist 2
 * node), 5 a length and two strings (hash with field TTLs), 6 two strings and 8 bytes (Valkey
 * HASH_2). BAD: cut by end (or malformed: the Python walker names the error). */
static Py_ssize_t skip_group(const unsigned char *b, Py_ssize_t p, Py_ssize_t end, int shape)
{
    uint64_t n;
    switch (shape) {
    case 0:
        return skip_string(b, p, end);
    case 1:
        return skip_strings(b, p, end, 2);
    case 2:
        p = skip_string(b, p, end);
        if (p == BAD || p >= end)
            return BAD;
        p += 1 + (b[p] < 253 ? b[p] : 0);
        return p > end ? BAD : p;
    case 3:
        p = skip_string(b, p, end);
        return p == BAD || p + 8 > end ? BAD : p + 8;
    case 4:
        p = read_len(b, p, end, &n);
        return p == BAD ? BAD : skip_string(b, p, end);
    case 5:
        p = read_len(b, p, end, &n);
        return p == BAD ? BAD : skip_strings(b, p, end, 2);
    case 6:
        p = skip_strings(b, p, end, 2);
        return p == BAD || p + 8 > end ? BAD : p + 8;
    default:
        return BAD;
    }
}

PyDoc_STRVAR(skip_groups_doc,
"skip_groups(buf, pos, end, shape, n) -> (pos, done)\n\n"
"Skip at most n element groups of the given shape in buf[pos:end]; stop at the first one not\n"
"whole before end. done: how many were skipped, pos: where the next one starts.");

static PyObject *py_skip_groups(PyObject *self, PyObject *args)
{
    Py_buffer buf;
    Py_ssize_t pos, end, n;
    int shape;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*nnin", &buf, &pos, &end, &shape, &n))
        return NULL;
    if (pos < 0 || end > buf.len || pos > end || n < 0 || shape < 0 || shape > 6) {
        PyBuffer_Release(&buf);
        PyErr_SetString(PyExc_ValueError, "skip_groups: bad arguments");
        return NULL;
    }
    const unsigned char *b = (const unsigned char *)buf.buf;
    Py_ssize_t done = 0;
    while (done < n) {
        Py_ssize_t q = skip_group(b, pos, end, shape);
        if (q == BAD)
            break;
        pos = q;
        done++;
    }
    PyBuffer_Release(&buf);
    return Py_BuildValue("nn", pos, done);
}

PyDoc_STRVAR(crc_doc, "crc64(data, crc=0) -> int: CRC-64/Jones as Redis computes it, chained from crc.");

static PyObject *py_crc64(PyObject *self, PyObject *args)
{
    Py_buffer data;
    unsigned long long crc = 0;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*|K", &data, &crc))
        return NULL;
    uint64_t r = crc64(crc, (const unsigned char *)data.buf, (size_t)data.len);
    PyBuffer_Release(&data);
    return PyLong_FromUnsignedLongLong(r);
}

static PyMethodDef methods[] = {
    {"walk", walk, METH_VARARGS, walk_doc},
    {"crc64", py_crc64, METH_VARARGS, crc_doc},
    {"skip_groups", py_skip_groups, METH_VARARGS, skip_groups_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_walk", "RDB key records to RESTORE commands, in C.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__walk(void)
{
    crc_init();
    return PyModule_Create(&module);
}
