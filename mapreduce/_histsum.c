/*
 * Element-wise sums of telemetry histograms, in C: the histogram aggregation's hot loop.
 *
 * histograms_of(text) -> bytes
 *     The "histograms" object of one ping's JSON text, packed (see PACKED FORMAT
 *     below) without making a Python object per number. The whole text is
 *     validated as JSON: ValueError if it is not, or if "histograms" is not an
 *     object of arrays of numbers, so a job's map counts it as a bad record.
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
 * Sums are exact: integers in 64 bits, floats as non-overlapping partials
 * (Shewchuk's algorithm, as math.fsum), rounded once when a dict is made;
 * packed sets keep float columns exact. So a sum does not depend on how its
 * values were grouped or ordered (machines, bundles, combine passes).
 * mapreduce/histsum.py has the same algorithms in Python, used when this
 * module is not built: both give the same results, bit for bit.
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
    long long pings;
    int64_t *ints;
    Exact *floats;
    char *saw_float;
} Sums;

/* exact += x; -1 with an exception set on overflow or no memory. */
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
    if (!isfinite(x)) {
        PyErr_SetString(PyExc_OverflowError, "a histogram's sum is too large for a float");
        return -1;
    }
    if (kept == exact->capacity) {
        int capacity = exact->capacity ? exact->capacity * 2 : 4;
        double *items = PyMem_Realloc(exact->items, capacity * sizeof(double));
        if (items == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        exact->items = items;
        exact->capacity = capacity;
    }
    exact->items[kept++] = x;
    exact->count = kept;
    return 0;
}

/* An int64 as two doubles whose sum is exactly it. */
static void split_integer(int64_t value, double *hi, double *lo) {
    *hi = (double)value;
    *lo = (double)((__int128)value - (__int128)*hi);
}

/* exact + integer, both exact, into ``out`` (which the caller frees). */
static int exact_with_integer(const Exact *exact, int64_t integer, Exact *out) {
    out->count = 0;
    out->capacity = exact->count + 4;
    out->items = PyMem_Malloc(out->capacity * sizeof(double));
    if (out->items == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memcpy(out->items, exact->items, exact->count * sizeof(double));
    out->count = exact->count;
    double hi, lo;
    split_integer(integer, &hi, &lo);
    return exact_add(out, hi) < 0 || exact_add(out, lo) < 0 ? -1 : 0;
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

/* Add one array (a list or tuple of numbers) into ``sums``; -1 with an exception set on a bad element. */
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
            sums->ints[i] += value;
        } else if (PyFloat_Check(item)) {
            if (exact_add(&sums->floats[i], PyFloat_AS_DOUBLE(item)) < 0)
                return -1;
            sums->saw_float[i] = 1;
        } else {
            PyErr_Format(PyExc_TypeError, "histogram %R: element %zd is %.100s, not a number",
                         name, i, Py_TYPE(item)->tp_name);
            return -1;
        }
    }
    return 0;
}

