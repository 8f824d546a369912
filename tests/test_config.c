/* config.json reading: nested keys, defaults, and every type / range / syntax error naming
 * the file and key. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "error.h"
#include "testutil.h"

TestSuite(config, .fini = tu_check_leaks);

static const char *k_json = "{\n"
                            "  \"hidden_size\": 896,\n"
                            "  \"rope_theta\": 1000000.0,\n"
                            "  \"eps\": 1e-6,\n"
                            "  \"tie\": true,\n"
                            "  \"act\": \"silu\",\n"
                            "  \"rope_scaling\": null,\n"
                            "  \"ratio\": 2.5,\n"
                            "  \"huge\": 1e300,\n"
                            "  \"neg\": -3,\n"
                            "  \"sections\": [16, 24, 24],\n"
                            "  \"mixed\": [1, \"two\"],\n"
                            "  \"fracs\": [1, 2.5],\n"
                            "  \"vision_config\": {\"depth\": 32, \"deep\": {\"x\": 7},\n"
                            "                     \"nothing\": null},\n"
                            "  \"a.b\": 11,\n"
                            "  \"a\": {\"b\": 12, \"c\": 13},\n"
                            "  \"dup\": 1, \"dup\": 2\n"
                            "}\n";

static frt_config *parse(const char *text)
{
    frt_config *c = NULL;
    frt_status s = frt_config_parse(text, strlen(text), "config.json", &c);
    cr_assert_eq(s, FRT_OK, "%s", frt_last_error());
    return c;
}

/* The failure names the file, the key and the problem. */
static void expect_err(frt_status got, frt_status want, const char *key, const char *needle)
{
    cr_assert_eq(got, want, "status %s, want %s (%s)", frt_status_name(got), frt_status_name(want),
                 frt_last_error());
    const char *msg = frt_last_error();
    cr_assert(strstr(msg, needle), "message \"%s\" lacks \"%s\"", msg, needle);
    cr_assert(strstr(msg, "config.json"), "message \"%s\" lacks the file", msg);
    if (key) {
        const char *k;
        frt_last_error_detail(NULL, &k, NULL);
        cr_assert_str_eq(k, key);
    }
}

