/* test_safetensors.c — round trip of the writer and reader, float conversions,
 * and a corpus of malformed files that must each be rejected with
 * RD_ERR_FORMAT and a message (run under ASan for crashes and leaks). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"
#include "sha256.h"
#include "testutil.h"

/* 8-byte LE length + header + data, into a malloc'ed buffer. */
static uint8_t *mk(const char *hdr, const void *data, size_t dlen, size_t *len)
{
    size_t h = strlen(hdr);
    uint8_t *b = malloc(8 + h + dlen + 1);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)h >> (8 * i));
    memcpy(b + 8, hdr, h);
    if (dlen) memcpy(b + 8 + h, data, dlen);
    *len = 8 + h + dlen;
    return b;
}

static void expect_format(const uint8_t *buf, size_t len, const char *what)
{
    rd_err err = {0};
    rd_st_file *f = rd_st_open_mem(buf, len, &err);
    RD_CHECK(f == NULL, "%s: accepted", what);
    RD_CHECK(f != NULL || err.code == RD_ERR_FORMAT, "%s: status %d (%s), want format", what, (int)err.code, err.msg);
    RD_CHECK(f != NULL || err.msg[0] != '\0', "%s: no message", what);
    rd_st_free(f);
}

static void expect_bad_header(const char *hdr, size_t dlen, const char *what)
{
    uint8_t data[256] = {0};
    size_t len;
    uint8_t *b = mk(hdr, data, dlen, &len);
    expect_format(b, len, what);
    free(b);
}

static void test_round_trip(void)
{
    const char *dir = rd_test_tmpdir("st");
    char path[600];
    float a[6] = {1, -2, 3.5f, 4, 5, 6e-30f}, s[1] = {42}, big[1000];
    rd_st_out_tensor ts[4] = {
        {"layer.a", 2, {2, 3}, a},
        {"scalar", 0, {0}, s},
        {"empty", 2, {0, 5}, NULL},
        {"big", 3, {10, 10, 10}, big},
    };
    const char *meta[] = {"resadd.arch", "resnet18", "note", "ünïcode ok", NULL};
    rd_err err = {0};
    rd_st_file *f;
    size_t len;
    uint8_t *bytes;
    char hex[RD_SHA256_HEX];

    rd_fill_uniform(big, 1000, 5, -3, 3);
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    RD_CHECK(rd_st_write(path, ts, 4, meta, &err) == RD_OK, "write: %s", err.msg);
    f = rd_st_open(path, &err);
    RD_CHECK(f != NULL, "read back: %s", err.msg);
    if (f) {
        const rd_st_tensor *t = rd_st_find(f, "layer.a");
        float out[1000];
        RD_CHECK(rd_st_count(f) == 4, "count %zu", rd_st_count(f));
        RD_CHECK(t && t->dtype == RD_ST_F32 && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3 && t->numel == 6,
                 "layer.a shape");
        RD_CHECK(t && rd_st_to_f32(t, out, &err) == RD_OK && memcmp(out, a, sizeof a) == 0, "layer.a data");
        t = rd_st_find(f, "scalar");
        RD_CHECK(t && t->ndim == 0 && t->numel == 1 && rd_st_to_f32(t, out, &err) == RD_OK && out[0] == 42, "scalar");
        t = rd_st_find(f, "empty");
        RD_CHECK(t && t->numel == 0 && t->nbytes == 0, "empty");
        t = rd_st_find(f, "big");
        RD_CHECK(t && rd_st_to_f32(t, out, &err) == RD_OK && memcmp(out, big, sizeof big) == 0, "big data");
        RD_CHECK(rd_st_find(f, "nope") == NULL, "find of a missing tensor");
        RD_CHECK(rd_st_meta(f, "resadd.arch") && strcmp(rd_st_meta(f, "resadd.arch"), "resnet18") == 0, "metadata");
        RD_CHECK(rd_st_meta(f, "note") && strcmp(rd_st_meta(f, "note"), "ünïcode ok") == 0, "utf-8 metadata");
        RD_CHECK(rd_st_meta(f, "missing") == NULL, "missing metadata");
        bytes = rd_read_file(path, &len);
        RD_CHECK(bytes && rd_sha256_hex(bytes, len, hex) == 0 && strcmp(hex, rd_st_sha256(f)) == 0, "sha256");
        RD_CHECK(bytes && (((uint64_t)bytes[0] | ((uint64_t)bytes[1] << 8)) % 8) == 0, "header padded to 8 bytes");
        {
            int64_t want[2] = {2, -1}, bad[2] = {3, 3};
            RD_CHECK(rd_st_expect(f, "layer.a", 2, want, &err) != NULL, "expect with wildcard");
            RD_CHECK(rd_st_expect(f, "layer.a", 2, bad, &err) == NULL && strstr(err.msg, "layer.a") &&
                         strstr(err.msg, "[2, 3]"),
                     "expect mismatch message: %s", err.msg);
            RD_CHECK(rd_st_expect(f, "nope.weight", 2, want, &err) == NULL && strstr(err.msg, "nope.weight"),
                     "missing tensor message: %s", err.msg);
        }
        if (bytes) {
            rd_st_file *g = rd_st_open_mem(bytes, len, &err);
            RD_CHECK(g && rd_st_count(g) == 4 && strcmp(rd_st_sha256(g), rd_st_sha256(f)) == 0, "open_mem");
            rd_st_free(g);
            /* every proper prefix of a valid file is malformed */
            for (size_t cut = 0; cut < len; cut++) {
                char what[64];
                snprintf(what, sizeof what, "truncated at %zu of %zu", cut, len);
                expect_format(bytes, cut, what);
            }
        }
        free(bytes);
        rd_st_free(f);
    }
    /* writer errors */
    {
        rd_st_out_tensor dup[2] = {{"x", 1, {1}, s}, {"x", 1, {1}, s}};
        rd_st_out_tensor neg[1] = {{"x", 1, {-1}, s}};
        snprintf(path, sizeof path, "%s/no/such/dir/m.safetensors", dir);
        RD_CHECK(rd_st_write(path, ts, 1, NULL, &err) == RD_ERR_IO, "write into a missing dir");
        snprintf(path, sizeof path, "%s/dup.safetensors", dir);
        RD_CHECK(rd_st_write(path, dup, 2, NULL, &err) == RD_ERR_ARG, "duplicate names written");
        RD_CHECK(rd_st_write(path, neg, 1, NULL, &err) == RD_ERR_ARG, "negative shape written");
    }
    RD_CHECK(rd_st_open("/nonexistent/x.safetensors", &err) == NULL && err.code == RD_ERR_IO, "missing file");
    RD_CHECK(rd_st_open(dir, &err) == NULL && err.code == RD_ERR_IO, "directory opened as a model");
}

