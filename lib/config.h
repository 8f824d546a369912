/* Internal: config.json (and other JSON files) read with cJSON.
 *
 * Getters look a key up in a JSON object; a dotted key ("vision_config.
 * hidden_size") descends into nested objects. A missing key yields the
 * default; a present key of the wrong type or out of range is an error
 * (FRT_ERR_FORMAT naming the file and key).
 *
 * JSON null counts as missing (Hugging Face writes "rope_scaling": null for
 * "not set"). A key spelled with dots that exists literally wins over
 * descending. A key present twice in one object is FRT_ERR_FORMAT when looked
 * up (cJSON would take the first, Python the last). Text after the JSON
 * value other than blanks is FRT_ERR_FORMAT; the root must be an object.
 * Load: missing file FRT_ERR_NOT_FOUND, other open/read failures FRT_ERR_IO,
 * over the cap FRT_ERR_LIMIT. A frt_config is immutable after parsing: the
 * getters are thread-safe. */
#ifndef FRT_CONFIG_H
#define FRT_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "flashrt/core.h"

typedef struct frt_config frt_config;

/* Parse a file (capped at 16 MiB) / an in-memory string (len bytes). */
frt_status frt_config_load(const char *path, frt_config **out);
frt_status frt_config_parse(const char *text, size_t len, const char *name, frt_config **out);
void frt_config_free(frt_config *c);

/* True when the key resolves to a non-null value; false when it is absent or
 * null, or when resolving it fails (a duplicated key, a non-object parent:
 * the getters report those). */
bool frt_config_has(const frt_config *c, const char *key);
/* Integer in [lo, hi]; doubles with a fractional part are rejected. */
frt_status frt_config_int(const frt_config *c, const char *key, int64_t def, int64_t lo,
                          int64_t hi, int64_t *out);
frt_status frt_config_float(const frt_config *c, const char *key, double def, double *out);
frt_status frt_config_bool(const frt_config *c, const char *key, bool def, bool *out);
/* The returned string is owned by c. */
frt_status frt_config_string(const frt_config *c, const char *key, const char *def,
                             const char **out);
/* Integer array: fills up to cap entries, *n the count. A missing key gives
 * *n = 0; more than cap entries is FRT_ERR_LIMIT. On failure vals and *n are
 * left untouched. */
frt_status frt_config_int_array(const frt_config *c, const char *key, int64_t *vals, int cap,
                                int *n);

/* Read and parse a whole JSON file of at most cap bytes (any JSON value, for
 * loaders that walk the tree themselves, e.g. the safetensors index). *out
 * is freed with cJSON_Delete. Errors as frt_config_load. */
struct cJSON;
frt_status frt_json_load(const char *path, size_t cap, struct cJSON **out);

#endif
