/* safetensors checkpoints: read (or mmap), validate every header, then hand out views. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "config.h"
#include "error.h"
#include "log.h"
#include "safetensors.h"

#define ST_MAX_HEADER (100ull << 20)
#define ST_MAX_INDEX  (16u << 20)
/* Tensors in one checkpoint, all shards together (the largest published have a few
 * thousand). */
#define ST_MAX_TENSORS (1 << 20)
/* Largest integer a JSON number (a double in cJSON) holds exactly. */
#define ST_MAX_JSON_INT 9007199254740992.0

/* Every dtype the safetensors format defines. Those without a flashrt dtype are accepted in a
 * file (their byte spans are validated like any other) and refused only when asked for, so a
 * checkpoint carrying, say, an I64 position_ids buffer still loads. */
static const struct {
    const char *name;
    int bits;
    int frt; /* frt_dtype, or -1 */
} st_dtypes[] = {
    {"F32", 32, FRT_F32}, {"F16", 16, FRT_F16}, {"BF16", 16, FRT_BF16}, {"I32", 32, FRT_I32},
    {"I8", 8, FRT_I8},    {"F64", 64, -1},      {"I64", 64, -1},        {"U64", 64, -1},
    {"U32", 32, -1},      {"I16", 16, -1},      {"U16", 16, -1},        {"U8", 8, -1},
    {"BOOL", 8, -1},      {"F8_E4M3", 8, -1},   {"F8_E5M2", 8, -1},     {"F8_E8M0", 8, -1},
    {"F6_E2M3", 6, -1},   {"F6_E3M2", 6, -1},   {"F4", 4, -1},          {"C64", 64, -1},
};
#define ST_NDTYPES ((int)(sizeof st_dtypes / sizeof st_dtypes[0]))

typedef struct {
    const char *name; /* in its shard's names blob */
    int shard;
    int kind; /* index into st_dtypes */
    int ndim; /* as in the file: 0 for a scalar */
    int64_t shape[FRT_MAX_DIMS];
    uint64_t begin, end; /* relative to the shard's data section */
    void *data;
    bool copied; /* data is an aligned copy we own */
} st_entry;

typedef struct {
    char *path;
    uint8_t *map; /* the whole file: read into memory we own, or mapped */
    bool mapped;
    size_t size;
    uint64_t data_start; /* 8 + header length */
    char *names;
    st_entry *entries;
    int64_t count;
} st_shard;

struct frt_st {
    char *path; /* what was opened, for messages */
    st_shard *shards;
    int nshards;
    st_entry *entries; /* all shards, file order */
    int64_t count;
    st_entry **by_name;
};

/* ---- small helpers -------------------------------------------------------- */

static char *dup_str(const char *s)
{
    size_t n = strlen(s);
    char *p = frt_alloc(n + 1);
    if (p) memcpy(p, s, n + 1);
    return p;
}