static void test_conversions(void)
{
    /* F16: 1.0, -2.0, 65504, 2^-24 (subnormal), 0; BF16: 1.0, -3.0; F64: 0.1; I64 unsupported */
    const uint8_t f16[10] = {0x00, 0x3c, 0x00, 0xc0, 0xff, 0x7b, 0x01, 0x00, 0x00, 0x00};
    const uint8_t bf16[4] = {0x80, 0x3f, 0x40, 0xc0};
    double d = 0.1;
    uint8_t data[10 + 4 + 8 + 8];
    const char *hdr = "{\"h\":{\"dtype\":\"F16\",\"shape\":[5],\"data_offsets\":[0,10]},"
                      "\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[10,14]},"
                      "\"d\":{\"dtype\":\"F64\",\"shape\":[1,1],\"data_offsets\":[14,22]},"
                      "\"i\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[22,30]}}";
    size_t len;
    uint8_t *buf;
    rd_err err = {0};
    rd_st_file *f;
    float out[8];

    memcpy(data, f16, 10);
    memcpy(data + 10, bf16, 4);
    memcpy(data + 14, &d, 8);
    memset(data + 22, 0, 8);
    buf = mk(hdr, data, sizeof data, &len);
    f = rd_st_open_mem(buf, len, &err);
    RD_CHECK(f != NULL, "conversion file: %s", err.msg);
    if (f) {
        RD_CHECK(rd_st_to_f32(rd_st_find(f, "h"), out, &err) == RD_OK && out[0] == 1.0f && out[1] == -2.0f &&
                     out[2] == 65504.0f && out[3] == 5.9604644775390625e-8f && out[4] == 0.0f,
                 "F16: %g %g %g %g %g", out[0], out[1], out[2], out[3], out[4]);
        RD_CHECK(rd_st_to_f32(rd_st_find(f, "b"), out, &err) == RD_OK && out[0] == 1.0f && out[1] == -3.0f, "BF16");
        RD_CHECK(rd_st_to_f32(rd_st_find(f, "d"), out, &err) == RD_OK && out[0] == 0.1f, "F64");
        RD_CHECK(rd_st_to_f32(rd_st_find(f, "i"), out, &err) == RD_ERR_UNSUPPORTED, "I64 converted");
        rd_st_free(f);
    }
    free(buf);
}

