/* libFuzzer: a sharded checkpoint's model.safetensors.index.json, in a
 * scratch model directory that holds three fixed shards (a.safetensors with
 * x and y, b.safetensors with z, dup.safetensors with another x). The
 * directory is opened as a model is; every tensor found is looked up. */
#include <sys/stat.h>

#include "fuzz_util.h"
#include "safetensors.h"

static char dir[256], index_path[320];

/* A shard of F32 tensors named names[0..n), each [2] of data 1, 2. */
static void write_shard(const char *file, const char *const *names, int n)
{
    char header[512] = "{";
    for (int i = 0; i < n; i++)
        snprintf(header + strlen(header), sizeof header - strlen(header),
                 "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[%d,%d]}",
                 i ? "," : "", names[i], 8 * i, 8 * i + 8);
    strcat(header, "}");
    while (strlen(header) % 8) strcat(header, " ");
    uint8_t buf[1024];
    uint64_t h = strlen(header);
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)(h >> (8 * i));
    memcpy(buf + 8, header, h);
    const float v[2] = {1, 2};
    for (int i = 0; i < n; i++) memcpy(buf + 8 + h + 8 * i, v, 8);
    char path[320];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    if (!fuzz_write_file(path, buf, 8 + h + 8 * (size_t)n)) abort();
}

static void remove_dir(void)
{
    static const char *const files[] = {"a.safetensors", "b.safetensors", "dup.safetensors",
                                        "model.safetensors.index.json"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char path[320];
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_quiet();
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(dir, sizeof dir, "%s/frt-fuzz-index-%ld", base, (long)getpid());
    if (mkdir(dir, 0700) != 0) abort();
    atexit(remove_dir);
    static const char *const a[] = {"x", "y"}, *const b[] = {"z"}, *const d[] = {"x"};
    write_shard("a.safetensors", a, 2);
    write_shard("b.safetensors", b, 1);
    write_shard("dup.safetensors", d, 1);
    snprintf(index_path, sizeof index_path, "%s/model.safetensors.index.json", dir);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!fuzz_write_file(index_path, data, size)) return 0;
    frt_st *st = NULL;
    if (frt_st_open(dir, &st) != FRT_OK) return 0;
    for (int64_t i = 0; i < frt_st_count(st); i++) {
        frt_tensor t;
        if (frt_st_get(st, frt_st_name(st, i), &t) != FRT_OK) abort();
        if (((const float *)t.data)[1] != 2) abort();
    }
    frt_st_close(st);
    return 0;
}
