/* config.json (and other small JSON files) read with cJSON. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "config.h"
#include "error.h"

#define CONFIG_MAX_BYTES (16u << 20)
#define CONFIG_MAX_NAME  4096

struct frt_config {
    cJSON *root;
    char *name; /* file name (or the caller's label) for messages */
};

static bool is_json_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
}

/* 1-based line and column of byte pos, so a parse error points at the place in an editor. */
static void line_col(const char *text, size_t pos, int *line, int *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < pos; i++) {
        if (text[i] == '\n') {
            ++*line;
            *col = 1;
        } else {
            ++*col;
        }
    }
}

/* Parse text[0..len) as one JSON value followed only by blanks. */
static frt_status parse_json(const char *text, size_t len, const char *name, cJSON **out)
{
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root) {
        size_t pos = end && end >= text && end <= text + len ? (size_t)(end - text) : 0;
        int line, col;
        line_col(text, pos, &line, &col);
        return frt_error_at(FRT_ERR_FORMAT, name, NULL, (int64_t)pos,
                            "invalid JSON at line %d column %d", line, col);
    }
    /* cJSON stops after the first value; anything but blanks after it is a broken file. */
    size_t pos = (size_t)(end - text);
    while (pos < len && is_json_space(text[pos])) pos++;
    if (pos < len && text[pos] != '\0') {
        cJSON_Delete(root);
        int line, col;
        line_col(text, pos, &line, &col);
        return frt_error_at(FRT_ERR_FORMAT, name, NULL, (int64_t)pos,
                            "invalid JSON: trailing characters after the value at line %d "
                            "column %d",
                            line, col);
    }
    *out = root;
    return FRT_OK;
}

/* Read a whole regular file of at most cap bytes, NUL-terminated; free with frt_free. */
static frt_status read_file(const char *path, size_t cap, char **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return frt_error_at(e == ENOENT ? FRT_ERR_NOT_FOUND : FRT_ERR_IO, path, NULL, -1,
                            "cannot open JSON file: %s", strerror(e));
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return frt_error_at(FRT_ERR_IO, path, NULL, -1, "not a regular file");
    }
    if ((uint64_t)sb.st_size > cap) {
        close(fd);
        return frt_error_at(FRT_ERR_LIMIT, path, NULL, -1,
                            "JSON file of %lld bytes is above the %zu-byte cap",
                            (long long)sb.st_size, cap);
    }
    size_t size = (size_t)sb.st_size;
    char *buf = frt_alloc(size + 1);
    if (!buf) {
        close(fd);
        return FRT_ERR_NOMEM;
    }
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    if (got != size) {
        frt_free(buf);
        return frt_error_at(FRT_ERR_IO, path, NULL, (int64_t)got, "short read: %zu of %zu bytes",
                            got, size);
    }
    buf[size] = '\0';
    *out = buf;
    *len = size;
    return FRT_OK;
}

frt_status frt_json_load(const char *path, size_t cap, cJSON **out)
{
    if (!path || !out) return frt_error(FRT_ERR_INVALID_ARG, "frt_json_load: NULL argument");
    char *buf;
    size_t len;
    FRT_TRY(read_file(path, cap, &buf, &len));
    frt_status s = parse_json(buf, len, path, out);
    frt_free(buf);
    return s;
}

frt_status frt_config_parse(const char *text, size_t len, const char *name, frt_config **out)
{
    if (!text || !out) return frt_error(FRT_ERR_INVALID_ARG, "frt_config_parse: NULL argument");
    if (!name) name = "<string>";
    if (len > CONFIG_MAX_BYTES)
        return frt_error_at(FRT_ERR_LIMIT, name, NULL, -1,
                            "JSON text of %zu bytes is above the %u-byte cap", len,
                            CONFIG_MAX_BYTES);
    cJSON *root;
    FRT_TRY(parse_json(text, len, name, &root));
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return frt_error_at(FRT_ERR_FORMAT, name, NULL, 0, "JSON root is not an object");
    }
    size_t nlen = strnlen(name, CONFIG_MAX_NAME);
    frt_config *c = frt_alloc(sizeof *c);
    char *copy = frt_alloc(nlen + 1);
    if (!c || !copy) {
        frt_free(c);
        frt_free(copy);
        cJSON_Delete(root);
        return FRT_ERR_NOMEM;
    }
    memcpy(copy, name, nlen);
    copy[nlen] = '\0';
    c->root = root;
    c->name = copy;
    *out = c;
    return FRT_OK;
}