static char *join_path(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = frt_alloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

static bool has_suffix(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

static bool is_file(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* A JSON number that is a non-negative integer held exactly. */
static bool json_uint(const cJSON *v, uint64_t *out)
{
    if (!cJSON_IsNumber(v)) return false;
    double d = v->valuedouble;
    if (!(d >= 0 && d <= ST_MAX_JSON_INT) || d != floor(d)) return false;
    *out = (uint64_t)d;
    return true;
}

static void format_shape(char *buf, size_t cap, int ndim, const int64_t *shape)
{
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
}

static int cmp_by_name(const void *a, const void *b)
{
    return strcmp((*(st_entry *const *)a)->name, (*(st_entry *const *)b)->name);
}

static int cmp_by_begin(const void *a, const void *b)
{
    const st_entry *x = *(st_entry *const *)a, *y = *(st_entry *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* ---- one file ------------------------------------------------------------- */

static frt_status parse_entry(const st_shard *sh, const cJSON *item, st_entry *e)
{
    const char *file = sh->path, *name = e->name;
    uint64_t data_len = sh->size - sh->data_start;
    if (!cJSON_IsObject(item))
        return frt_error_at(FRT_ERR_FORMAT, file, name, -1, "header entry is not an object");

    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    if (!dt) return frt_error_at(FRT_ERR_FORMAT, file, name, -1, "header entry has no dtype");
    if (!cJSON_IsString(dt))
        return frt_error_at(FRT_ERR_FORMAT, file, name, -1, "dtype is not a string");
    e->kind = -1;
    for (int k = 0; k < ST_NDTYPES; k++)
        if (!strcmp(dt->valuestring, st_dtypes[k].name)) e->kind = k;
    if (e->kind < 0)
        return frt_error_at(FRT_ERR_FORMAT, file, name, -1, "unknown dtype '%.32s'",
                            dt->valuestring);

    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(item, "shape");
    if (!shape) return frt_error_at(FRT_ERR_FORMAT, file, name, -1, "header entry has no shape");
    if (!cJSON_IsArray(shape))
        return frt_error_at(FRT_ERR_FORMAT, file, name, -1, "shape is not an array");
    /* More dims than a frt_tensor holds are refused by frt_st_get, not here: the rest of the
     * checkpoint stays usable. */
    int ndim = cJSON_GetArraySize(shape);
    e->ndim = ndim;
    size_t numel = 1, nonzero = 1;
    bool overflow = false;
    int i = 0;
    for (const cJSON *it = shape->child; it; it = it->next, i++) {
        uint64_t d;
        if (!json_uint(it, &d))
            return frt_error_at(FRT_ERR_FORMAT, file, name, -1,
                                "shape entry %d is not a non-negative integer below 2^53", i);
        if (i < FRT_MAX_DIMS) e->shape[i] = (int64_t)d;
        /* Checked in file order like the reference reader: an overflowing prefix is refused
         * even if a later dim is 0. The strides of a view multiply the dims after each one,
         * zeros aside, so an empty [0, 2^52, 2^20] must be refused too. */
        if (!frt_mul_size(numel, d, &numel)) overflow = true;
        if (d && (!frt_mul_size(nonzero, d, &nonzero) || nonzero > INT64_MAX)) overflow = true;
    }

    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    if (!offs)
        return frt_error_at(FRT_ERR_FORMAT, file, name, -1, "header entry has no data_offsets");
    uint64_t begin, end;
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 || !json_uint(offs->child, &begin) ||
        !json_uint(offs->child->next, &end))
        return frt_error_at(FRT_ERR_FORMAT, file, name, -1,
                            "data_offsets is not a pair of non-negative integers below 2^53");
    e->begin = begin;
    e->end = end;
    if (begin > end)
        return frt_error_at(FRT_ERR_FORMAT, file, name, (int64_t)(sh->data_start + begin),
                            "data_offsets begin %llu > end %llu", (unsigned long long)begin,
                            (unsigned long long)end);
    if (end > data_len)
        return frt_error_at(FRT_ERR_FORMAT, file, name, (int64_t)(sh->data_start + begin),
                            "data_offsets end %llu is out of bounds: the data section has "
                            "%llu bytes (file truncated?)",
                            (unsigned long long)end, (unsigned long long)data_len);

    char sbuf[128];
    format_shape(sbuf, sizeof sbuf, ndim < FRT_MAX_DIMS ? ndim : FRT_MAX_DIMS, e->shape);
    size_t nbits;
    if (overflow || !frt_mul_size(numel, (size_t)st_dtypes[e->kind].bits, &nbits))
        return frt_error_at(FRT_ERR_FORMAT, file, name, (int64_t)(sh->data_start + begin),
                            "shape %s of dtype %s overflows the byte count", sbuf,
                            st_dtypes[e->kind].name);
    if (nbits % 8 != 0 || nbits / 8 != end - begin)
        return frt_error_at(FRT_ERR_FORMAT, file, name, (int64_t)(sh->data_start + begin),
                            "size mismatch: shape %s of dtype %s needs %zu%s bytes but "
                            "data_offsets span %llu",
                            sbuf, st_dtypes[e->kind].name, nbits / 8, nbits % 8 ? ".5" : "",
                            (unsigned long long)(end - begin));
    e->data = sh->map + sh->data_start + begin;
    return FRT_OK;
}

/* __metadata__ is a flat map of strings; we do not use it but a malformed one marks a broken
 * writer. */
static frt_status check_metadata(const st_shard *sh, const cJSON *meta)
{
    if (cJSON_IsNull(meta)) return FRT_OK; /* an absent Option, as serde may write it */
    if (!cJSON_IsObject(meta))
        return frt_error_at(FRT_ERR_FORMAT, sh->path, "__metadata__", -1,
                            "__metadata__ is not an object");
    for (const cJSON *it = meta->child; it; it = it->next)
        if (!cJSON_IsString(it))
            return frt_error_at(FRT_ERR_FORMAT, sh->path, "__metadata__", -1,
                                "__metadata__ value '%.64s' is not a string", it->string);
    return FRT_OK;
}

/* Weights are read into memory we own by default: a mapping of a file that another process
 * truncates or rewrites afterwards raises SIGBUS on the next touch, and a library must neither
 * die of that nor install a signal handler behind its user's back. FRT_MMAP=1 maps instead
 * (pages load lazily and the page cache is shared between processes), for checkpoints too big
 * to copy, accepting that risk (docs/RELIABILITY.md). */
static bool use_mmap(void)
{
    const char *e = getenv("FRT_MMAP");
    return e && !strcmp(e, "1");
}

/* Map the file when asked to; otherwise shard_parse reads it, piece by piece, so that a file
 * that is not safetensors is refused after its first bytes. */
static frt_status map_file(st_shard *sh, int fd, size_t size)
{
    sh->size = size;
    if (!use_mmap()) return FRT_OK;
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED)
        return frt_error_at(FRT_ERR_IO, sh->path, NULL, -1, "mmap failed: %s", strerror(errno));
    sh->map = map;
    sh->mapped = true;
    return FRT_OK;
}

/* Bytes [from, to) of the file to dst + from (nothing to do for a mapping). */
static frt_status read_range(const st_shard *sh, int fd, uint8_t *dst, size_t from, size_t to)
{
    while (!sh->mapped && from < to) {
        ssize_t n = pread(fd, dst + from, to - from, (off_t)from);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0)
            return frt_error_at(FRT_ERR_IO, sh->path, NULL, (int64_t)from, "read failed: %s",
                                strerror(errno));
        if (n == 0)
            return frt_error_at(FRT_ERR_IO, sh->path, NULL, (int64_t)from,
                                "file shrank to %zu bytes while being read (%zu expected)", from,
                                sh->size);
        from += (size_t)n;
    }
    return FRT_OK;
}

static frt_status shard_parse(st_shard *sh, int fd);

/* Load path and validate its header into sh (cleaned up by shard_free on any outcome). */
static frt_status shard_open(st_shard *sh, const char *path, bool missing_is_not_found)
{
    sh->path = dup_str(path);
    if (!sh->path) return FRT_ERR_NOMEM;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return frt_error_at(e == ENOENT ? FRT_ERR_NOT_FOUND : FRT_ERR_IO, path, NULL, -1,
                            missing_is_not_found && e == ENOENT
                                ? "shard named by the index is missing: %s"
                                : "cannot open safetensors file: %s",
                            strerror(e));
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return frt_error_at(FRT_ERR_IO, path, NULL, -1, "not a regular file");
    }
    if (sb.st_size < 8) {
        close(fd);
        return frt_error_at(FRT_ERR_FORMAT, path, NULL, 0,
                            "file is truncated: %lld bytes, shorter than the 8-byte header "
                            "length",
                            (long long)sb.st_size);
    }
    frt_status s = map_file(sh, fd, (size_t)sb.st_size);
    if (s == FRT_OK) s = shard_parse(sh, fd);
    close(fd);
    return s;
}

/* Validate the header of the file behind fd, then read its data. */
static frt_status shard_parse(st_shard *sh, int fd)
{
    const char *path = sh->path;
    uint8_t head[8];
    FRT_TRY(read_range(sh, fd, head, 0, 8));
    if (sh->mapped) memcpy(head, sh->map, 8);

    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | head[i];
    if (hlen == 0) return frt_error_at(FRT_ERR_FORMAT, path, NULL, 0, "header length is 0");
    if (hlen > ST_MAX_HEADER)
        return frt_error_at(FRT_ERR_FORMAT, path, NULL, 0,
                            "header length %llu is above the %llu-byte cap (not a safetensors "
                            "file?)",
                            (unsigned long long)hlen, ST_MAX_HEADER);
    if (hlen > sh->size - 8)
        return frt_error_at(FRT_ERR_FORMAT, path, NULL, 0,
                            "header length %llu runs past the end of the file (%zu bytes)",
                            (unsigned long long)hlen, sh->size);
    sh->data_start = 8 + hlen;
    if (!sh->mapped) {
        if (!(sh->map = frt_alloc(sh->size))) return FRT_ERR_NOMEM;
        memcpy(sh->map, head, 8);
        FRT_TRY(read_range(sh, fd, sh->map, 8, sh->data_start));
    }

    const char *text = (const char *)sh->map + 8, *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, (size_t)hlen, &end, 0);
    if (!root) {
        int64_t at = end && end >= text && end <= text + hlen ? end - text : 0;
        return frt_error_at(FRT_ERR_FORMAT, path, NULL, 8 + at,
                            "header is not valid JSON (error at header byte %lld)", (long long)at);
    }
    /* Writers pad the header with spaces so that the data starts aligned. */
    for (const char *p = end; p < text + hlen; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            cJSON_Delete(root);
            return frt_error_at(FRT_ERR_FORMAT, path, NULL, 8 + (p - text),
                                "header has trailing bytes after the JSON object");
        }
    frt_status s = FRT_OK;
    if (!cJSON_IsObject(root)) {
        s = frt_error_at(FRT_ERR_FORMAT, path, NULL, 8, "header is not a JSON object");
        goto done;
    }

    size_t name_bytes = 0;
    int nmeta = 0;
    for (const cJSON *it = root->child; it; it = it->next) {
        if (!strcmp(it->string, "__metadata__")) {
            if (++nmeta > 1) {
                s = frt_error_at(FRT_ERR_FORMAT, path, "__metadata__", -1,
                                 "duplicate __metadata__");
                goto done;
            }
            if ((s = check_metadata(sh, it)) != FRT_OK) goto done;
            continue;
        }
        if (++sh->count > ST_MAX_TENSORS) {
            s = frt_error_at(FRT_ERR_LIMIT, path, NULL, 8, "more than %d tensors in the header",
                             ST_MAX_TENSORS);
            goto done;
        }
        name_bytes += strlen(it->string) + 1;
    }
    sh->names = frt_alloc(name_bytes);
    sh->entries = frt_calloc(sh->count ? (size_t)sh->count : 1, sizeof *sh->entries);
    if (!sh->names || !sh->entries) {
        s = FRT_ERR_NOMEM;
        goto done;
    }
    char *np = sh->names;
    st_entry *e = sh->entries;
    for (const cJSON *it = root->child; it; it = it->next) {
        if (!strcmp(it->string, "__metadata__")) continue;
        size_t n = strlen(it->string) + 1;
        memcpy(np, it->string, n);
        e->name = np;
        np += n;
        if ((s = parse_entry(sh, it, e)) != FRT_OK) goto done;
        e++;
    }
done:
    cJSON_Delete(root);
    if (s == FRT_OK) s = read_range(sh, fd, sh->map, (size_t)sh->data_start, sh->size);
    return s;
}