Test(config, values_nested_and_defaults)
{
    frt_config *c = parse(k_json);
    int64_t i = -1;
    cr_assert_eq(frt_config_int(c, "hidden_size", 0, 1, 1 << 20, &i), FRT_OK);
    cr_assert_eq(i, 896);
    cr_assert_eq(frt_config_int(c, "rope_theta", 0, 0, INT64_MAX, &i), FRT_OK);
    cr_assert_eq(i, 1000000); /* an integral double is an integer */
    cr_assert_eq(frt_config_int(c, "neg", 0, -5, 5, &i), FRT_OK);
    cr_assert_eq(i, -3);
    cr_assert_eq(frt_config_int(c, "vision_config.depth", 0, 1, 100, &i), FRT_OK);
    cr_assert_eq(i, 32);
    cr_assert_eq(frt_config_int(c, "vision_config.deep.x", 0, 0, 100, &i), FRT_OK);
    cr_assert_eq(i, 7);
    /* a literal dotted key wins; otherwise descend */
    cr_assert_eq(frt_config_int(c, "a.b", 0, 0, 100, &i), FRT_OK);
    cr_assert_eq(i, 11);
    cr_assert_eq(frt_config_int(c, "a.c", 0, 0, 100, &i), FRT_OK);
    cr_assert_eq(i, 13);

    /* missing and null keys give the default, even outside [lo, hi] */
    cr_assert_eq(frt_config_int(c, "num_layers", 24, 1, 10, &i), FRT_OK);
    cr_assert_eq(i, 24);
    cr_assert_eq(frt_config_int(c, "rope_scaling", 5, 0, 10, &i), FRT_OK);
    cr_assert_eq(i, 5);
    cr_assert_eq(frt_config_int(c, "rope_scaling.factor", 6, 0, 10, &i), FRT_OK);
    cr_assert_eq(i, 6);
    cr_assert_eq(frt_config_int(c, "vision_config.nothing", 7, 0, 10, &i), FRT_OK);
    cr_assert_eq(i, 7);
    cr_assert_eq(frt_config_int(c, "vision_config.missing.deeper", 8, 0, 10, &i), FRT_OK);
    cr_assert_eq(i, 8);

    double d = 0;
    cr_assert_eq(frt_config_float(c, "eps", 0, &d), FRT_OK);
    cr_assert_eq(d, 1e-6);
    cr_assert_eq(frt_config_float(c, "hidden_size", 0, &d), FRT_OK);
    cr_assert_eq(d, 896.0);
    cr_assert_eq(frt_config_float(c, "nope", 0.25, &d), FRT_OK);
    cr_assert_eq(d, 0.25);

    bool b = false;
    cr_assert_eq(frt_config_bool(c, "tie", false, &b), FRT_OK);
    cr_assert(b);
    cr_assert_eq(frt_config_bool(c, "nope", true, &b), FRT_OK);
    cr_assert(b);
    cr_assert_eq(frt_config_bool(c, "nope", false, &b), FRT_OK);
    cr_assert_not(b);

    const char *s = NULL;
    cr_assert_eq(frt_config_string(c, "act", "gelu", &s), FRT_OK);
    cr_assert_str_eq(s, "silu");
    cr_assert_eq(frt_config_string(c, "nope", "gelu", &s), FRT_OK);
    cr_assert_str_eq(s, "gelu");
    cr_assert_eq(frt_config_string(c, "nope", NULL, &s), FRT_OK);
    cr_assert_null(s);

    cr_assert(frt_config_has(c, "hidden_size"));
    cr_assert(frt_config_has(c, "vision_config.deep"));
    cr_assert(frt_config_has(c, "vision_config.deep.x"));
    cr_assert_not(frt_config_has(c, "vision_config.deep.y"));
    cr_assert_not(frt_config_has(c, "rope_scaling"));
    cr_assert_not(frt_config_has(c, "hidden_size.x"));
    cr_assert_not(frt_config_has(NULL, "x"));
    frt_config_free(c);
    frt_config_free(NULL);
}

Test(config, int_array)
{
    frt_config *c = parse(k_json);
    int64_t v[4] = {-1, -1, -1, -1};
    int n = -1;
    cr_assert_eq(frt_config_int_array(c, "sections", v, 4, &n), FRT_OK);
    cr_assert_eq(n, 3);
    cr_assert(v[0] == 16 && v[1] == 24 && v[2] == 24 && v[3] == -1);
    cr_assert_eq(frt_config_int_array(c, "missing", v, 4, &n), FRT_OK);
    cr_assert_eq(n, 0);
    n = 99;
    v[0] = -1;
    expect_err(frt_config_int_array(c, "sections", v, 2, &n), FRT_ERR_LIMIT, "sections",
               "3 entries, at most 2");
    expect_err(frt_config_int_array(c, "mixed", v, 4, &n), FRT_ERR_FORMAT, "mixed",
               "entry 1 is a string, expected an integer");
    expect_err(frt_config_int_array(c, "fracs", v, 4, &n), FRT_ERR_FORMAT, "fracs",
               "entry 1 is 2.5, not an integer");
    expect_err(frt_config_int_array(c, "hidden_size", v, 4, &n), FRT_ERR_FORMAT, "hidden_size",
               "expected an array");
    cr_assert_eq(n, 99, "count written on failure");
    cr_assert_eq(v[0], -1, "values written on failure");
    frt_config_free(c);
}