frt_status frt_config_load(const char *path, frt_config **out)
{
    if (!path || !out) return frt_error(FRT_ERR_INVALID_ARG, "frt_config_load: NULL argument");
    char *buf;
    size_t len;
    FRT_TRY(read_file(path, CONFIG_MAX_BYTES, &buf, &len));
    frt_status s = frt_config_parse(buf, len, path, out);
    frt_free(buf);
    return s;
}

void frt_config_free(frt_config *c)
{
    if (!c) return;
    cJSON_Delete(c->root);
    frt_free(c->name);
    frt_free(c);
}

static const char *type_name(const cJSON *v)
{
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsObject(v)) return "an object";
    if (cJSON_IsNull(v)) return "null";
    return "an invalid value";
}

/* The member of obj named exactly name[0..len); a name present twice is an error, because
 * cJSON would silently take the first while Python's json takes the last. */
static frt_status member(const frt_config *c, const char *key, const cJSON *obj, const char *name,
                         size_t len, const cJSON **found)
{
    const cJSON *hit = NULL;
    for (const cJSON *it = obj->child; it; it = it->next) {
        if (!it->string || strlen(it->string) != len || memcmp(it->string, name, len) != 0)
            continue;
        if (hit)
            return frt_error_at(FRT_ERR_FORMAT, c->name, key, -1,
                                "config key '%.*s' appears more than once", (int)len, name);
        hit = it;
    }
    *found = hit;
    return FRT_OK;
}

/* Resolve a dotted key. *found is NULL when the key (or a parent) is absent or null: JSON
 * null means "not set" in Hugging Face configs (e.g. "rope_scaling": null). A key that is
 * literally present with dots in its name wins over descending. */
static frt_status lookup(const frt_config *c, const char *key, const cJSON **found)
{
    if (!c || !key) return frt_error(FRT_ERR_INVALID_ARG, "config lookup: NULL argument");
    const cJSON *obj = c->root;
    const char *rest = key;
    *found = NULL;
    for (;;) {
        const cJSON *v = NULL;
        FRT_TRY(member(c, key, obj, rest, strlen(rest), &v));
        if (v) {
            *found = cJSON_IsNull(v) ? NULL : v;
            return FRT_OK;
        }
        const char *dot = strchr(rest, '.');
        if (!dot) return FRT_OK;
        FRT_TRY(member(c, key, obj, rest, (size_t)(dot - rest), &v));
        if (!v || cJSON_IsNull(v)) return FRT_OK;
        if (!cJSON_IsObject(v))
            return frt_error_at(FRT_ERR_FORMAT, c->name, key, -1,
                                "config key '%.*s' is %s, expected an object (looking up '%s')",
                                (int)(dot - key), key, type_name(v), key);
        obj = v;
        rest = dot + 1;
    }
}

bool frt_config_has(const frt_config *c, const char *key)
{
    const cJSON *v = NULL;
    if (!c || !key) return false;
    return lookup(c, key, &v) == FRT_OK && v != NULL;
}

static frt_status wrong_type(const frt_config *c, const char *key, const cJSON *v,
                             const char *expected)
{
    return frt_error_at(FRT_ERR_FORMAT, c->name, key, -1, "config key '%s' is %s, expected %s", key,
                        type_name(v), expected);
}

/* A JSON number that is an integer exactly representable in int64; entry >= 0 names the
 * array element being read. */