/* No two non-empty tensors of one file may share a byte. Gaps are allowed. */
static frt_status check_overlap(const st_shard *sh)
{
    if (sh->count < 2) return FRT_OK;
    st_entry **order = frt_alloc((size_t)sh->count * sizeof *order);
    if (!order) return FRT_ERR_NOMEM;
    int64_t n = 0;
    for (int64_t i = 0; i < sh->count; i++)
        if (sh->entries[i].end > sh->entries[i].begin) order[n++] = &sh->entries[i];
    qsort(order, (size_t)n, sizeof *order, cmp_by_begin);
    frt_status s = FRT_OK;
    for (int64_t i = 1; i < n; i++) {
        const st_entry *a = order[i - 1], *b = order[i];
        if (b->begin < a->end) {
            s = frt_error_at(FRT_ERR_FORMAT, sh->path, b->name,
                             (int64_t)(sh->data_start + b->begin),
                             "data_offsets [%llu, %llu) overlap tensor '%s' at [%llu, %llu)",
                             (unsigned long long)b->begin, (unsigned long long)b->end, a->name,
                             (unsigned long long)a->begin, (unsigned long long)a->end);
            break;
        }
    }
    frt_free(order);
    return s;
}

static void shard_free(st_shard *sh)
{
    if (sh->mapped)
        munmap(sh->map, sh->size);
    else
        frt_free(sh->map);
    frt_free(sh->names);
    frt_free(sh->entries);
    frt_free(sh->path);
}