/* Count ``pings`` under ``name`` in ``refused``. */
static int refuse(PyObject *refused, PyObject *name, long long pings) {
    PyObject *before = PyDict_GetItemWithError(refused, name);
    if (before == NULL && PyErr_Occurred())
        return -1;
    long long total = pings + (before ? PyLong_AsLongLong(before) : 0);
    PyObject *count = PyLong_FromLongLong(total);
    if (count == NULL)
        return -1;
    int failed = PyDict_SetItem(refused, name, count);
    Py_DECREF(count);
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

/* One histogram entry of one value: a raw array (one ping) or a (pings, array) pair. */
static int add_entry(SumsTable *table, PyObject *index, PyObject *refused, PyObject *name, PyObject *entry) {
    long long pings = 1;
    PyObject *array = entry;
    if (PyTuple_CheckExact(entry)) {
        if (PyTuple_GET_SIZE(entry) != 2) {
            PyErr_Format(PyExc_TypeError, "histogram %R: a merged entry is (pings, sums)", name);
            return -1;
        }
        pings = PyLong_AsLongLong(PyTuple_GET_ITEM(entry, 0));
        if (pings == -1 && PyErr_Occurred())
            return -1;
        array = PyTuple_GET_ITEM(entry, 1);
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
 *   kind 0: an integer (int64)          kind 1: a float (IEEE double)
 *   kind 2: an exact float sum; the 8 bytes count its partials (doubles, after the elements)
 * Little-endian throughout, so a packed value means the same on every machine.
 */

static const char MAGIC[4] = {'H', 'S', '1', '\0'};

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

/* ---- a validating JSON scanner --------------------------------------------------------- */

#define MAX_DEPTH 512

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

/* At '"': moves past the closing quote; the raw content is [*text, *text + *length), *escaped if it has escapes. */
static int scan_string(Scan *s, const char **text, Py_ssize_t *length, int *escaped) {
    s->p++;
    const char *begin = s->p;
    *escaped = 0;
    while (s->p < s->end) {
        unsigned char c = (unsigned char)*s->p;
        if (c == '"') {
            *text = begin;
            *length = s->p - begin;
            s->p++;
            return 0;
        }
        if (c < 0x20)
            return invalid(s, "control character in a string");
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
    if (s->p >= s->end || !(*s->p >= '0' && *s->p <= '9'))
        return invalid(s, "expected a value");
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

static int skip_container(Scan *s, int depth, char close) {
    if (depth > MAX_DEPTH)
        return invalid(s, "nested too deeply");
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

/* At the '{' of "histograms": pack it into ``out`` (replacing what is there). */
static int pack_histograms(Scan *s, Buffer *out) {
    out->size = 0;
    if (buffer_reserve(out, 8) < 0)
        return -1;
    memcpy(out->data, MAGIC, 4);
    out->size = 8;
    uint32_t count = 0;
    s->p++;
    skip_space(s);
    if (s->p < s->end && *s->p == '}') {
        s->p++;
        put_le(out->data + 4, 0, 4);
        return 0;
    }
    while (1) {
        const char *name;
        Py_ssize_t name_length;
        int escaped;
        if (s->p >= s->end || *s->p != '"')
            return invalid(s, "expected a histogram name");
        if (scan_string(s, &name, &name_length, &escaped) < 0)
            return -1;
        if (escaped || name_length > 65535) {
            PyErr_Format(PyExc_ValueError, "histogram name at character %zd has escapes or is too long",
                         (Py_ssize_t)(name - s->start));
            return -1;
        }
        skip_space(s);
        if (s->p >= s->end || *s->p != ':')
            return invalid(s, "expected ':'");
        s->p++;
        skip_space(s);
        if (s->p >= s->end || *s->p != '[') {
            return invalid(s, "a histogram is an array of numbers");
        }
        if (buffer_reserve(out, 14 + name_length) < 0)
            return -1;
        put_le(out->data + out->size, (uint64_t)name_length, 2);
        memcpy(out->data + out->size + 2, name, name_length);
        put_le(out->data + out->size + 2 + name_length, 1, 8);
        Py_ssize_t count_at = out->size + 10 + name_length;
        out->size = count_at + 4;
        uint32_t elements = 0;
        s->p++;
        skip_space(s);
        if (s->p < s->end && *s->p == ']') {
            s->p++;
        } else {
            while (1) {
                skip_space(s);
                if (s->p >= s->end || !(*s->p == '-' || (*s->p >= '0' && *s->p <= '9'))) {
                    return invalid(s, "a histogram element is not a number");
                }
                int64_t integer = 0;
                double real = 0.0;
                int kind = scan_number(s, &integer, &real);
                if (kind < 0 || buffer_reserve(out, 9) < 0)
                    return -1;
                uint64_t bits;
                if (kind)
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
                    break;
                }
                return invalid(s, "expected ',' or ']'");
            }
        }
        put_le(out->data + count_at, elements, 4);
        count++;
        skip_space(s);
        if (s->p < s->end && *s->p == ',') {
            s->p++;
            skip_space(s);
            continue;
        }
        if (s->p < s->end && *s->p == '}') {
            s->p++;
            put_le(out->data + 4, count, 4);
            return 0;
        }
        return invalid(s, "expected ',' or '}'");
    }
}

static PyObject *histograms_of(PyObject *module, PyObject *text) {
    Py_ssize_t length;
    const char *data;
    if (PyUnicode_Check(text)) {
        data = PyUnicode_AsUTF8AndSize(text, &length);
        if (data == NULL)
            return NULL;
    } else if (PyBytes_Check(text)) {
        data = PyBytes_AS_STRING(text);
        length = PyBytes_GET_SIZE(text);
    } else {
        return PyErr_Format(PyExc_TypeError, "histograms_of takes a ping's JSON text, not %.100s",
                            Py_TYPE(text)->tp_name);
    }
    Scan s = {data, data, data + length};
    Buffer out = {NULL, 0, 0};
    int found = 0;
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
            if (!escaped && key_length == 10 && memcmp(key, "histograms", 10) == 0) {
                if (s.p >= s.end || *s.p != '{') {
                    PyErr_SetString(PyExc_ValueError, "\"histograms\" is not an object");
                    goto fail;
                }
                if (pack_histograms(&s, &out) < 0)
                    goto fail;
                found = 1;
            } else if (skip_value(&s, 1) < 0) {
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
    if (!found) {
        PyErr_SetString(PyExc_ValueError, "the ping has no \"histograms\"");
        goto fail;
    }
    PyObject *packed = PyBytes_FromStringAndSize((const char *)out.data, out.size);
    PyMem_Free(out.data);
    return packed;
fail:
    PyMem_Free(out.data);
    return NULL;
}

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

/* The sums for the histogram named by [name, name + length), the h-th of its set. */
static Sums *packed_sums(SumsTable *table, PyObject *index, Hints *hints, Py_ssize_t h, const unsigned char *name,
                         Py_ssize_t name_length, Py_ssize_t length, PyObject **decoded) {
    *decoded = NULL;
    if (hints->lengths[h] == name_length && memcmp(hints->names[h], name, name_length) == 0)
        return &table->items[hints->positions[h]];
    *decoded = PyUnicode_DecodeUTF8((const char *)name, name_length, "strict");
    if (*decoded == NULL)
        return NULL;
    Sums *sums = find_sums(table, index, *decoded, length);
    if (sums != NULL) {
        hints->names[h] = name;
        hints->lengths[h] = name_length;
        hints->positions[h] = sums - table->items;
    }
    return sums;
}

/* Partial doubles stored after a packed histogram's elements (those of its kind-2 elements). */
static Py_ssize_t packed_partials(const unsigned char *elements, Py_ssize_t length) {
    Py_ssize_t partials = 0;
    for (Py_ssize_t i = 0; i < length; i++)
        if (elements[9 * i] == 2)
            partials += (Py_ssize_t)get_le(elements + 9 * i + 1, 8);
    return partials;
}

/* Add every histogram of a packed set; -1 with an exception set if it is damaged. */
static int add_packed(SumsTable *table, PyObject *index, PyObject *refused, Hints *hints, PyObject *packed) {
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(packed);
    const unsigned char *end = p + PyBytes_GET_SIZE(packed);
    if (end - p < 8 || memcmp(p, MAGIC, 4) != 0) {
        PyErr_SetString(PyExc_ValueError, "not a packed histogram set");
        return -1;
    }
    Py_ssize_t count = (Py_ssize_t)get_le(p + 4, 4);
    if (hints_reserve(hints, count) < 0)
        return -1;
    p += 8;
    for (Py_ssize_t h = 0; h < count; h++) {
        if (end - p < 2 || end - p < 14 + (Py_ssize_t)get_le(p, 2))
            goto damaged;
        Py_ssize_t name_length = (Py_ssize_t)get_le(p, 2);
        const unsigned char *name = p + 2;
        p += 2 + name_length;
        long long pings = (long long)get_le(p, 8);
        Py_ssize_t length = (Py_ssize_t)get_le(p + 8, 4);
        p += 12;
        if ((end - p) / 9 < length)
            goto damaged;
        Py_ssize_t partials = packed_partials(p, length);
        if (partials < 0 || (end - p - 9 * length) / 8 < partials)
            goto damaged;
        const unsigned char *partial = p + 9 * length;
        PyObject *decoded;
        Sums *sums = packed_sums(table, index, hints, h, name, name_length, length, &decoded);
        if (sums == NULL) {
            Py_XDECREF(decoded);
            return -1;
        }
        if (sums->length != length) {
            PyObject *key = decoded ? decoded : PyUnicode_DecodeUTF8((const char *)name, name_length, "strict");
            int failed = key == NULL || refuse(refused, key, pings);
            Py_XDECREF(key);
            if (failed)
                return -1;
        } else {
            Py_XDECREF(decoded);
            int64_t *ints = sums->ints;
            for (Py_ssize_t i = 0; i < length; i++) {
                unsigned char kind = p[9 * i];
                uint64_t bits = get_le(p + 9 * i + 1, 8);
                if (kind == 0) {
                    ints[i] += (int64_t)bits;
                    continue;
                }
                sums->saw_float[i] = 1;
                Py_ssize_t terms = kind == 1 ? 1 : (Py_ssize_t)bits;
                for (Py_ssize_t t = 0; t < terms; t++) {
                    double real;
                    uint64_t term = kind == 1 ? bits : get_le(partial, 8);
                    partial += kind == 1 ? 0 : 8;
                    memcpy(&real, &term, 8);
                    if (exact_add(&sums->floats[i], real) < 0)
                        return -1;
                }
            }
            sums->pings += pings;
        }
        p += 9 * length + 8 * partials;
    }
    return 0;
damaged:
    PyErr_SetString(PyExc_ValueError, "a packed histogram set is damaged");
    return -1;
}

static PyObject *sums_to_python(const Sums *sums) {
    PyObject *list = PyList_New(sums->length);
    if (list == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < sums->length; i++) {
        PyObject *value;
        if (sums->saw_float[i]) {
            Exact total;
            if (exact_with_integer(&sums->floats[i], sums->ints[i], &total) < 0) {
                PyMem_Free(total.items);
                Py_DECREF(list);
                return NULL;
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
    return Py_BuildValue("(LN)", sums->pings, list);
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
            result = add_packed(&merge->table, merge->index, merge->refused, &merge->hints, histograms);
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
        PyObject *value = sums_to_python(&merge.table.items[PyLong_AsSsize_t(number)]);
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
    while (PyDict_Next(merge.index, &position, &name, &number)) {
        const Sums *sums = &merge.table.items[PyLong_AsSsize_t(number)];
        Py_ssize_t name_length;
        const char *utf8 = PyUnicode_AsUTF8AndSize(name, &name_length);
        if (utf8 == NULL || buffer_reserve(&out, 14 + name_length + 9 * sums->length) < 0)
            goto fail;
        if (name_length > 65535) {
            PyErr_Format(PyExc_ValueError, "histogram name %R is too long to pack", name);
            goto fail;
        }
        unsigned char *p = out.data + out.size;
        put_le(p, (uint64_t)name_length, 2);
        memcpy(p + 2, utf8, name_length);
        put_le(p + 2 + name_length, (uint64_t)sums->pings, 8);
        put_le(p + 10 + name_length, (uint64_t)sums->length, 4);
        p += 14 + name_length;
        for (Py_ssize_t i = 0; i < sums->length; i++, p += 9) {
            p[0] = sums->saw_float[i] ? 2 : 0;
            put_le(p + 1, sums->saw_float[i] ? 0 : (uint64_t)sums->ints[i], 8);
        }
        out.size = p - out.data;
        /* Float columns: their exact sum (the integers folded in), as partials after the elements. */
        unsigned char *elements = p - 9 * sums->length;
        for (Py_ssize_t i = 0; i < sums->length; i++) {
            if (!sums->saw_float[i])
                continue;
            Exact total;
            Py_ssize_t offset = elements - out.data;
            if (exact_with_integer(&sums->floats[i], sums->ints[i], &total) < 0 ||
                buffer_reserve(&out, 8 * total.count) < 0) {
                PyMem_Free(total.items);
                goto fail;
            }
            elements = out.data + offset;
            put_le(elements + 9 * i + 1, (uint64_t)total.count, 8);
            for (int t = 0; t < total.count; t++) {
                uint64_t term;
                memcpy(&term, &total.items[t], 8);
                put_le(out.data + out.size + 8 * t, term, 8);
            }
            out.size += 8 * total.count;
            PyMem_Free(total.items);
        }
        p = out.data + out.size;
    }
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