Test(config, wrong_types)
{
    frt_config *c = parse(k_json);
    int64_t i = 42;
    double d = 42;
    bool b = true;
    const char *s = "keep";
    expect_err(frt_config_int(c, "act", 0, 0, 10, &i), FRT_ERR_FORMAT, "act",
               "'act' is a string, expected an integer");
    expect_err(frt_config_int(c, "tie", 0, 0, 10, &i), FRT_ERR_FORMAT, "tie", "is a boolean");
    expect_err(frt_config_int(c, "vision_config", 0, 0, 10, &i), FRT_ERR_FORMAT, "vision_config",
               "is an object");
    expect_err(frt_config_float(c, "act", 0, &d), FRT_ERR_FORMAT, "act", "expected a number");
    expect_err(frt_config_bool(c, "hidden_size", false, &b), FRT_ERR_FORMAT, "hidden_size",
               "is a number, expected a boolean");
    expect_err(frt_config_string(c, "hidden_size", "x", &s), FRT_ERR_FORMAT, "hidden_size",
               "expected a string");
    expect_err(frt_config_string(c, "sections", "x", &s), FRT_ERR_FORMAT, "sections",
               "is an array");
    /* descending through a non-object */
    expect_err(frt_config_int(c, "hidden_size.x", 0, 0, 10, &i), FRT_ERR_FORMAT, "hidden_size.x",
               "'hidden_size' is a number, expected an object");
    expect_err(frt_config_int(c, "vision_config.depth.x", 0, 0, 10, &i), FRT_ERR_FORMAT,
               "vision_config.depth.x", "'vision_config.depth' is a number, expected an object");
    expect_err(frt_config_int(c, "dup", 0, 0, 10, &i), FRT_ERR_FORMAT, "dup",
               "appears more than once");
    cr_assert_not(frt_config_has(c, "dup"));
    cr_assert(i == 42 && d == 42 && b && !strcmp(s, "keep"), "output written on failure");
    frt_config_free(c);
}

Test(config, range_and_integrality)
{
    frt_config *c = parse(k_json);
    int64_t i = 42;
    expect_err(frt_config_int(c, "hidden_size", 0, 1, 512, &i), FRT_ERR_FORMAT, "hidden_size",
               "896, out of range [1, 512]");
    expect_err(frt_config_int(c, "neg", 0, 0, 10, &i), FRT_ERR_FORMAT, "neg", "out of range");
    expect_err(frt_config_int(c, "ratio", 0, 0, 10, &i), FRT_ERR_FORMAT, "ratio",
               "2.5, not an integer");
    expect_err(frt_config_int(c, "eps", 0, 0, 10, &i), FRT_ERR_FORMAT, "eps", "not an integer");
    expect_err(frt_config_int(c, "huge", 0, INT64_MIN, INT64_MAX, &i), FRT_ERR_FORMAT, "huge",
               "outside the 64-bit integer range");
    cr_assert_eq(i, 42);
    /* the edges of [lo, hi] are inside */
    cr_assert_eq(frt_config_int(c, "hidden_size", 0, 896, 896, &i), FRT_OK);
    cr_assert_eq(i, 896);
    frt_config_free(c);

    c = parse("{\"big\": 9223372036854775808, \"min\": -9223372036854775808}");
    expect_err(frt_config_int(c, "big", 0, INT64_MIN, INT64_MAX, &i), FRT_ERR_FORMAT, "big",
               "outside");
    cr_assert_eq(frt_config_int(c, "min", 0, INT64_MIN, INT64_MAX, &i), FRT_OK);
    cr_assert_eq(i, INT64_MIN);
    frt_config_free(c);
}