/* ---- the checkpoint ------------------------------------------------------- */

void frt_st_close(frt_st *st)
{
    if (!st) return;
    for (int64_t i = 0; i < st->count; i++)
        if (st->entries[i].copied) frt_free(st->entries[i].data);
    for (int i = 0; i < st->nshards; i++) shard_free(&st->shards[i]);
    frt_free(st->shards);
    frt_free(st->entries);
    frt_free(st->by_name);
    frt_free(st->path);
    frt_free(st);
}

static const st_entry *find(const frt_st *st, const char *name)
{
    st_entry key = {.name = name}, *pk = &key;
    st_entry **hit = bsearch(&pk, st->by_name, (size_t)st->count, sizeof *st->by_name, cmp_by_name);
    return hit ? *hit : NULL;
}

/* Join the shards into one table, sorted by name for lookup, and reject duplicates. */
static frt_status build_table(frt_st *st)
{
    int64_t total = 0;
    for (int i = 0; i < st->nshards; i++) {
        FRT_TRY(check_overlap(&st->shards[i]));
        total += st->shards[i].count;
    }
    if (total > ST_MAX_TENSORS)
        return frt_error_at(FRT_ERR_LIMIT, st->path, NULL, -1,
                            "more than %d tensors in the checkpoint's shards", ST_MAX_TENSORS);
    size_t cap = total ? (size_t)total : 1;
    st->entries = frt_calloc(cap, sizeof *st->entries);
    st->by_name = frt_alloc(cap * sizeof *st->by_name);
    if (!st->entries || !st->by_name) return FRT_ERR_NOMEM;
    for (int i = 0; i < st->nshards; i++) {
        const st_shard *sh = &st->shards[i];
        for (int64_t j = 0; j < sh->count; j++) {
            st->entries[st->count] = sh->entries[j];
            st->entries[st->count].shard = i;
            st->by_name[st->count] = &st->entries[st->count];
            st->count++;
        }
    }
    qsort(st->by_name, (size_t)st->count, sizeof *st->by_name, cmp_by_name);
    for (int64_t i = 1; i < st->count; i++) {
        const st_entry *a = st->by_name[i - 1], *b = st->by_name[i];
        if (strcmp(a->name, b->name) != 0) continue;
        const char *fa = st->shards[a->shard].path, *fb = st->shards[b->shard].path;
        if (a->shard == b->shard)
            return frt_error_at(FRT_ERR_FORMAT, fa, a->name, -1, "duplicate tensor name '%s'",
                                a->name);
        return frt_error_at(FRT_ERR_FORMAT, fb, b->name, -1,
                            "duplicate tensor name '%s': also in shard %s", b->name, fa);
    }
    return FRT_OK;
}