static frt_status integral(const frt_config *c, const char *key, int entry, const cJSON *v,
                           int64_t *out)
{
    char where[32] = "";
    if (entry >= 0) snprintf(where, sizeof where, " entry %d", entry);
    if (!cJSON_IsNumber(v))
        return frt_error_at(FRT_ERR_FORMAT, c->name, key, -1,
                            "config key '%s'%s is %s, expected an integer", key, where,
                            type_name(v));
    double d = v->valuedouble;
    if (!isfinite(d) || d != floor(d))
        return frt_error_at(FRT_ERR_FORMAT, c->name, key, -1,
                            "config key '%s'%s is %.17g, not an integer", key, where, d);
    /* [-2^63, 2^63): the doubles that convert to int64 without overflow */
    if (d < -9223372036854775808.0 || d >= 9223372036854775808.0)
        return frt_error_at(FRT_ERR_FORMAT, c->name, key, -1,
                            "config key '%s'%s is %.17g, outside the 64-bit integer range", key,
                            where, d);
    *out = (int64_t)d;
    return FRT_OK;
}

frt_status frt_config_int(const frt_config *c, const char *key, int64_t def, int64_t lo, int64_t hi,
                          int64_t *out)
{
    if (!out) return frt_error(FRT_ERR_INVALID_ARG, "frt_config_int: NULL argument");
    const cJSON *v;
    FRT_TRY(lookup(c, key, &v));
    if (!v) {
        *out = def;
        return FRT_OK;
    }
    int64_t x;
    FRT_TRY(integral(c, key, -1, v, &x));
    if (x < lo || x > hi)
        return frt_error_at(FRT_ERR_FORMAT, c->name, key, -1,
                            "config key '%s' is %lld, out of range [%lld, %lld]", key, (long long)x,
                            (long long)lo, (long long)hi);
    *out = x;
    return FRT_OK;
}

frt_status frt_config_float(const frt_config *c, const char *key, double def, double *out)
{
    if (!out) return frt_error(FRT_ERR_INVALID_ARG, "frt_config_float: NULL argument");
    const cJSON *v;
    FRT_TRY(lookup(c, key, &v));
    if (!v) {
        *out = def;
        return FRT_OK;
    }
    if (!cJSON_IsNumber(v)) return wrong_type(c, key, v, "a number");
    *out = v->valuedouble;
    return FRT_OK;
}

frt_status frt_config_bool(const frt_config *c, const char *key, bool def, bool *out)
{
    if (!out) return frt_error(FRT_ERR_INVALID_ARG, "frt_config_bool: NULL argument");
    const cJSON *v;
    FRT_TRY(lookup(c, key, &v));
    if (!v) {
        *out = def;
        return FRT_OK;
    }
    if (!cJSON_IsBool(v)) return wrong_type(c, key, v, "a boolean");
    *out = cJSON_IsTrue(v);
    return FRT_OK;
}

frt_status frt_config_string(const frt_config *c, const char *key, const char *def,
                             const char **out)
{
    if (!out) return frt_error(FRT_ERR_INVALID_ARG, "frt_config_string: NULL argument");
    const cJSON *v;
    FRT_TRY(lookup(c, key, &v));
    if (!v) {
        *out = def;
        return FRT_OK;
    }
    if (!cJSON_IsString(v)) return wrong_type(c, key, v, "a string");
    *out = v->valuestring;
    return FRT_OK;
}

frt_status frt_config_int_array(const frt_config *c, const char *key, int64_t *vals, int cap,
                                int *n)
{
    if (!n || cap < 0 || (cap > 0 && !vals))
        return frt_error(FRT_ERR_INVALID_ARG, "frt_config_int_array: bad argument");
    const cJSON *v;
    FRT_TRY(lookup(c, key, &v));
    if (!v) {
        *n = 0;
        return FRT_OK;
    }
    if (!cJSON_IsArray(v)) return wrong_type(c, key, v, "an array of integers");
    int count = cJSON_GetArraySize(v);
    if (count > cap)
        return frt_error_at(FRT_ERR_LIMIT, c->name, key, -1,
                            "config key '%s' has %d entries, at most %d expected", key, count, cap);
    /* Validate every entry before writing any, so vals is untouched on failure. */
    int64_t x;
    int i = 0;
    for (const cJSON *it = v->child; it; it = it->next, i++) FRT_TRY(integral(c, key, i, it, &x));
    i = 0;
    for (const cJSON *it = v->child; it; it = it->next, i++) integral(c, key, i, it, &vals[i]);
    *n = count;
    return FRT_OK;
}
