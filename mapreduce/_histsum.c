/*
 * Element-wise sums of telemetry histograms, in C: the histogram aggregation's hot loop.
 *
 * histograms_of(text) -> bytes
 *     The "histograms" object of one ping's JSON text, packed (see PACKED FORMAT
 *     below) without making a Python object per number. The whole text is
 *     validated as JSON (UTF-8, nested at most 1024 deep, as orjson): ValueError
 *     if it is not, or if the last "histograms" member is not an object of
 *     arrays of finite numbers, so a job's map counts it as a bad record. A name
 *     given twice keeps its last value in its first place, as json.loads does.
 *
 * merge_sets(values) -> (merged, refused)
 *     ``values`` is a list of histogram sets: one ping's ({name: [numbers]}, or
 *     packed), or already merged ({name: (pings, [numbers])}, or packed).
 *     ``merged`` is {name: (pings, [sums])} in order of first appearance;
 *     ``refused`` is {name: pings} for arrays whose length differs from the
 *     first array seen for that name (the bucket layout changed between builds).
 *
 * merge_packed(values) -> (packed, refused)
 *     The same, with the merged set packed: a tenth of the memory of the dict,
 *     and pickled by a copy. Combiners write this.
 *
 * Sums are exact: integers while adding (64 bits and a count of wraps), which must fit in 64 bits
 * when written out, floats as non-overlapping partials (Shewchuk's algorithm,
 * as math.fsum), rounded once when a dict is made; packed sets keep float
 * columns exact. So a sum does not depend on how its values were grouped or
 * ordered (machines, bundles, combine passes). An integer sum beyond 64 bits
 * or a float sum beyond the largest double is a ValueError naming the
 * histogram. Packed sets are read as untrusted bytes: every length, kind and
 * count is checked before it is used, and damage is a ValueError ("packed
 * histogram data is damaged: ...").
 * mapreduce/histsum.py has the same algorithms in Python, used when this
 * module is not built: both give the same results, bit for bit, and refuse
 * the same input.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <math.h>
#include <string.h>

/* An exact sum of doubles: non-overlapping partials, smallest first (Shewchuk's, as in math.fsum). */
typedef struct {
    double *items;
    int count, capacity;
} Exact;

typedef struct {
    Py_ssize_t length;
    __int128 pings;
    int64_t *ints;     /* integer sums, wrapped: the exact sum is ints[i] + carries[i] * 2**64 */
    int64_t *carries;  /* made at the first wrap (NULL until then: none) */
    Exact *floats;
    char *saw_float;
    Py_ssize_t last_set; /* the packed set that last added here: a name twice in one set is damage */
} Sums;

enum { ADDED = 0, NO_MEMORY = -1, NOT_FINITE = 1 };

/* exact += x: ADDED, NO_MEMORY (exception set) or NOT_FINITE (the sum is no longer a finite double). */
static int exact_add(Exact *exact, double x) {
    int kept = 0;
    for (int j = 0; j < exact->count; j++) {
        double y = exact->items[j];
        if (fabs(x) < fabs(y)) {
            double t = x;
            x = y;
            y = t;
        }
        double hi = x + y;
        double lo = y - (hi - x);
        if (lo != 0.0)
            exact->items[kept++] = lo;
        x = hi;
    }
    if (!isfinite(x))
        return NOT_FINITE;
    if (kept == exact->capacity) {
        int capacity = exact->capacity ? exact->capacity * 2 : 4;
        double *items = PyMem_Realloc(exact->items, capacity * sizeof(double));
        if (items == NULL) {
            PyErr_NoMemory();
            return NO_MEMORY;
        }
        exact->items = items;
        exact->capacity = capacity;
    }
    exact->items[kept++] = x;
    exact->count = kept;
    return ADDED;
}

/* A failed exact_add as an exception: -1. */
static int not_finite(int failure, PyObject *name, Py_ssize_t element) {
    if (failure == NOT_FINITE)
        PyErr_Format(PyExc_ValueError, "histogram %R: the sum of element %zd is not a finite number "
                     "(NaN or infinity in the data, or beyond the largest float)", name, element);
    return -1;
}

/* An int64 as two doubles whose sum is exactly it. */
static void split_integer(int64_t value, double *hi, double *lo) {
    *hi = (double)value;
    *lo = (double)((__int128)value - (__int128)*hi);
}

/* exact + integer, both exact, into ``out`` (which the caller frees): as exact_add. */
static int exact_with_integer(const Exact *exact, int64_t integer, Exact *out) {
    out->count = 0;
    out->capacity = exact->count + 4;
    out->items = PyMem_Malloc(out->capacity * sizeof(double));
    if (out->items == NULL) {
        PyErr_NoMemory();
        return NO_MEMORY;
    }
    memcpy(out->items, exact->items, exact->count * sizeof(double));
    out->count = exact->count;
    double hi, lo;
    split_integer(integer, &hi, &lo);
    int failure = exact_add(out, hi);
    return failure ? failure : exact_add(out, lo);
}

/* The exact sum rounded to the nearest double, ties to even: math.fsum's final step, line for line. */
static double exact_round(const Exact *exact) {
    const double *p = exact->items;
    int n = exact->count;
    double hi = 0.0, lo = 0.0;
    if (n > 0) {
        hi = p[--n];
        while (n > 0) {
            double x = hi, y = p[--n];
            hi = x + y;
            double yr = hi - x;
            lo = y - yr;
            if (lo != 0.0)
                break;
        }
        if (n > 0 && ((lo < 0.0 && p[n - 1] < 0.0) || (lo > 0.0 && p[n - 1] > 0.0))) {
            double y = lo * 2.0;
            double x = hi + y;
            double yr = x - hi;
            if (y == yr)
                hi = x;
        }
    }
    return hi;
}

typedef struct {
    Sums *items;
    Py_ssize_t count;
    Py_ssize_t capacity;
} SumsTable;

static void table_free(SumsTable *table) {
    for (Py_ssize_t i = 0; i < table->count; i++) {
        PyMem_Free(table->items[i].ints);
        PyMem_Free(table->items[i].carries);
        if (table->items[i].floats != NULL)
            for (Py_ssize_t j = 0; j < table->items[i].length; j++)
                PyMem_Free(table->items[i].floats[j].items);
        PyMem_Free(table->items[i].floats);
        PyMem_Free(table->items[i].saw_float);
    }
    PyMem_Free(table->items);
}