static void test_malformed(void)
{
    uint8_t raw[64] = {0};
    const char *ok1 = "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}";
    size_t len;
    uint8_t *b;
    char hdr[512];
    int n = 0;

    /* sanity: the base of most cases is valid */
    snprintf(hdr, sizeof hdr, "{%s}", ok1);
    b = mk(hdr, raw, 8, &len);
    {
        rd_err err = {0};
        rd_st_file *f = rd_st_open_mem(b, len, &err);
        RD_CHECK(f != NULL, "base case rejected: %s", err.msg);
        rd_st_free(f);
    }
    /* header length field: zero, past the end, absurd */
    memset(b, 0, 8);
    expect_format(b, len, "header length 0"), n++;
    b[0] = (uint8_t)(len - 8 + 1);
    expect_format(b, len, "header longer than the file"), n++;
    memset(b, 0xff, 8);
    expect_format(b, len, "header length 2^64-1"), n++;
    memset(b, 0, 8);
    b[7] = 0x80;
    expect_format(b, len, "header length 2^63"), n++;
    memset(b, 0, 8);
    b[3] = 0x10; /* 256 MiB, over RD_ST_MAX_HEADER and the file */
    expect_format(b, len, "header length over the limit"), n++;
    free(b);
    expect_format((const uint8_t *)"", 0, "empty file"), n++;
    expect_format((const uint8_t *)"\x02\0\0\0", 4, "4-byte file"), n++;

    expect_bad_header("{", 0, "invalid JSON"), n++;
    expect_bad_header("{\"a\":}", 0, "invalid JSON value"), n++;
    expect_bad_header("{} trailing", 0, "trailing garbage"), n++;
    expect_bad_header("[]", 0, "array header"), n++;
    expect_bad_header("\"str\"", 0, "string header"), n++;
    expect_bad_header("{\"a\":5}", 0, "entry not an object"), n++;
    expect_bad_header("{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "dtype missing"), n++;
    expect_bad_header("{\"a\":{\"dtype\":7,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "dtype a number"), n++;
    expect_bad_header("{\"a\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "unknown dtype"), n++;
    expect_bad_header("{\"a\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "lowercase dtype"), n++;
    expect_bad_header("{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "shape missing"), n++;
    expect_bad_header("{\"a\":{\"dtype\":\"F32\",\"shape\":4,\"data_offsets\":[0,4]}}", 4, "shape not an array"), n++;
    expect_bad_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "negative shape"), n++;
    expect_bad_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0,4]}}", 4, "float shape"), n++;
    expect_bad_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[\"1\"],\"data_offsets\":[0,4]}}", 4, "string shape"), n++;
    expect_bad_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,4]}}", 4,
                      "shape product overflow"), n++;
    expect_bad_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904],\"data_offsets\":[0,4]}}", 4,
                      "byte size overflow"), n++;
    expect_bad_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,4]}}", 4,
                      "shape beyond int64"), n++;
    expect_bad_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4, "9 dims"),
        n++;
    expect_bad_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,8]}}", 4, "offsets past the end"), n++;
    expect_bad_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 4, "offsets reversed"), n++;
    expect_bad_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4, "negative offset"), n++;
    expect_bad_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4, "one offset"), n++;
    expect_bad_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 8, "three offsets"), n++;
    expect_bad_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":\"0,4\"}}", 4, "offsets a string"), n++;
    expect_bad_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,1e1]}}", 16, "float offset"), n++;
    expect_bad_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 8, "size mismatch"), n++;
    expect_bad_header("{\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "F16 size mismatch"), n++;
    expect_bad_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                      "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                      12, "overlapping"), n++;
    expect_bad_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                      "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
                      8, "same range twice"), n++;
    expect_bad_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                      "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                      8, "duplicate name"), n++;
    expect_bad_header("{\"__metadata__\":{\"k\":5}}", 0, "metadata value a number"), n++;
    expect_bad_header("{\"__metadata__\":{\"k\":\"v\",\"j\":null}}", 0, "metadata value null"), n++;
    expect_bad_header("{\"__metadata__\":[\"k\"]}", 0, "metadata an array"), n++;
    expect_bad_header("{\"__metadata__\":{\"k\":{\"x\":\"y\"}}}", 0, "metadata value an object"), n++;
    expect_bad_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"\x01\":[]}", 4,
                      "control character in a key"), n++;
    /* garbage files: random bytes, and random bytes behind a plausible length */
    for (unsigned seed = 1; seed <= 200; seed++) {
        float r[64];
        uint8_t g[256];
        char what[64];
        rd_fill_uniform(r, 64, seed, 0, 256);
        for (int i = 0; i < 256; i++) g[i] = (uint8_t)r[i % 64] ^ (uint8_t)(i * seed);
        snprintf(what, sizeof what, "garbage %u", seed);
        expect_format(g, 8 + seed % 200, what);
        memset(g, 0, 8);
        g[0] = (uint8_t)(seed % 200 + 2);
        g[8] = '{';
        expect_format(g, 256, what);
        n += 2;
    }
    /* bit flips in a valid file must never crash; any rejection is a format error */
    {
        float d[4] = {1, 2, 3, 4};
        const char *h = "{\"__metadata__\":{\"k\":\"v\"},\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}";
        uint8_t *v = mk(h, d, 16, &len);
        for (size_t i = 0; i < len; i++)
            for (int bit = 0; bit < 8; bit++) {
                rd_err err = {0};
                rd_st_file *f;
                v[i] ^= (uint8_t)(1u << bit);
                f = rd_st_open_mem(v, len, &err);
                RD_CHECK(f || err.code == RD_ERR_FORMAT, "bit flip %zu.%d: status %d", i, bit, (int)err.code);
                rd_st_free(f);
                v[i] ^= (uint8_t)(1u << bit);
            }
        free(v);
    }
    fprintf(stderr, "  %d malformed files rejected\n", n);
}

int main(void)
{
    test_round_trip();
    test_conversions();
    test_malformed();
    return rd_test_done("test_safetensors");
}