/* Our kernels read f32/f16/bf16/i32 through typed pointers, which must be aligned to the
 * element size. safetensors aligns only the data section start (writers pad the header to 8
 * bytes), not each tensor, so a misaligned tensor is copied once here rather than refused: a
 * published checkpoint must load. */
static frt_status align_tensors(frt_st *st)
{
    int64_t ncopied = 0;
    size_t copied_bytes = 0;
    for (int64_t i = 0; i < st->count; i++) {
        st_entry *e = &st->entries[i];
        int frt = st_dtypes[e->kind].frt;
        if (frt < 0) continue;
        size_t esize = frt_dtype_size((frt_dtype)frt), bytes = e->end - e->begin;
        if ((uintptr_t)e->data % esize == 0) continue;
        void *copy = frt_alloc(bytes);
        if (!copy) return FRT_ERR_NOMEM;
        memcpy(copy, e->data, bytes);
        e->data = copy;
        e->copied = true;
        ncopied++;
        copied_bytes += bytes;
    }
    if (ncopied)
        FRT_LOGW("safetensors: %lld tensors of %s are not aligned to their element size; "
                 "copied %.1f MiB",
                 (long long)ncopied, st->path, (double)copied_bytes / (1 << 20));
    return FRT_OK;
}

/* A shard name must stay inside the model directory. */
static bool shard_name_ok(const char *s)
{
    return *s && !strchr(s, '/') && !strstr(s, "..");
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

typedef struct {
    const char *tensor;
    const char *shard;
} index_item;

static int cmp_item(const void *a, const void *b)
{
    return strcmp(((const index_item *)a)->tensor, ((const index_item *)b)->tensor);
}

static frt_status open_index(frt_st *st, const char *path)
{
    cJSON *root;
    FRT_TRY(frt_json_load(path, ST_MAX_INDEX, &root));
    frt_status s = FRT_OK;
    index_item *items = NULL;
    const char **names = NULL;
    char *dir = NULL;
    const cJSON *map =
        cJSON_IsObject(root) ? cJSON_GetObjectItemCaseSensitive(root, "weight_map") : NULL;
    if (!cJSON_IsObject(map)) {
        s = frt_error_at(FRT_ERR_FORMAT, path, NULL, -1,
                         "safetensors index has no \"weight_map\" object");
        goto done;
    }
    int n = cJSON_GetArraySize(map);
    items = frt_alloc((n ? (size_t)n : 1) * sizeof *items);
    names = frt_alloc((n ? (size_t)n : 1) * sizeof *names);
    if (!items || !names) {
        s = FRT_ERR_NOMEM;
        goto done;
    }
    int i = 0;
    for (const cJSON *it = map->child; it; it = it->next, i++) {
        if (!cJSON_IsString(it)) {
            s = frt_error_at(FRT_ERR_FORMAT, path, it->string, -1,
                             "weight_map value is not a shard file name");
            goto done;
        }
        if (!shard_name_ok(it->valuestring)) {
            s = frt_error_at(FRT_ERR_FORMAT, path, it->string, -1,
                             "shard name '%.200s' must be a plain file name in the model "
                             "directory (no '/' or '..')",
                             it->valuestring);
            goto done;
        }
        items[i] = (index_item){it->string, it->valuestring};
        names[i] = it->valuestring;
    }
    qsort(items, (size_t)n, sizeof *items, cmp_item);
    for (i = 1; i < n; i++)
        if (!strcmp(items[i - 1].tensor, items[i].tensor)) {
            s = frt_error_at(FRT_ERR_FORMAT, path, items[i].tensor, -1,
                             "duplicate tensor name '%s' in the weight_map", items[i].tensor);
            goto done;
        }

    /* Distinct shard names, in sorted order: model-00001-of-... comes first. */
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    int nshards = 0;
    for (i = 0; i < n; i++)
        if (!nshards || strcmp(names[nshards - 1], names[i])) names[nshards++] = names[i];

    const char *slash = strrchr(path, '/');
    size_t dlen = slash ? (size_t)(slash - path) : 1;
    dir = frt_alloc(dlen + 1);
    st->shards = frt_calloc(nshards ? (size_t)nshards : 1, sizeof *st->shards);
    if (!dir || !st->shards) {
        s = FRT_ERR_NOMEM;
        goto done;
    }
    memcpy(dir, slash ? path : ".", dlen);
    dir[dlen] = '\0';
    for (i = 0; i < nshards; i++) {
        char *p = join_path(dir, names[i]);
        if (!p) {
            s = FRT_ERR_NOMEM;
            goto done;
        }
        st->nshards++;
        s = shard_open(&st->shards[i], p, true);
        frt_free(p);
        if (s != FRT_OK) goto done;
    }
    if ((s = build_table(st)) != FRT_OK) goto done;

    for (i = 0; i < n; i++) {
        const st_entry *e = find(st, items[i].tensor);
        const char *in = e ? st->shards[e->shard].path : NULL;
        const char *base = in ? strrchr(in, '/') : NULL;
        base = base ? base + 1 : in;
        if (!e || strcmp(base, items[i].shard)) {
            s = frt_error_at(FRT_ERR_FORMAT, path, items[i].tensor, -1,
                             "the index maps tensor '%s' to shard %s, but it is not in that "
                             "shard%s%s",
                             items[i].tensor, items[i].shard, e ? "; found in " : "", e ? in : "");
            goto done;
        }
    }
    if (st->count > n)
        FRT_LOGW("safetensors: %lld tensors in the shards of %s are not listed in its index",
                 (long long)(st->count - n), path);
done:
    frt_free(dir);
    frt_free(names);
    frt_free(items);
    cJSON_Delete(root);
    return s;
}

static frt_status open_file(frt_st *st, const char *path)
{
    st->shards = frt_calloc(1, sizeof *st->shards);
    if (!st->shards) return FRT_ERR_NOMEM;
    st->nshards = 1;
    FRT_TRY(shard_open(&st->shards[0], path, false));
    return build_table(st);
}

static frt_status open_any(frt_st *st, const char *path)
{
    struct stat sb;
    if (stat(path, &sb) != 0) {
        int e = errno;
        return frt_error_at(e == ENOENT ? FRT_ERR_NOT_FOUND : FRT_ERR_IO, path, NULL, -1,
                            "cannot open checkpoint: %s", strerror(e));
    }
    if (!S_ISDIR(sb.st_mode)) {
        if (has_suffix(path, ".json")) return open_index(st, path);
        return open_file(st, path);
    }
    static const char *const candidates[] = {"model.safetensors.index.json", "model.safetensors"};
    for (int i = 0; i < 2; i++) {
        char *p = join_path(path, candidates[i]);
        if (!p) return FRT_ERR_NOMEM;
        bool present = is_file(p);
        frt_status s = FRT_OK;
        if (present) s = i == 0 ? open_index(st, p) : open_file(st, p);
        frt_free(p);
        if (present) return s;
    }
    return frt_error_at(FRT_ERR_NOT_FOUND, path, NULL, -1,
                        "no model.safetensors.index.json or model.safetensors in the directory");
}

frt_status frt_st_open(const char *path, frt_st **out)
{
    if (!path || !out) return frt_error(FRT_ERR_INVALID_ARG, "frt_st_open: NULL argument");
    frt_st *st = frt_calloc(1, sizeof *st);
    if (!st) return FRT_ERR_NOMEM;
    st->path = dup_str(path);
    frt_status s = st->path ? open_any(st, path) : FRT_ERR_NOMEM;
    if (s == FRT_OK) s = align_tensors(st);
    if (s != FRT_OK) {
        frt_st_close(st);
        return s;
    }
    *out = st;
    return FRT_OK;
}

/* ---- in memory ------------------------------------------------------------ */

static int mem_kind(frt_dtype t)
{
    for (int k = 0; k < ST_NDTYPES; k++)
        if (st_dtypes[k].frt == (int)t) return k;
    return -1;
}

static frt_status mem_check(const frt_st_mem_tensor *t, const char *label, uint64_t *bytes)
{
    if (!t->name)
        return frt_error_at(FRT_ERR_INVALID_ARG, label, NULL, -1, "tensor without a name");
    int kind = mem_kind(t->dtype);
    if (kind < 0)
        return frt_error_at(FRT_ERR_INVALID_ARG, label, t->name, -1, "unsupported dtype %d",
                            (int)t->dtype);
    if (t->ndim < 1 || t->ndim > FRT_MAX_DIMS)
        return frt_error_at(FRT_ERR_INVALID_ARG, label, t->name, -1, "ndim %d outside [1, %d]",
                            t->ndim, FRT_MAX_DIMS);
    uint64_t n = 1;
    for (int d = 0; d < t->ndim; d++) {
        if (t->shape[d] < 0)
            return frt_error_at(FRT_ERR_INVALID_ARG, label, t->name, -1, "negative dim");
        if (__builtin_mul_overflow(n, (uint64_t)t->shape[d], &n))
            return frt_error_at(FRT_ERR_INVALID_ARG, label, t->name, -1, "element count overflows");
    }
    size_t esize = frt_dtype_size(t->dtype);
    if (__builtin_mul_overflow(n, (uint64_t)esize, bytes))
        return frt_error_at(FRT_ERR_INVALID_ARG, label, t->name, -1, "byte size overflows");
    if (*bytes && !t->data)
        return frt_error_at(FRT_ERR_INVALID_ARG, label, t->name, -1, "NULL data");
    if ((uintptr_t)t->data % esize)
        return frt_error_at(FRT_ERR_INVALID_ARG, label, t->name, -1,
                            "data not aligned to its %zu-byte elements", esize);
    return FRT_OK;
}

/* One shard without a mapping: entries point at the caller's buffers, and
 * their offsets are running byte counts so the usual overlap check holds. */
static frt_status mem_shard(st_shard *sh, const frt_st_mem_tensor *tensors, int64_t n,
                            const char *label)
{
    size_t names_len = 0;
    for (int64_t i = 0; i < n; i++)
        if (tensors[i].name) names_len += strlen(tensors[i].name) + 1;
    sh->path = dup_str(label);
    sh->names = frt_alloc(names_len ? names_len : 1);
    sh->entries = frt_calloc(n ? (size_t)n : 1, sizeof *sh->entries);
    if (!sh->path || !sh->names || !sh->entries) return FRT_ERR_NOMEM;
    char *np = sh->names;
    uint64_t off = 0;
    for (int64_t i = 0; i < n; i++) {
        const frt_st_mem_tensor *t = &tensors[i];
        uint64_t bytes = 0;
        FRT_TRY(mem_check(t, label, &bytes));
        st_entry *e = &sh->entries[i];
        size_t len = strlen(t->name) + 1;
        memcpy(np, t->name, len);
        e->name = np;
        np += len;
        e->kind = mem_kind(t->dtype);
        e->ndim = t->ndim;
        memcpy(e->shape, t->shape, (size_t)t->ndim * sizeof *e->shape);
        e->begin = off;
        e->end = off + bytes;
        off += bytes;
        e->data = (void *)(uintptr_t)t->data;
        sh->count++;
    }
    return FRT_OK;
}

frt_status frt_st_from_memory(const frt_st_mem_tensor *tensors, int64_t n, const char *label,
                              frt_st **out)
{
    if (!out || n < 0 || (n && !tensors))
        return frt_error(FRT_ERR_INVALID_ARG, "frt_st_from_memory: bad argument");
    if (!label) label = "(memory)";
    frt_st *st = frt_calloc(1, sizeof *st);
    if (!st) return FRT_ERR_NOMEM;
    st->path = dup_str(label);
    st->shards = frt_calloc(1, sizeof *st->shards);
    frt_status s = st->path && st->shards ? FRT_OK : FRT_ERR_NOMEM;
    if (s == FRT_OK) {
        st->nshards = 1;
        s = mem_shard(&st->shards[0], tensors, n, label);
    }
    if (s == FRT_OK) s = build_table(st);
    if (s != FRT_OK) {
        frt_st_close(st);
        return s;
    }
    *out = st;
    return FRT_OK;
}

int64_t frt_st_count(const frt_st *st)
{
    return st ? st->count : 0;
}

const char *frt_st_name(const frt_st *st, int64_t i)
{
    return st && i >= 0 && i < st->count ? st->entries[i].name : NULL;
}

frt_status frt_st_get(const frt_st *st, const char *name, frt_tensor *out)
{
    if (!st || !name || !out) return frt_error(FRT_ERR_INVALID_ARG, "frt_st_get: NULL argument");
    const st_entry *e = find(st, name);
    if (!e)
        return frt_error_at(FRT_ERR_NOT_FOUND, st->path, name, -1,
                            "tensor '%s' is not in the checkpoint", name);
    int frt = st_dtypes[e->kind].frt;
    if (frt < 0)
        return frt_error_at(FRT_ERR_UNSUPPORTED, st->shards[e->shard].path, name,
                            (int64_t)(st->shards[e->shard].data_start + e->begin),
                            "tensor has dtype %s, which flashrt does not support (F32, F16, "
                            "BF16, I32, I8)",
                            st_dtypes[e->kind].name);
    if (e->ndim > FRT_MAX_DIMS)
        return frt_error_at(FRT_ERR_UNSUPPORTED, st->shards[e->shard].path, name, -1,
                            "tensor has %d dims, more than the %d flashrt tensors hold", e->ndim,
                            FRT_MAX_DIMS);
    static const int64_t scalar_shape[1] = {1};
    if (e->ndim == 0)
        *out = frt_tensor_view(e->data, (frt_dtype)frt, 1, scalar_shape);
    else
        *out = frt_tensor_view(e->data, (frt_dtype)frt, e->ndim, e->shape);
    return FRT_OK;
}

frt_status frt_st_get_shaped(const frt_st *st, const char *name, int ndim, const int64_t *shape,
                             frt_tensor *out)
{
    if (!out || ndim < 0 || ndim > FRT_MAX_DIMS || (ndim && !shape))
        return frt_error(FRT_ERR_INVALID_ARG, "frt_st_get_shaped: bad argument");
    frt_tensor t;
    FRT_TRY(frt_st_get(st, name, &t));
    bool same = t.ndim == ndim;
    for (int i = 0; same && i < ndim; i++) same = t.shape[i] == shape[i];
    if (!same) {
        char want[128], got[128];
        format_shape(want, sizeof want, ndim, shape);
        format_shape(got, sizeof got, t.ndim, t.shape);
        const st_entry *e = find(st, name);
        return frt_error_at(FRT_ERR_FORMAT, st->shards[e->shard].path, name, -1,
                            "shape mismatch: expected %s, found %s", want, got);
    }
    *out = t;
    return FRT_OK;
}

frt_status frt_st_get_f32(const frt_st *st, const char *name, frt_tensor *out)
{
    if (!out) return frt_error(FRT_ERR_INVALID_ARG, "frt_st_get_f32: NULL argument");
    frt_tensor v;
    FRT_TRY(frt_st_get(st, name, &v));
    if (v.dtype != FRT_F32 && v.dtype != FRT_F16 && v.dtype != FRT_BF16) {
        const st_entry *e = find(st, name);
        return frt_error_at(FRT_ERR_UNSUPPORTED, st->shards[e->shard].path, name, -1,
                            "tensor has dtype %s, not a float dtype convertible to F32",
                            frt_dtype_name(v.dtype));
    }
    frt_tensor t;
    FRT_TRY(frt_tensor_alloc(&t, FRT_F32, v.ndim, v.shape));
    frt_to_f32_row(v.dtype, v.data, t.data, (size_t)frt_tensor_numel(&v));
    *out = t;
    return FRT_OK;
}