static Sums *table_add(SumsTable *table, Py_ssize_t length) {
    if (table->count == table->capacity) {
        Py_ssize_t capacity = table->capacity ? table->capacity * 2 : 64;
        Sums *items = PyMem_Realloc(table->items, capacity * sizeof(Sums));
        if (items == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
        table->items = items;
        table->capacity = capacity;
    }
    Sums *sums = &table->items[table->count];
    memset(sums, 0, sizeof(Sums));
    sums->length = length;
    sums->ints = PyMem_Calloc(length ? length : 1, sizeof(int64_t));
    sums->floats = PyMem_Calloc(length ? length : 1, sizeof(Exact));
    sums->saw_float = PyMem_Calloc(length ? length : 1, 1);
    table->count++;
    if (sums->ints == NULL || sums->floats == NULL || sums->saw_float == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    return sums;
}

/* The totals of ``sums`` must fit the 64 bits they are written in: -1 with a ValueError naming ``name`` if not. */
static int check_totals(const Sums *sums, PyObject *name) {
    if (sums->pings > INT64_MAX) {
        PyErr_Format(PyExc_ValueError, "histogram %R: the number of pings does not fit in 64 bits", name);
        return -1;
    }
    for (Py_ssize_t i = 0; sums->carries != NULL && i < sums->length; i++)
        if (sums->carries[i] != 0) {
            PyErr_Format(PyExc_ValueError, "histogram %R: the sum of element %zd does not fit in 64 bits", name, i);
            return -1;
        }
    return 0;
}

/* Count a wrap of ints[i] past 64 bits (rare: its carries are made here). */
__attribute__((cold, noinline)) static int count_wrap(Sums *sums, Py_ssize_t i, int64_t value) {
    if (sums->carries == NULL && (sums->carries = PyMem_Calloc(sums->length, sizeof(int64_t))) == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    sums->carries[i] += value < 0 ? -1 : 1;
    return 0;
}

/* ints[i] += value, exactly: a wrap past 64 bits is counted in the carries. */
static inline int add_integer(Sums *sums, int64_t *restrict ints, Py_ssize_t i, int64_t value) {
    int64_t total;
    if (__builtin_add_overflow(ints[i], value, &total) && count_wrap(sums, i, value) < 0)
        return -1;
    ints[i] = total;
    return 0;
}

/* Add one array (the items of a list or tuple) into ``sums``; -1 with an exception set on a bad element. */
static int add_array(Sums *sums, PyObject **items, PyObject *name) {
    for (Py_ssize_t i = 0; i < sums->length; i++) {
        PyObject *item = items[i];
        if (PyLong_Check(item)) {
            int overflow = 0;
            long long value = PyLong_AsLongLongAndOverflow(item, &overflow);
            if (overflow || (value == -1 && PyErr_Occurred())) {
                PyErr_Format(PyExc_ValueError, "histogram %R: value %R does not fit in 64 bits", name, item);
                return -1;
            }
            if (add_integer(sums, sums->ints, i, value) < 0)
                return -1;
        } else if (PyFloat_Check(item)) {
            int failure = exact_add(&sums->floats[i], PyFloat_AS_DOUBLE(item));
            if (failure)
                return not_finite(failure, name, i);
            sums->saw_float[i] = 1;
        } else {
            PyErr_Format(PyExc_TypeError, "histogram %R: element %zd is %.100s, not a number",
                         name, i, Py_TYPE(item)->tp_name);
            return -1;
        }
    }
    return 0;
}

/* Count ``pings`` more under ``name`` in ``refused`` (Python ints: a count of refused pings cannot overflow). */
static int refuse(PyObject *refused, PyObject *name, long long pings) {
    PyObject *before = PyDict_GetItemWithError(refused, name);
    if (before == NULL && PyErr_Occurred())
        return -1;
    PyObject *more = PyLong_FromLongLong(pings);
    PyObject *total = more && before ? PyNumber_Add(before, more) : more;
    if (total != more)
        Py_XDECREF(more);
    if (total == NULL)
        return -1;
    int failed = PyDict_SetItem(refused, name, total);
    Py_DECREF(total);
    return failed;
}

/* The sums of ``name`` (borrowed from the table), created with ``length`` elements if it is new. */
static Sums *find_sums(SumsTable *table, PyObject *index, PyObject *name, Py_ssize_t length) {
    PyObject *position = PyDict_GetItemWithError(index, name);
    if (position != NULL)
        return &table->items[PyLong_AsSsize_t(position)];
    if (PyErr_Occurred())
        return NULL;
    PyObject *number = PyLong_FromSsize_t(table->count);
    if (number == NULL)
        return NULL;
    int failed = PyDict_SetItem(index, name, number);
    Py_DECREF(number);
    return failed ? NULL : table_add(table, length);
}

/* The pings of a merged entry: an int from 0 to 2**63 - 1; -1 with an exception set if it is not one. */
static long long entry_pings(PyObject *name, PyObject *pings) {
    if (!PyLong_Check(pings)) {
        PyErr_Format(PyExc_TypeError, "histogram %R: pings is %.100s, not an int", name, Py_TYPE(pings)->tp_name);
        return -1;
    }
    int overflow = 0;
    long long value = PyLong_AsLongLongAndOverflow(pings, &overflow);
    if (value == -1 && PyErr_Occurred())
        return -1;
    if (overflow || value < 0) {
        PyErr_Format(PyExc_ValueError, "histogram %R: pings %R is not from 0 to 2**63 - 1", name, pings);
        return -1;
    }
    return value;
}

/* One histogram entry of one value: a raw array (one ping) or a (pings, array) pair. */
static int add_entry(SumsTable *table, PyObject *index, PyObject *refused, PyObject *name, PyObject *entry) {
    long long pings = 1;
    PyObject *array = entry;
    if (!PyUnicode_CheckExact(name)) {
        PyErr_Format(PyExc_TypeError, "a histogram name is a str, not %.100s", Py_TYPE(name)->tp_name);
        return -1;
    }
    if (PyTuple_CheckExact(entry)) {
        if (PyTuple_GET_SIZE(entry) != 2) {
            PyErr_Format(PyExc_TypeError, "histogram %R: a merged entry is (pings, sums)", name);
            return -1;
        }
        pings = entry_pings(name, PyTuple_GET_ITEM(entry, 0));
        if (pings < 0)
            return -1;
        array = PyTuple_GET_ITEM(entry, 1);
    }
    if (!PyList_Check(array) && !PyTuple_Check(array)) {
        PyErr_Format(PyExc_TypeError, "histogram %R: a histogram is a list of numbers, not %.100s", name,
                     Py_TYPE(array)->tp_name);
        return -1;
    }
    PyObject *fast = PySequence_Fast(array, "a histogram must be a list of numbers");
    if (fast == NULL)
        return -1;
    Py_ssize_t length = PySequence_Fast_GET_SIZE(fast);
    Sums *sums = find_sums(table, index, name, length);
    int result = -1;
    if (sums != NULL && sums->length != length) {
        result = refuse(refused, name, pings);
    } else if (sums != NULL && add_array(sums, PySequence_Fast_ITEMS(fast), name) == 0) {
        sums->pings += pings;
        result = 0;
    }
    Py_DECREF(fast);
    return result;
}

/* ---- PACKED FORMAT ------------------------------------------------------------------
 * "HS1\0", u32 count, then per histogram: u16 name length, the name (UTF-8), u64 pings,
 * u32 n, n elements of (u8 kind; 8 bytes), then the partials of its kind-2 elements, in order:
 *   kind 0: an integer (int64)          kind 1: a float (IEEE double, finite)
 *   kind 2: an exact float sum; the 8 bytes count its partials (finite doubles, after the elements)
 * Little-endian throughout, so a packed value means the same on every machine. Names are distinct
 * within a set, pings are below 2**63, and nothing follows the last histogram.
 */

static const char MAGIC[4] = {'H', 'S', '1', '\0'};
enum { INTEGER = 0, FLOAT = 1, EXACT = 2 };
#define HEADER_BYTES 14 /* a histogram's u16 name length, u64 pings and u32 element count */

typedef struct {
    unsigned char *data;
    Py_ssize_t size, capacity;
} Buffer;

static int buffer_reserve(Buffer *b, Py_ssize_t more) {
    if (b->size + more <= b->capacity)
        return 0;
    Py_ssize_t capacity = b->capacity ? b->capacity : 4096;
    while (capacity < b->size + more)
        capacity *= 2;
    unsigned char *data = PyMem_Realloc(b->data, capacity);
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    b->data = data;
    b->capacity = capacity;
    return 0;
}

static void put_le(unsigned char *out, uint64_t value, int bytes) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(out, &value, bytes);
#else
    for (int i = 0; i < bytes; i++)
        out[i] = (unsigned char)(value >> (8 * i));
#endif
}

static uint64_t get_le(const unsigned char *in, int bytes) {
    uint64_t value = 0;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(&value, in, bytes);
#else
    for (int i = 0; i < bytes; i++)
        value |= (uint64_t)in[i] << (8 * i);
#endif
    return value;
}

/* Whether the IEEE double with these bits is finite (not NaN or an infinity). */
static int finite_bits(uint64_t bits) {
    return (bits & 0x7FF0000000000000ull) != 0x7FF0000000000000ull;
}

/* ---- a validating JSON scanner --------------------------------------------------------- */

#define MAX_NESTING 1024 /* arrays and objects inside each other, the top level included: orjson's limit */

typedef struct {
    const char *start, *p, *end;
} Scan;

static int invalid(Scan *s, const char *what) {
    PyErr_Format(PyExc_ValueError, "%s (at character %zd of the ping)", what, (Py_ssize_t)(s->p - s->start));
    return -1;
}

static void skip_space(Scan *s) {
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
        s->p++;
}

static int is_hex(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* The length of the well-formed UTF-8 sequence at ``p`` (its lead byte is 0x80 or more), or 0 if there is none:
 * no overlong forms, surrogates or code points past U+10FFFF, as Python's strict decoder. */
static int utf8_sequence(const unsigned char *p, const unsigned char *end) {
    unsigned char lead = p[0];
    int length = lead >= 0xC2 && lead <= 0xDF ? 2 : lead >= 0xE0 && lead <= 0xEF ? 3 : lead >= 0xF0 && lead <= 0xF4 ? 4 : 0;
    if (length == 0 || end - p < length)
        return 0;
    for (int i = 1; i < length; i++)
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    if ((lead == 0xE0 && p[1] < 0xA0) || (lead == 0xED && p[1] > 0x9F) || (lead == 0xF0 && p[1] < 0x90) ||
        (lead == 0xF4 && p[1] > 0x8F))
        return 0;
    return length;
}

/* The bytes a string's scan must look at: the closing quote, escapes, control characters, and non-ASCII. */
static const unsigned char SPECIAL_IN_STRING[256] = {[0 ... 0x1F] = 1, ['"'] = 1, ['\\'] = 1, [0x80 ... 0xFF] = 1};

/* At '"': moves past the closing quote; the raw content is [*text, *text + *length), *escaped if it has escapes. */
static int scan_string(Scan *s, const char **text, Py_ssize_t *length, int *escaped) {
    s->p++;
    const char *begin = s->p;
    *escaped = 0;
    while (s->p < s->end) {
        while (s->p < s->end && !SPECIAL_IN_STRING[(unsigned char)*s->p])
            s->p++;
        if (s->p >= s->end)
            break;
        unsigned char c = (unsigned char)*s->p;
        if (c == '"') {
            *text = begin;
            *length = s->p - begin;
            s->p++;
            return 0;
        }
        if (c < 0x20)
            return invalid(s, "control character in a string");
        if (c >= 0x80) {
            int sequence = utf8_sequence((const unsigned char *)s->p, (const unsigned char *)s->end);
            if (sequence == 0)
                return invalid(s, "the ping is not valid UTF-8");
            s->p += sequence;
            continue;
        }
        if (c == '\\') {
            *escaped = 1;
            s->p++;
            if (s->p >= s->end)
                break;
            char e = *s->p;
            if (e == 'u') {
                if (s->end - s->p < 5 || !is_hex(s->p[1]) || !is_hex(s->p[2]) || !is_hex(s->p[3]) || !is_hex(s->p[4]))
                    return invalid(s, "bad \\u escape");
                s->p += 4;
            } else if (!strchr("\"\\/bfnrt", e) || e == '\0') {
                return invalid(s, "bad escape");
            }
        }
        s->p++;
    }
    return invalid(s, "unterminated string");
}

static unsigned hex_value(const char *digits) {
    unsigned value = 0;
    for (int i = 0; i < 4; i++) {
        char c = digits[i];
        value = value * 16 + (unsigned)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
    }
    return value;
}

/* A string's raw content (escapes checked by scan_string) decoded into ``out`` as UTF-8, which needs at most
 * ``length`` bytes: the decoded length, or -1 if a \u escape is a lone surrogate (no UTF-8 for it). */
static Py_ssize_t unescape(const char *text, Py_ssize_t length, unsigned char *out) {
    const char *end = text + length;
    unsigned char *o = out;
    while (text < end) {
        if (*text != '\\') {
            *o++ = (unsigned char)*text++;
            continue;
        }
        char e = text[1];
        text += 2;
        if (e != 'u') {
            *o++ = e == 'b' ? '\b' : e == 'f' ? '\f' : e == 'n' ? '\n' : e == 'r' ? '\r' : e == 't' ? '\t' : e;
            continue;
        }
        unsigned code = hex_value(text);
        text += 4;
        if (code >= 0xDC00 && code <= 0xDFFF)
            return -1;
        if (code >= 0xD800 && code <= 0xDBFF) {
            unsigned low = end - text >= 6 && text[0] == '\\' && text[1] == 'u' ? hex_value(text + 2) : 0;
            if (low < 0xDC00 || low > 0xDFFF)
                return -1;
            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
            text += 6;
        }
        if (code < 0x80) {
            *o++ = (unsigned char)code;
        } else if (code < 0x800) {
            *o++ = (unsigned char)(0xC0 | (code >> 6));
            *o++ = (unsigned char)(0x80 | (code & 0x3F));
        } else if (code < 0x10000) {
            *o++ = (unsigned char)(0xE0 | (code >> 12));
            *o++ = (unsigned char)(0x80 | ((code >> 6) & 0x3F));
            *o++ = (unsigned char)(0x80 | (code & 0x3F));
        } else {
            *o++ = (unsigned char)(0xF0 | (code >> 18));
            *o++ = (unsigned char)(0x80 | ((code >> 12) & 0x3F));
            *o++ = (unsigned char)(0x80 | ((code >> 6) & 0x3F));
            *o++ = (unsigned char)(0x80 | (code & 0x3F));
        }
    }
    return o - out;
}

/* The common "123.456" (no exponent, at most 15 digits): an integer divided by an exact power of ten, which
 * IEEE division rounds correctly, so the result equals Python's float(text). 0 if the text is not that simple. */
static int fast_decimal(const char *begin, const char *end, double *real) {
    static const double powers[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
                                    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    int negative = *begin == '-';
    uint64_t mantissa = 0;
    int digits = 0, decimals = -1;
    for (const char *c = begin + negative; c < end; c++) {
        if (*c == '.') {
            decimals = 0;
            continue;
        }
        if (*c < '0' || *c > '9' || ++digits > 15)
            return 0;
        mantissa = mantissa * 10 + (uint64_t)(*c - '0');
        if (decimals >= 0)
            decimals++;
    }
    if (decimals < 0)
        return 0;
    double value = (double)mantissa / powers[decimals];
    *real = negative ? -value : value;
    return 1;
}

/* A number; with ``value`` set, also its value: an integer (returns 0) or a float (returns 1). */
static int scan_number(Scan *s, int64_t *integer, double *real) {
    const char *begin = s->p;
    int is_float = 0;
    if (s->p < s->end && *s->p == '-')
        s->p++;
    if (s->p >= s->end || !(*s->p >= '0' && *s->p <= '9')) {
        int constant = (s->end - s->p >= 3 && memcmp(s->p, "NaN", 3) == 0) ||
                       (s->end - s->p >= 8 && memcmp(s->p, "Infinity", 8) == 0);
        return invalid(s, constant ? "NaN and Infinity are not JSON numbers" : "expected a value");
    }
    if (*s->p == '0')
        s->p++;
    else
        while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
            s->p++;
    if (s->p < s->end && *s->p == '.') {
        is_float = 1;
        s->p++;
        if (s->p >= s->end || !(*s->p >= '0' && *s->p <= '9'))
            return invalid(s, "digits expected after '.'");
        while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
            s->p++;
    }
    if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
        is_float = 1;
        s->p++;
        if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
            s->p++;
        if (s->p >= s->end || !(*s->p >= '0' && *s->p <= '9'))
            return invalid(s, "digits expected in the exponent");
        while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
            s->p++;
    }
    if (integer == NULL)
        return is_float;
    if (is_float) {
        if (fast_decimal(begin, s->p, real))
            return 1;
        char *stop;
        *real = PyOS_string_to_double(begin, &stop, NULL);
        if (*real == -1.0 && PyErr_Occurred())
            return -1;
        return 1;
    }
    int negative = *begin == '-';
    const char *digits = begin + negative;
    uint64_t magnitude = 0;
    for (const char *d = digits; d < s->p; d++)
        magnitude = magnitude * 10 + (uint64_t)(*d - '0');
    /* 18 digits always fit; 19 or more may have wrapped or passed the int64 range: such an integer is
     * read as a float, as orjson does past 64 bits (and Python's float() of it, in the twin). */
    if (s->p - digits > 18) {
        const char *limit = negative ? "9223372036854775808" : "9223372036854775807";
        if (s->p - digits > 19 || memcmp(digits, limit, 19) > 0) {
            char *stop;
            *real = PyOS_string_to_double(begin, &stop, NULL);
            return (*real == -1.0 && PyErr_Occurred()) ? -1 : 1;
        }
    }
    *integer = negative ? (int64_t)(0 - magnitude) : (int64_t)magnitude;
    return 0;
}

static int skip_value(Scan *s, int depth);

/* An array or object nested ``depth`` levels below the top-level object. */
static int skip_container(Scan *s, int depth, char close) {
    if (depth + 1 > MAX_NESTING)
        return invalid(s, "nested more than 1024 deep");
    s->p++;
    skip_space(s);
    if (s->p < s->end && *s->p == close) {
        s->p++;
        return 0;
    }
    while (1) {
        if (close == '}') {
            const char *text;
            Py_ssize_t length;
            int escaped;
            if (s->p >= s->end || *s->p != '"' || scan_string(s, &text, &length, &escaped) < 0)
                return PyErr_Occurred() ? -1 : invalid(s, "expected a member name");
            skip_space(s);
            if (s->p >= s->end || *s->p != ':')
                return invalid(s, "expected ':'");
            s->p++;
        }
        if (skip_value(s, depth + 1) < 0)
            return -1;
        skip_space(s);
        if (s->p < s->end && *s->p == ',') {
            s->p++;
            skip_space(s);
            continue;
        }
        if (s->p < s->end && *s->p == close) {
            s->p++;
            return 0;
        }
        return invalid(s, close == '}' ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static int skip_literal(Scan *s, const char *word) {
    size_t length = strlen(word);
    if ((size_t)(s->end - s->p) < length || memcmp(s->p, word, length) != 0)
        return invalid(s, "expected a value");
    s->p += length;
    return 0;
}

static int skip_value(Scan *s, int depth) {
    skip_space(s);
    if (s->p >= s->end)
        return invalid(s, "expected a value");
    switch (*s->p) {
    case '{':
        return skip_container(s, depth, '}');
    case '[':
        return skip_container(s, depth, ']');
    case '"': {
        const char *text;
        Py_ssize_t length;
        int escaped;
        return scan_string(s, &text, &length, &escaped);
    }
    case 't':
        return skip_literal(s, "true");
    case 'f':
        return skip_literal(s, "false");
    case 'n':
        return skip_literal(s, "null");
    default:
        return scan_number(s, NULL, NULL) < 0 ? -1 : 0;
    }
}

/* ---- packing a ping's "histograms" ------------------------------------------------------ */

/* Why the "histograms" being packed cannot be used (what is NULL while it can): reported only if it is the
 * ping's last "histograms", since json.loads keeps the last of duplicate members. */
typedef struct {
    const char *what;
    Py_ssize_t at;
} Problem;

/* One histogram member as packed: its bytes start at ``offset`` and end where the next one's start. */
typedef struct {
    Py_ssize_t offset;
    Py_ssize_t last;   /* the member holding this name's value: itself, or a later duplicate */
    uint64_t hash;
    int duplicate;     /* a later member with an earlier name: its bytes move to the first one's place */
    Problem problem;   /* why this member's value is not an array of finite numbers */
} Member;

/* The members of one "histograms" object, with a hash table of their names to find duplicates. */
typedef struct {
    Member *members;
    Py_ssize_t count, capacity;
    Py_ssize_t *slots; /* member index + 1 of each name's first member, 0 where free; a power of two */
    Py_ssize_t slot_count;
    int duplicates;
} Members;

static void members_free(Members *members) {
    PyMem_Free(members->members);
    PyMem_Free(members->slots);
}

/* A quick hash of a name, from its length and its first and last 8 bytes (names of one ping rarely share
 * both); a collision costs one memcmp more. */
static uint64_t name_hash(const unsigned char *name, Py_ssize_t length) {
    uint64_t first = 0, last = 0;
    if (length >= 8) {
        memcpy(&first, name, 8);
        memcpy(&last, name + length - 8, 8);
    } else {
        memcpy(&first, name, length);
    }
    uint64_t hash = (first ^ (last << 29 | last >> 35) ^ (uint64_t)length) * 0x9E3779B97F4A7C15ull;
    return hash ^ hash >> 32;
}

static const unsigned char *member_name(const Buffer *out, const Member *member, Py_ssize_t *length) {
    *length = (Py_ssize_t)get_le(out->data + member->offset, 2);
    return out->data + member->offset + 2;
}

/* Where ``hash`` belongs in the slots: the slot of the member with the same name, or a free one. */
static Py_ssize_t members_slot(const Members *members, const Buffer *out, uint64_t hash, const unsigned char *name,
                               Py_ssize_t length) {
    Py_ssize_t mask = members->slot_count - 1;
    for (Py_ssize_t slot = (Py_ssize_t)(hash & (uint64_t)mask);; slot = (slot + 1) & mask) {
        Py_ssize_t index = members->slots[slot] - 1;
        if (index < 0)
            return slot;
        const Member *other = &members->members[index];
        Py_ssize_t other_length;
        const unsigned char *other_name = member_name(out, other, &other_length);
        if (other->hash == hash && other_length == length && memcmp(other_name, name, length) == 0)
            return slot;
    }
}

static int members_grow(Members *members, const Buffer *out) {
    if (members->count == members->capacity) {
        Py_ssize_t capacity = members->capacity ? members->capacity * 2 : 512;
        Member *grown = PyMem_Realloc(members->members, capacity * sizeof(Member));
        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        members->members = grown;
        members->capacity = capacity;
    }
    if (2 * (members->count + 1) <= members->slot_count)
        return 0;
    Py_ssize_t slot_count = members->slot_count ? members->slot_count * 2 : 1024;
    Py_ssize_t *slots = PyMem_Calloc(slot_count, sizeof(Py_ssize_t));
    if (slots == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    PyMem_Free(members->slots);
    members->slots = slots;
    members->slot_count = slot_count;
    for (Py_ssize_t i = 0; i < members->count; i++) {
        const Member *member = &members->members[i];
        Py_ssize_t length;
        const unsigned char *name = member_name(out, member, &length);
        if (!member->duplicate)
            members->slots[members_slot(members, out, member->hash, name, length)] = i + 1;
    }
    return 0;
}

/* Record the member whose bytes (name first) start at ``offset`` in ``out``; a name seen before is marked. */
static Member *members_add(Members *members, const Buffer *out, Py_ssize_t offset) {
    if (members_grow(members, out) < 0)
        return NULL;
    Py_ssize_t index = members->count++;
    Member *member = &members->members[index];
    member->offset = offset;
    member->last = index;
    member->duplicate = 0;
    member->problem.what = NULL;
    Py_ssize_t length;
    const unsigned char *name = member_name(out, member, &length);
    member->hash = name_hash(name, length);
    Py_ssize_t slot = members_slot(members, out, member->hash, name, length);
    if (members->slots[slot]) {
        members->members[members->slots[slot] - 1].last = index;
        member->duplicate = 1;
        members->duplicates = 1;
    } else {
        members->slots[slot] = index + 1;
    }
    return member;
}

/* ``out`` with each name once, in the place of its first member, holding its last member's bytes. */
static int members_compact(const Members *members, Buffer *out) {
    Buffer compact = {NULL, 0, 0};
    if (buffer_reserve(&compact, out->size) < 0)
        return -1;
    memcpy(compact.data, out->data, 8);
    compact.size = 8;
    uint32_t count = 0;
    for (Py_ssize_t i = 0; i < members->count; i++) {
        if (members->members[i].duplicate)
            continue;
        Py_ssize_t last = members->members[i].last;
        Py_ssize_t start = members->members[last].offset;
        Py_ssize_t stop = last + 1 < members->count ? members->members[last + 1].offset : out->size;
        memcpy(compact.data + compact.size, out->data + start, stop - start);
        compact.size += stop - start;
        count++;
    }
    put_le(compact.data + 4, count, 4);
    PyMem_Free(out->data);
    *out = compact;
    return 0;
}

/* After an element of an array that is refused: past the rest of the array, checking only its syntax. */
static int skip_elements(Scan *s) {
    while (1) {
        skip_space(s);
        if (s->p < s->end && *s->p == ']') {
            s->p++;
            return 0;
        }
        if (s->p >= s->end || *s->p != ',')
            return invalid(s, "expected ',' or ']'");
        s->p++;
        if (skip_value(s, 3) < 0)
            return -1;
    }
}

/* A histogram member's value packed into ``out`` after its header, whose element count is at ``count_at``.
 * A value that is not an array of finite numbers is scanned past and becomes ``problem``; its member keeps its
 * name (to be found as a duplicate) and no elements. */
static int pack_array(Scan *s, Buffer *out, Py_ssize_t count_at, Problem *problem) {
    uint32_t elements = 0;
    if (*s->p != '[') {
        *problem = (Problem){"a histogram is not an array of numbers", s->p - s->start};
        return skip_value(s, 2);
    }
    s->p++;
    skip_space(s);
    if (s->p < s->end && *s->p == ']') {
        s->p++;
        put_le(out->data + count_at, 0, 4);
        return 0;
    }
    while (1) {
        skip_space(s);
        Py_ssize_t at = s->p - s->start;
        if (s->p >= s->end || !(*s->p == '-' || (*s->p >= '0' && *s->p <= '9'))) {
            *problem = (Problem){"a histogram element is not a number", at};
            if (skip_value(s, 3) < 0)
                return -1;
            break;
        }
        int64_t integer = 0;
        double real = 0.0;
        int kind = scan_number(s, &integer, &real);
        if (kind < 0 || buffer_reserve(out, 9) < 0)
            return -1;
        if (kind == FLOAT && !isfinite(real)) {
            *problem = (Problem){"a histogram element is beyond the largest float", at};
            break;
        }
        uint64_t bits;
        if (kind == FLOAT)
            memcpy(&bits, &real, 8);
        else
            bits = (uint64_t)integer;
        out->data[out->size] = (unsigned char)kind;
        put_le(out->data + out->size + 1, bits, 8);
        out->size += 9;
        elements++;
        skip_space(s);
        if (s->p < s->end && *s->p == ',') {
            s->p++;
            continue;
        }
        if (s->p < s->end && *s->p == ']') {
            s->p++;
            put_le(out->data + count_at, elements, 4);
            return 0;
        }
        return invalid(s, "expected ',' or ']'");
    }
    out->size = count_at + 4;
    put_le(out->data + count_at, 0, 4);
    return skip_elements(s);
}

/* At the '{' of "histograms": pack it into ``out`` (replacing what is there). A syntax error is a ValueError
 * (-1); a value that parses but is not histograms is left in ``problem``, for the caller to raise. */
static int pack_histograms(Scan *s, Buffer *out, Problem *problem) {
    Members members = {NULL, 0, 0, NULL, 0, 0};
    int result = -1;
    *problem = (Problem){NULL, 0};
    out->size = 0;
    if (buffer_reserve(out, 8) < 0)
        return -1;
    memcpy(out->data, MAGIC, 4);
    put_le(out->data + 4, 0, 4);
    out->size = 8;
    s->p++;
    skip_space(s);
    if (s->p < s->end && *s->p == '}') {
        s->p++;
        return 0;
    }
    while (1) {
        const char *name;
        Py_ssize_t name_length;
        int escaped;
        if (s->p >= s->end || *s->p != '"') {
            invalid(s, "expected a histogram name");
            goto done;
        }
        Py_ssize_t name_at = s->p - s->start;
        if (scan_string(s, &name, &name_length, &escaped) < 0)
            goto done;
        skip_space(s);
        if (s->p >= s->end || *s->p != ':') {
            invalid(s, "expected ':'");
            goto done;
        }
        s->p++;
        skip_space(s);
        if (s->p >= s->end) {
            invalid(s, "expected a value");
            goto done;
        }
        if (problem->what != NULL) { /* the whole object is refused already: only its syntax matters now */
            if (skip_value(s, 2) < 0)
                goto done;
        } else {
            Py_ssize_t offset = out->size;
            if (buffer_reserve(out, HEADER_BYTES + name_length) < 0)
                goto done;
            unsigned char *packed_name = out->data + offset + 2;
            Py_ssize_t length = name_length;
            if (escaped)
                length = unescape(name, name_length, packed_name);
            else
                memcpy(packed_name, name, name_length);
            if (length < 0 || length > 65535) {
                *problem = (Problem){length < 0 ? "a histogram name is not valid Unicode (a lone surrogate)"
                                                : "a histogram name is longer than 65,535 bytes", name_at};
                if (skip_value(s, 2) < 0)
                    goto done;
            } else {
                put_le(out->data + offset, (uint64_t)length, 2);
                put_le(packed_name + length, 1, 8);
                out->size = offset + HEADER_BYTES + length;
                Member *member = members_add(&members, out, offset);
                if (member == NULL || pack_array(s, out, out->size - 4, &member->problem) < 0)
                    goto done;
            }
        }
        skip_space(s);
        if (s->p < s->end && *s->p == ',') {
            s->p++;
            skip_space(s);
            continue;
        }
        if (s->p < s->end && *s->p == '}') {
            s->p++;
            break;
        }
        invalid(s, "expected ',' or '}'");
        goto done;
    }
    result = 0;
    if (problem->what != NULL)
        goto done;
    for (Py_ssize_t i = 0; i < members.count; i++) {
        const Member *member = &members.members[i];
        if (!member->duplicate && members.members[member->last].problem.what != NULL) {
            *problem = members.members[member->last].problem;
            goto done;
        }
    }
    if (members.duplicates)
        result = members_compact(&members, out);
    else
        put_le(out->data + 4, (uint64_t)members.count, 4);
done:
    members_free(&members);
    return result;
}

static int is_histograms(const char *key, Py_ssize_t length, int escaped) {
    unsigned char decoded[60];
    if (escaped && length <= 60) {
        length = unescape(key, length, decoded);
        key = (const char *)decoded;
    }
    return length == 10 && memcmp(key, "histograms", 10) == 0;
}

static PyObject *histograms_of(PyObject *module, PyObject *text) {
    Py_ssize_t length;
    const char *data;
    if (PyUnicode_Check(text)) {
        data = PyUnicode_AsUTF8AndSize(text, &length);
        if (data == NULL) {
            if (PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) {
                PyErr_Clear();
                PyErr_SetString(PyExc_ValueError, "the ping is not valid Unicode (it has a lone surrogate)");
            }
            return NULL;
        }
    } else if (PyBytes_Check(text)) {
        data = PyBytes_AS_STRING(text);
        length = PyBytes_GET_SIZE(text);
    } else {
        return PyErr_Format(PyExc_TypeError, "histograms_of takes a ping's JSON text, not %.100s",
                            Py_TYPE(text)->tp_name);
    }
    Scan s = {data, data, data + length};
    Buffer out = {NULL, 0, 0};
    Problem problem = {"the ping has no \"histograms\"", 0};
    skip_space(&s);
    if (s.p >= s.end || *s.p != '{') {
        invalid(&s, "not a JSON object");
        goto fail;
    }
    s.p++;
    skip_space(&s);
    if (s.p < s.end && *s.p == '}') {
        s.p++;
    } else {
        while (1) {
            const char *key;
            Py_ssize_t key_length;
            int escaped;
            if (s.p >= s.end || *s.p != '"') {
                invalid(&s, "expected a member name");
                goto fail;
            }
            if (scan_string(&s, &key, &key_length, &escaped) < 0)
                goto fail;
            skip_space(&s);
            if (s.p >= s.end || *s.p != ':') {
                invalid(&s, "expected ':'");
                goto fail;
            }
            s.p++;
            skip_space(&s);
            if (!is_histograms(key, key_length, escaped)) {
                if (skip_value(&s, 1) < 0)
                    goto fail;
            } else if (s.p < s.end && *s.p == '{') {
                if (pack_histograms(&s, &out, &problem) < 0)
                    goto fail;
            } else {
                problem = (Problem){"\"histograms\" is not an object", s.p - s.start};
                if (skip_value(&s, 1) < 0)
                    goto fail;
            }
            skip_space(&s);
            if (s.p < s.end && *s.p == ',') {
                s.p++;
                skip_space(&s);
                continue;
            }
            if (s.p < s.end && *s.p == '}') {
                s.p++;
                break;
            }
            invalid(&s, "expected ',' or '}'");
            goto fail;
        }
    }
    skip_space(&s);
    if (s.p != s.end) {
        invalid(&s, "extra data after the JSON object");
        goto fail;
    }
    if (problem.what != NULL) {
        PyErr_Format(PyExc_ValueError, "%s (at character %zd of the ping)", problem.what, problem.at);
        goto fail;
    }
    PyObject *packed = PyBytes_FromStringAndSize((const char *)out.data, out.size);
    PyMem_Free(out.data);
    return packed;
fail:
    PyMem_Free(out.data);
    return NULL;
}

/* ---- merging ------------------------------------------------------------------------------ */

/* Where each histogram of the previous packed set went: pings of one build list the same names in the
 * same order, so a name is matched by comparing bytes, with no Python string or dict lookup. */
typedef struct {
    const unsigned char **names;
    Py_ssize_t *lengths, *positions;
    Py_ssize_t capacity;
} Hints;

static int hints_reserve(Hints *hints, Py_ssize_t count) {
    if (count <= hints->capacity)
        return 0;
    const unsigned char **names = PyMem_Realloc(hints->names, count * sizeof(*names));
    if (names != NULL)
        hints->names = names;
    Py_ssize_t *lengths = PyMem_Realloc(hints->lengths, count * sizeof(Py_ssize_t));
    if (lengths != NULL)
        hints->lengths = lengths;
    Py_ssize_t *positions = PyMem_Realloc(hints->positions, count * sizeof(Py_ssize_t));
    if (positions != NULL)
        hints->positions = positions;
    if (names == NULL || lengths == NULL || positions == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = hints->capacity; i < count; i++)
        hints->lengths[i] = -1;
    hints->capacity = count;
    return 0;
}

static void hints_free(Hints *hints) {
    PyMem_Free(hints->names);
    PyMem_Free(hints->lengths);
    PyMem_Free(hints->positions);
}

static int damaged(const char *what) {
    PyErr_Format(PyExc_ValueError, "packed histogram data is damaged: %s", what);
    return -1;
}

/* A packed name as a str; damage if it is not UTF-8. */
static PyObject *decode_name(const unsigned char *name, Py_ssize_t length) {
    PyObject *decoded = PyUnicode_DecodeUTF8((const char *)name, length, "strict");
    if (decoded == NULL && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
        PyErr_Clear();
        damaged("a histogram name is not UTF-8");
    }
    return decoded;
}

/* The sums for the histogram named by [name, name + length), the h-th of its set. */
static Sums *packed_sums(SumsTable *table, PyObject *index, Hints *hints, Py_ssize_t h, const unsigned char *name,
                         Py_ssize_t name_length, Py_ssize_t length) {
    if (hints->lengths[h] == name_length && memcmp(hints->names[h], name, name_length) == 0)
        return &table->items[hints->positions[h]];
    PyObject *decoded = decode_name(name, name_length);
    if (decoded == NULL)
        return NULL;
    Sums *sums = find_sums(table, index, decoded, length);
    Py_DECREF(decoded);
    if (sums != NULL) {
        hints->names[h] = name;
        hints->lengths[h] = name_length;
        hints->positions[h] = sums - table->items;
    }
    return sums;
}

static const char *BAD_ELEMENTS = "an element has an unknown kind, a float that is not finite, or partials cut short";

/* The partials after a packed histogram's ``length`` elements, checked against the ``room`` bytes that follow
 * the elements: -1 if an element has an unknown kind or a float that is not finite, or the partials do not fit
 * or are not finite. (For a refused histogram: add_elements checks the others as it adds them.) */
static Py_ssize_t packed_partials(const unsigned char *elements, Py_ssize_t length, Py_ssize_t room) {
    Py_ssize_t partials = 0, fit = room / 8;
    for (Py_ssize_t i = 0; i < length; i++) {
        unsigned char kind = elements[9 * i];
        if (kind == INTEGER)
            continue;
        uint64_t bits = get_le(elements + 9 * i + 1, 8);
        if (kind == FLOAT ? !finite_bits(bits) : kind != EXACT || bits > (uint64_t)(fit - partials))
            return -1;
        if (kind == EXACT)
            partials += (Py_ssize_t)bits;
    }
    for (Py_ssize_t t = 0; t < partials; t++)
        if (!finite_bits(get_le(elements + 9 * length + 8 * t, 8)))
            return -1;
    return partials;
}

/* Add one packed histogram's elements, and the partials after them (up to ``end``), into ``sums``, checking
 * every kind, float and count before using it: the number of partials, or -1 with an exception set. */
static Py_ssize_t add_elements(Sums *sums, const unsigned char *elements, const unsigned char *end,
                               const unsigned char *name, Py_ssize_t name_length) {
    const Py_ssize_t length = sums->length;
    int64_t *ints = sums->ints;
    const unsigned char *first_partial = elements + 9 * length, *partial = first_partial;
    for (Py_ssize_t i = 0; i < length; i++) {
        unsigned char kind = elements[9 * i];
        uint64_t bits = get_le(elements + 9 * i + 1, 8);
        if (kind == INTEGER) {
            if (add_integer(sums, ints, i, (int64_t)bits) < 0)
                return -1;
            continue;
        }
        if (kind == FLOAT ? !finite_bits(bits) : kind != EXACT || bits > (uint64_t)((end - partial) / 8))
            return damaged(BAD_ELEMENTS);
        sums->saw_float[i] = 1;
        Py_ssize_t terms = kind == FLOAT ? 1 : (Py_ssize_t)bits;
        for (Py_ssize_t t = 0; t < terms; t++) {
            double real;
            uint64_t term = kind == FLOAT ? bits : get_le(partial, 8);
            partial += kind == FLOAT ? 0 : 8;
            if (!finite_bits(term))
                return damaged(BAD_ELEMENTS);
            memcpy(&real, &term, 8);
            int failure = exact_add(&sums->floats[i], real);
            if (failure) {
                PyObject *key = failure == NOT_FINITE ? decode_name(name, name_length) : NULL;
                if (key != NULL)
                    not_finite(failure, key, i);
                Py_XDECREF(key);
                return -1;
            }
        }
    }
    return (partial - first_partial) / 8;
}

/* Add every histogram of packed set number ``set``; -1 with an exception set if it is damaged. */
static int add_packed(SumsTable *table, PyObject *index, PyObject *refused, Hints *hints, PyObject *packed,
                      Py_ssize_t set) {
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(packed);
    const unsigned char *end = p + PyBytes_GET_SIZE(packed);
    if (end - p < 8 || memcmp(p, MAGIC, 4) != 0)
        return damaged("it does not start with a packed set's header");
    Py_ssize_t count = (Py_ssize_t)get_le(p + 4, 4);
    if (count > (end - p - 8) / HEADER_BYTES)
        return damaged("it counts more histograms than its bytes can hold");
    if (hints_reserve(hints, count) < 0)
        return -1;
    p += 8;
    for (Py_ssize_t h = 0; h < count; h++) {
        if (end - p < HEADER_BYTES || end - p - HEADER_BYTES < (Py_ssize_t)get_le(p, 2))
            return damaged("a histogram is cut short");
        Py_ssize_t name_length = (Py_ssize_t)get_le(p, 2);
        const unsigned char *name = p + 2;
        p += 2 + name_length;
        uint64_t pings = get_le(p, 8);
        Py_ssize_t length = (Py_ssize_t)get_le(p + 8, 4);
        p += 12;
        if (pings > INT64_MAX)
            return damaged("a histogram's pings do not fit in 63 bits");
        if ((end - p) / 9 < length)
            return damaged("a histogram's elements are cut short");
        Sums *sums = packed_sums(table, index, hints, h, name, name_length, length);
        if (sums == NULL)
            return -1;
        if (sums->last_set == set)
            return damaged("a histogram name appears twice in one set");
        sums->last_set = set;
        Py_ssize_t partials;
        if (sums->length != length) {
            partials = packed_partials(p, length, end - p - 9 * length);
            if (partials < 0)
                return damaged(BAD_ELEMENTS);
            PyObject *key = decode_name(name, name_length);
            int failed = key == NULL || refuse(refused, key, (long long)pings);
            Py_XDECREF(key);
            if (failed)
                return -1;
        } else {
            partials = add_elements(sums, p, end, name, name_length);
            if (partials < 0)
                return -1;
            sums->pings += (long long)pings;
        }
        p += 9 * length + 8 * partials;
    }
    if (p != end)
        return damaged("bytes follow its last histogram");
    return 0;
}

static PyObject *sums_to_python(const Sums *sums, PyObject *name) {
    if (check_totals(sums, name) < 0)
        return NULL;
    PyObject *list = PyList_New(sums->length);
    if (list == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < sums->length; i++) {
        PyObject *value;
        if (sums->saw_float[i]) {
            Exact total;
            int failure = exact_with_integer(&sums->floats[i], sums->ints[i], &total);
            if (failure) {
                PyMem_Free(total.items);
                Py_DECREF(list);
                return not_finite(failure, name, i), NULL;
            }
            value = PyFloat_FromDouble(exact_round(&total));
            PyMem_Free(total.items);
        } else {
            value = PyLong_FromLongLong(sums->ints[i]);
        }
        if (value == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, value);
    }
    return Py_BuildValue("(LN)", (long long)sums->pings, list);
}

typedef struct {
    SumsTable table;
    Hints hints;
    PyObject *index;   /* name -> position in the table, in order of first appearance */
    PyObject *refused; /* name -> pings refused */
} Merge;

static void merge_free(Merge *merge) {
    table_free(&merge->table);
    hints_free(&merge->hints);
    Py_XDECREF(merge->index);
    Py_XDECREF(merge->refused);
}

/* Sum every value into ``merge``; -1 with an exception set (and ``merge`` to be freed) if one is bad. */
static int merge_values(Merge *merge, PyObject *values) {
    memset(merge, 0, sizeof(Merge));
    merge->index = PyDict_New();
    merge->refused = PyDict_New();
    if (merge->index == NULL || merge->refused == NULL)
        return -1;
    PyObject *fast = PySequence_Fast(values, "merging takes a list of histogram sets");
    if (fast == NULL)
        return -1;
    int result = 0;
    for (Py_ssize_t v = 0; v < PySequence_Fast_GET_SIZE(fast) && result == 0; v++) {
        PyObject *histograms = PySequence_Fast_GET_ITEM(fast, v);
        if (PyBytes_Check(histograms)) {
            result = add_packed(&merge->table, merge->index, merge->refused, &merge->hints, histograms, v + 1);
        } else if (PyDict_Check(histograms)) {
            Py_ssize_t position = 0;
            PyObject *name, *entry;
            while (result == 0 && PyDict_Next(histograms, &position, &name, &entry))
                result = add_entry(&merge->table, merge->index, merge->refused, name, entry);
        } else {
            PyErr_Format(PyExc_TypeError, "a histogram set is a dict of name -> array or packed bytes, got %.100s",
                         Py_TYPE(histograms)->tp_name);
            result = -1;
        }
    }
    Py_DECREF(fast);
    return result;
}

static PyObject *merge_sets(PyObject *module, PyObject *values) {
    Merge merge;
    PyObject *merged = NULL;
    if (merge_values(&merge, values) < 0 || (merged = PyDict_New()) == NULL)
        goto fail;
    Py_ssize_t position = 0;
    PyObject *name, *number;
    while (PyDict_Next(merge.index, &position, &name, &number)) {
        PyObject *value = sums_to_python(&merge.table.items[PyLong_AsSsize_t(number)], name);
        if (value == NULL || PyDict_SetItem(merged, name, value) < 0) {
            Py_XDECREF(value);
            goto fail;
        }
        Py_DECREF(value);
    }
    PyObject *result = Py_BuildValue("(OO)", merged, merge.refused);
    Py_DECREF(merged);
    merge_free(&merge);
    return result;
fail:
    Py_XDECREF(merged);
    merge_free(&merge);
    return NULL;
}

/* Append one histogram's sums to ``out`` in the packed format: -1 with an exception set if they cannot be. */
static int pack_sums(Buffer *out, const Sums *sums, PyObject *name) {
    Py_ssize_t name_length;
    const char *utf8 = PyUnicode_AsUTF8AndSize(name, &name_length);
    if (utf8 == NULL || check_totals(sums, name) < 0)
        return -1;
    if (name_length > 65535) {
        PyErr_Format(PyExc_ValueError, "histogram %R: the name is too long to pack (over 65,535 bytes)", name);
        return -1;
    }
    if (buffer_reserve(out, HEADER_BYTES + name_length + 9 * sums->length) < 0)
        return -1;
    unsigned char *p = out->data + out->size;
    put_le(p, (uint64_t)name_length, 2);
    memcpy(p + 2, utf8, name_length);
    put_le(p + 2 + name_length, (uint64_t)sums->pings, 8);
    put_le(p + 10 + name_length, (uint64_t)sums->length, 4);
    Py_ssize_t elements = out->size + HEADER_BYTES + name_length;
    for (Py_ssize_t i = 0; i < sums->length; i++) {
        p = out->data + elements + 9 * i;
        p[0] = sums->saw_float[i] ? EXACT : INTEGER;
        put_le(p + 1, sums->saw_float[i] ? 0 : (uint64_t)sums->ints[i], 8);
    }
    out->size = elements + 9 * sums->length;
    /* Float columns: their exact sum (the integers folded in), as partials after the elements. */
    for (Py_ssize_t i = 0; i < sums->length; i++) {
        if (!sums->saw_float[i])
            continue;
        Exact total;
        int failure = exact_with_integer(&sums->floats[i], sums->ints[i], &total);
        if (failure || buffer_reserve(out, 8 * total.count) < 0) {
            PyMem_Free(total.items);
            return failure ? not_finite(failure, name, i) : -1;
        }
        put_le(out->data + elements + 9 * i + 1, (uint64_t)total.count, 8);
        for (int t = 0; t < total.count; t++) {
            uint64_t term;
            memcpy(&term, &total.items[t], 8);
            put_le(out->data + out->size + 8 * t, term, 8);
        }
        out->size += 8 * total.count;
        PyMem_Free(total.items);
    }
    return 0;
}

static PyObject *merge_packed(PyObject *module, PyObject *values) {
    Merge merge;
    Buffer out = {NULL, 0, 0};
    if (merge_values(&merge, values) < 0 || buffer_reserve(&out, 8) < 0)
        goto fail;
    memcpy(out.data, MAGIC, 4);
    put_le(out.data + 4, (uint64_t)PyDict_GET_SIZE(merge.index), 4);
    out.size = 8;
    Py_ssize_t position = 0;
    PyObject *name, *number;
    while (PyDict_Next(merge.index, &position, &name, &number))
        if (pack_sums(&out, &merge.table.items[PyLong_AsSsize_t(number)], name) < 0)
            goto fail;
    PyObject *packed = PyBytes_FromStringAndSize((const char *)out.data, out.size);
    PyObject *result = packed ? Py_BuildValue("(NO)", packed, merge.refused) : NULL;
    PyMem_Free(out.data);
    merge_free(&merge);
    return result;
fail:
    PyMem_Free(out.data);
    merge_free(&merge);
    return NULL;
}

static PyMethodDef methods[] = {
    {"histograms_of", histograms_of, METH_O,
     "histograms_of(text) -> bytes: a ping's \"histograms\", packed; ValueError if the text is not valid JSON."},
    {"merge_packed", merge_packed, METH_O,
     "merge_packed(values) -> (packed, refused): as merge_sets, with the sums packed (compact, quick to pickle)."},
    {"merge_sets", merge_sets, METH_O,
     "merge_sets(values) -> (merged, refused): element-wise sums of histogram sets (see the module source)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "mapreduce._histsum", "Element-wise sums of telemetry histograms, in C.", -1, methods,
};

PyMODINIT_FUNC PyInit__histsum(void) {
    return PyModule_Create(&module);
}