Test(config, bad_json)
{
    frt_config *sentinel = (frt_config *)&k_json, *c = sentinel;
    const char *t = "{\n  \"a\": 1,\n  \"b\": [1, 2,\n}";
    expect_err(frt_config_parse(t, strlen(t), "config.json", &c), FRT_ERR_FORMAT, NULL,
               "invalid JSON at line 4");
    t = "{\"a\": 1} {\"b\": 2}";
    expect_err(frt_config_parse(t, strlen(t), "config.json", &c), FRT_ERR_FORMAT, NULL,
               "trailing characters");
    t = "[1, 2]";
    expect_err(frt_config_parse(t, strlen(t), "config.json", &c), FRT_ERR_FORMAT, NULL,
               "root is not an object");
    t = "";
    expect_err(frt_config_parse(t, 0, "config.json", &c), FRT_ERR_FORMAT, NULL, "invalid JSON");
    /* len bounds the text: the valid prefix alone is parsed, then the cut is an error */
    t = "{\"a\": 1}garbage";
    expect_err(frt_config_parse(t, 5, "config.json", &c), FRT_ERR_FORMAT, NULL, "invalid JSON");
    cr_assert_eq(c, sentinel, "*out written on failure");
    c = NULL;
    cr_assert_eq(frt_config_parse(t, 8, "config.json", &c), FRT_OK, "%s", frt_last_error());
    frt_config_free(c);
    /* blank padding after the value is fine */
    c = parse("{\"a\": 1}\n\n  \t\r\n");
    frt_config_free(c);
    cr_assert_eq(frt_config_parse(NULL, 0, "x", &c), FRT_ERR_INVALID_ARG);
}

Test(config, files)
{
    char *dir = tu_tmpdir();
    cr_assert(dir);
    char *p = tu_write_file(dir, "config.json", k_json, strlen(k_json));
    frt_config *c = NULL;
    cr_assert_eq(frt_config_load(p, &c), FRT_OK, "%s", frt_last_error());
    int64_t i;
    cr_assert_eq(frt_config_int(c, "vision_config.depth", 0, 0, 100, &i), FRT_OK);
    cr_assert_eq(i, 32);
    /* messages carry the path the file was loaded from */
    cr_assert_eq(frt_config_int(c, "act", 0, 0, 1, &i), FRT_ERR_FORMAT);
    cr_assert(strstr(frt_last_error(), p), "%s", frt_last_error());
    frt_config_free(c);
    free(p);

    frt_config *sentinel = (frt_config *)&k_json;
    c = sentinel;
    char *missing = malloc(strlen(dir) + 32);
    sprintf(missing, "%s/none/config.json", dir);
    cr_assert_eq(frt_config_load(missing, &c), FRT_ERR_NOT_FOUND);
    cr_assert(strstr(frt_last_error(), missing), "%s", frt_last_error());
    cr_assert_eq(c, sentinel);
    free(missing);

    cr_assert_eq(frt_config_load(dir, &c), FRT_ERR_IO);
    cr_assert(strstr(frt_last_error(), "not a regular file"), "%s", frt_last_error());

    p = tu_write_file(dir, "config.json", "{\"a\": ", 6);
    expect_err(frt_config_load(p, &c), FRT_ERR_FORMAT, NULL, "invalid JSON at line 1");
    free(p);

    /* over the 16 MiB cap: a sparse file, so the test writes nothing big */
    p = tu_write_file(dir, "big.json", "{}", 2);
    int fd = open(p, O_WRONLY);
    cr_assert(fd >= 0);
    cr_assert_eq(ftruncate(fd, (16 << 20) + 1), 0);
    close(fd);
    cr_assert_eq(frt_config_load(p, &c), FRT_ERR_LIMIT);
    cr_assert(strstr(frt_last_error(), "cap"), "%s", frt_last_error());
    cr_assert_eq(c, sentinel);
    free(p);

    /* frt_json_load takes any JSON value */
    p = tu_write_file(dir, "list.json", "[1, 2, 3]", 9);
    cJSON *j = NULL;
    cr_assert_eq(frt_json_load(p, 64, &j), FRT_OK, "%s", frt_last_error());
    cr_assert_eq(cJSON_GetArraySize(j), 3);
    cJSON_Delete(j);
    cr_assert_eq(frt_json_load(p, 8, &j), FRT_ERR_LIMIT);
    free(p);

    tu_rmtree(dir);
    free(dir);
}
