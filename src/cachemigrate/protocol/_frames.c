/* The replication stream's framing in C: split a buffer of RESP commands into *segments*.
 *
 * scan(buf, pos, special) -> (segments, end, need)
 *
 * A segment is a tuple (argv, start, stop, count):
 * - a run: argv None, `count` whole commands back to back in buf[start:stop], none of them named
 *   in `special`. Passed to the target as these very bytes: nothing of them is copied into a
 *   Python object per command;
 * - a special command: argv its arguments (a list of bytes), buf[start:stop] its bytes, count 1.
 *   `special` is a tuple of upper-case names (bytes), compared without case; None: every command
 *   is special (the per-command path).
 * Bare "\n" keepalives and empty arrays ("*0", "*-1": Redis skips them) end a run and belong to
 * no segment; their bytes are in `end` all the same (a replication offset counts every byte).
 *
 * `end` is where the scan stopped: after the last whole command (and keepalives after it).
 * `need`: N > 0 when the buffer must reach N bytes before its incomplete tail can complete (a
 * large value still arriving: the caller need not scan again before), else 0; -1 when the bytes at `end` are not a RESP
 * array of bulk strings: the caller's exact parser (protocol/frames.py) takes over from `end`
 * and raises the error with its words. The pure-Python twin, protocol/frames.py, must agree
 * (tests/unit/protocol/test_frames.py compares them).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#define MAX_LEN ((Py_ssize_t)1 << 40)

/* A decimal after a type byte at p[0], up to "\r\n". 1: parsed (*val, *next after the CRLF);
 * 0: incomplete; -1: malformed. Negative values only where `neg_ok`. */
static int read_int(const char *p, const char *end, int neg_ok, Py_ssize_t *val, const char **next)
{
    const char *q = p + 1;
    int neg = 0;
    Py_ssize_t v = 0;
    if (q < end && *q == '-') {
        if (!neg_ok)
            return -1;
        neg = 1;
        q++;
    }
    const char *digits = q;
    while (q < end && *q >= '0' && *q <= '9') {
        v = v * 10 + (*q - '0');
        if (v > MAX_LEN)
            return -1;
        q++;
    }
    if (q >= end)
        return 0;
    if (q == digits || *q != '\r')
        return -1;
    if (q + 1 >= end)
        return 0;
    if (q[1] != '\n')
        return -1;
    *val = neg ? -v : v;
    *next = q + 2;
    return 1;
}

static int is_special(const char *name, Py_ssize_t len, PyObject *special)
{
    if (special == Py_None)
        return 1;
    Py_ssize_t n = PyTuple_GET_SIZE(special);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *s = PyTuple_GET_ITEM(special, i);
        if (PyBytes_GET_SIZE(s) != len)
            continue;
        const char *t = PyBytes_AS_STRING(s);
        Py_ssize_t k = 0;
        while (k < len && (name[k] == t[k] || (name[k] >= 'a' && name[k] <= 'z' && name[k] - 32 == t[k])))
            k++;
        if (k == len)
            return 1;
    }
    return 0;
}

static int add_segment(PyObject *out, PyObject *argv, Py_ssize_t start, Py_ssize_t stop, Py_ssize_t count)
{
    PyObject *seg = Py_BuildValue("(Onnn)", argv, start, stop, count);
    if (seg == NULL)
        return -1;
    int rc = PyList_Append(out, seg);
    Py_DECREF(seg);
    return rc;
}

static PyObject *scan(PyObject *self, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t pos;
    PyObject *special;
    if (!PyArg_ParseTuple(args, "y*nO", &view, &pos, &special))
        return NULL;
    if (special != Py_None) {
        int ok = PyTuple_Check(special);
        for (Py_ssize_t i = 0; ok && i < PyTuple_GET_SIZE(special); i++)
            ok = PyBytes_Check(PyTuple_GET_ITEM(special, i));
        if (!ok) {
            PyBuffer_Release(&view);
            PyErr_SetString(PyExc_TypeError, "special must be a tuple of bytes or None");
            return NULL;
        }
    }
    const char *base = (const char *)view.buf;
    const char *end = base + view.len;
    if (pos < 0 || pos > view.len) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "pos out of range");
        return NULL;
    }
    PyObject *out = PyList_New(0);
    if (out == NULL) {
        PyBuffer_Release(&view);
        return NULL;
    }
    const char *p = base + pos;
    Py_ssize_t run_start = -1, run_count = 0, need = 0;
#define FLUSH_RUN()                                                                       \
    do {                                                                                  \
        if (run_count) {                                                                  \
            if (add_segment(out, Py_None, run_start, p - base, run_count) < 0)            \
                goto error;                                                               \
        }                                                                                 \
        run_count = 0;                                                                    \
    } while (0)

    while (p < end) {
        if (*p == '\n') { /* a keepalive */
            FLUSH_RUN();
            p++;
            continue;
        }
        if (*p != '*') {
            need = -1;
            break;
        }
        Py_ssize_t argc;
        const char *q;
        int rc = read_int(p, end, 1, &argc, &q);
        if (rc <= 0) {
            need = rc;
            break;
        }
        if (argc <= 0) { /* skipped, as Redis does */
            FLUSH_RUN();
            p = q;
            continue;
        }
        /* The arguments: check the whole command is here before making anything of it. */
        const char *name = NULL;
        Py_ssize_t name_len = 0;
        int complete = 1;
        for (Py_ssize_t i = 0; i < argc; i++) {
            if (q >= end) {
                complete = 0;
                break;
            }
            if (*q != '$') {
                need = -1;
                goto stop;
            }
            Py_ssize_t len;
            const char *data;
            rc = read_int(q, end, 0, &len, &data);
            if (rc < 0) {
                need = -1;
                goto stop;
            }
            if (rc == 0) {
                complete = 0;
                break;
            }
            if (data + len + 2 > end) {
                /* Data still arriving: the command cannot complete before this (resp.py's
                 * _bytes_needed gives the same bound). */
                complete = 0;
                need = (data - base) + len + 2;
                break;
            }
            if (data[len] != '\r' || data[len + 1] != '\n') {
                need = -1;
                goto stop;
            }
            if (i == 0) {
                name = data;
                name_len = len;
            }
            q = data + len + 2;
        }
        if (!complete)
            break;
        if (!is_special(name, name_len, special)) {
            if (!run_count)
                run_start = p - base;
            run_count++;
            p = q;
            continue;
        }
        FLUSH_RUN();
        PyObject *argv = PyList_New(argc);
        if (argv == NULL)
            goto error;
        const char *a = p;
        read_int(a, end, 1, &argc, &a);
        for (Py_ssize_t i = 0; i < argc; i++) {
            Py_ssize_t len;
            const char *data;
            read_int(a, end, 0, &len, &data);
            PyObject *b = PyBytes_FromStringAndSize(data, len);
            if (b == NULL) {
                Py_DECREF(argv);
                goto error;
            }
            PyList_SET_ITEM(argv, i, b);
            a = data + len + 2;
        }
        rc = add_segment(out, argv, p - base, q - base, 1);
        Py_DECREF(argv);
        if (rc < 0)
            goto error;
        p = q;
    }
stop:
    FLUSH_RUN();
    PyBuffer_Release(&view);
    return Py_BuildValue("(Nnn)", out, (Py_ssize_t)(p - base), need);
error:
    Py_DECREF(out);
    PyBuffer_Release(&view);
    return NULL;
#undef FLUSH_RUN
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS, "scan(buf, pos, special) -> (segments, end, need)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_frames", NULL, -1, methods};

PyMODINIT_FUNC PyInit__frames(void) { return PyModule_Create(&module); }
