/* safetensors.c — reader and writer of the safetensors format (see safetensors.h).
 *
 * The reader keeps the whole file in one heap buffer: tensors point into it, so
 * a loaded file costs its size once and nothing more.  Everything in the header
 * comes from outside and is checked before it is used: the header length
 * against the file, every dtype/shape/offset triple against the data section
 * (with overflow-checked products), and the ranges against each other (no two
 * tensors may share bytes).  The writer produces only F32 tensors, writes a
 * temp file next to the target, fsyncs it and renames it into place so a crash
 * never leaves a half-written model behind. */
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sha256.h"

/* Largest file we read into memory: far above any backbone we support. */
#define RD_ST_MAX_FILE ((size_t)8 << 30)
/* Largest number of tensors in one file. */
#define RD_ST_MAX_TENSORS 100000

struct rd_st_file {
    uint8_t *buf;
    size_t len;
    rd_st_tensor *ts;
    size_t n;
    char **meta; /* key, value, key, value, ... (2·nmeta strings) */
    size_t nmeta;
    char sha[RD_SHA256_HEX];
};

static const struct {
    const char *name;
    size_t size;
} dtypes[RD_ST_DTYPE_COUNT] = {
    [RD_ST_F32] = {"F32", 4}, [RD_ST_F16] = {"F16", 2}, [RD_ST_BF16] = {"BF16", 2},
    [RD_ST_F64] = {"F64", 8}, [RD_ST_I64] = {"I64", 8}, [RD_ST_I32] = {"I32", 4},
    [RD_ST_I16] = {"I16", 2}, [RD_ST_I8] = {"I8", 1},   [RD_ST_U8] = {"U8", 1},
    [RD_ST_BOOL] = {"BOOL", 1},
};

void rd_st_free(rd_st_file *f)
{
    if (!f) return;
    for (size_t i = 0; i < f->n; i++) free((char *)f->ts[i].name);
    free(f->ts);
    for (size_t i = 0; i < 2 * f->nmeta; i++) free(f->meta[i]);
    free(f->meta);
    free(f->buf);
    free(f);
}

static int cmp_begin(const void *a, const void *b)
{
    const rd_st_tensor *x = *(const rd_st_tensor *const *)a, *y = *(const rd_st_tensor *const *)b;
    return (x->data > y->data) - (x->data < y->data);
}

static rd_status parse_metadata(rd_st_file *f, json_t *obj, rd_err *err)
{
    const char *key;
    json_t *val;
    size_t i = 0;
    if (!json_is_object(obj)) return rd_err_set(err, RD_ERR_FORMAT, "__metadata__ is not an object");
    f->meta = calloc(2 * json_object_size(obj) + 1, sizeof *f->meta);
    if (!f->meta) return rd_err_set(err, RD_ERR_NOMEM, "out of memory for metadata");
    json_object_foreach(obj, key, val) {
        if (!json_is_string(val))
            return rd_err_set(err, RD_ERR_FORMAT, "__metadata__ value of \"%.80s\" is not a string", key);
        f->meta[2 * i] = strdup(key);
        f->meta[2 * i + 1] = strdup(json_string_value(val));
        f->nmeta = ++i;
        if (!f->meta[2 * i - 2] || !f->meta[2 * i - 1])
            return rd_err_set(err, RD_ERR_NOMEM, "out of memory for metadata");
    }
    return RD_OK;
}

static rd_status parse_tensor(rd_st_tensor *t, const char *name, json_t *obj, const uint8_t *data,
                              size_t data_len, rd_err *err)
{
    json_t *dt = json_object_get(obj, "dtype"), *shape = json_object_get(obj, "shape");
    json_t *offs = json_object_get(obj, "data_offsets");
    size_t numel = 1, nbytes, begin, end;
    int d;

    if (!json_is_object(obj)) return rd_err_set(err, RD_ERR_FORMAT, "tensor \"%.80s\": entry is not an object", name);
    if (!json_is_string(dt)) return rd_err_set(err, RD_ERR_FORMAT, "tensor \"%.80s\": dtype missing or not a string", name);
    for (d = 0; d < RD_ST_DTYPE_COUNT; d++)
        if (strcmp(json_string_value(dt), dtypes[d].name) == 0) break;
    if (d == RD_ST_DTYPE_COUNT)
        return rd_err_set(err, RD_ERR_FORMAT, "tensor \"%.80s\": unknown dtype \"%.20s\"", name, json_string_value(dt));
    t->dtype = (rd_st_dtype)d;

    if (!json_is_array(shape)) return rd_err_set(err, RD_ERR_FORMAT, "tensor \"%.80s\": shape missing or not an array", name);
    if (json_array_size(shape) > RD_ST_MAX_DIMS)
        return rd_err_set(err, RD_ERR_FORMAT, "tensor \"%.80s\": %zu dimensions, at most %d supported", name,
                          json_array_size(shape), RD_ST_MAX_DIMS);
    t->ndim = (int)json_array_size(shape);
    for (int i = 0; i < t->ndim; i++) {
        json_t *v = json_array_get(shape, (size_t)i);
        json_int_t x;
        if (!json_is_integer(v)) return rd_err_set(err, RD_ERR_FORMAT, "tensor \"%.80s\": shape entry %d is not an integer", name, i);
        x = json_integer_value(v);
        if (x < 0) return rd_err_set(err, RD_ERR_FORMAT, "tensor \"%.80s\": negative dimension %lld", name, (long long)x);
        if ((unsigned long long)x > (size_t)-1 || !rd_mul_size(numel, (size_t)x, &numel))
            return rd_err_set(err, RD_ERR_FORMAT, "tensor \"%.80s\": shape too large", name);
        t->shape[i] = (int64_t)x;
    }
    if (!rd_mul_size(numel, dtypes[d].size, &nbytes))
        return rd_err_set(err, RD_ERR_FORMAT, "tensor \"%.80s\": shape too large", name);

    if (!json_is_array(offs) || json_array_size(offs) != 2 || !json_is_integer(json_array_get(offs, 0)) ||
        !json_is_integer(json_array_get(offs, 1)))
        return rd_err_set(err, RD_ERR_FORMAT, "tensor \"%.80s\": data_offsets is not [begin, end]", name);
    {
        json_int_t b = json_integer_value(json_array_get(offs, 0)), e = json_integer_value(json_array_get(offs, 1));
        if (b < 0 || e < b || (unsigned long long)e > data_len)
            return rd_err_set(err, RD_ERR_FORMAT, "tensor \"%.80s\": data_offsets [%lld, %lld] outside the %zu data bytes",
                              name, (long long)b, (long long)e, data_len);
        begin = (size_t)b;
        end = (size_t)e;
    }
    if (end - begin != nbytes)
        return rd_err_set(err, RD_ERR_FORMAT, "tensor \"%.80s\": %zu data bytes, shape and dtype %s need %zu", name,
                          end - begin, dtypes[d].name, nbytes);
    t->numel = numel;
    t->nbytes = nbytes;
    t->data = data + begin;
    t->name = strdup(name);
    if (!t->name) return rd_err_set(err, RD_ERR_NOMEM, "out of memory");
    return RD_OK;
}

/* Takes ownership of buf (freed on failure too). */
static rd_st_file *parse(uint8_t *buf, size_t len, rd_err *err)
{
    rd_st_file *f = calloc(1, sizeof *f);
    json_t *root = NULL;
    json_error_t jerr;
    const rd_st_tensor **sorted = NULL;
    uint64_t hlen = 0;
    const char *key;
    json_t *val;
    rd_status st = RD_OK;

    if (!f) {
        free(buf);
        rd_err_set(err, RD_ERR_NOMEM, "out of memory");
        return NULL;
    }
    f->buf = buf;
    f->len = len;
    if (len < 8) {
        st = rd_err_set(err, RD_ERR_FORMAT, "file of %zu bytes is too short for a safetensors header", len);
        goto fail;
    }
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | buf[i];
    if (hlen < 2 || hlen > RD_ST_MAX_HEADER || hlen > len - 8) {
        st = rd_err_set(err, RD_ERR_FORMAT, "header length %llu is invalid for a file of %zu bytes",
                        (unsigned long long)hlen, len);
        goto fail;
    }
    root = json_loadb((const char *)buf + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        st = rd_err_set(err, RD_ERR_FORMAT, "header is not valid JSON: %s (at byte %d)", jerr.text, jerr.position);
        goto fail;
    }
    if (!json_is_object(root)) {
        st = rd_err_set(err, RD_ERR_FORMAT, "header is not a JSON object");
        goto fail;
    }
    if (json_object_size(root) > RD_ST_MAX_TENSORS) {
        st = rd_err_set(err, RD_ERR_LIMIT, "header lists %zu tensors, over the %d limit", json_object_size(root),
                        RD_ST_MAX_TENSORS);
        goto fail;
    }
    f->ts = calloc(json_object_size(root) + 1, sizeof *f->ts);
    if (!f->ts) {
        st = rd_err_set(err, RD_ERR_NOMEM, "out of memory");
        goto fail;
    }
    json_object_foreach(root, key, val) {
        if (strcmp(key, "__metadata__") == 0) {
            st = parse_metadata(f, val, err);
        } else {
            st = parse_tensor(&f->ts[f->n], key, val, buf + 8 + hlen, len - 8 - (size_t)hlen, err);
            if (f->ts[f->n].name) f->n++;
        }
        if (st != RD_OK) goto fail;
    }
    /* No two tensors may share bytes (empty tensors share nothing). */
    sorted = malloc((f->n + 1) * sizeof *sorted);
    if (!sorted) {
        st = rd_err_set(err, RD_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < f->n; i++) sorted[i] = &f->ts[i];
    qsort(sorted, f->n, sizeof *sorted, cmp_begin);
    {
        const rd_st_tensor *prev = NULL;
        for (size_t i = 0; i < f->n; i++) {
            if (sorted[i]->nbytes == 0) continue;
            if (prev && sorted[i]->data < prev->data + prev->nbytes) {
                st = rd_err_set(err, RD_ERR_FORMAT, "tensors \"%.80s\" and \"%.80s\" overlap", prev->name,
                                sorted[i]->name);
                goto fail;
            }
            prev = sorted[i];
        }
    }
    if (rd_sha256_hex(buf, len, f->sha) != 0) {
        st = rd_err_set(err, RD_ERR_INTERNAL, "SHA-256 failed");
        goto fail;
    }
    free(sorted);
    json_decref(root);
    return f;
fail:
    (void)st;
    free(sorted);
    json_decref(root);
    rd_st_free(f);
    return NULL;
}

rd_st_file *rd_st_open_mem(const void *buf, size_t len, rd_err *err)
{
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy) {
        rd_err_set(err, RD_ERR_NOMEM, "out of memory for %zu bytes", len);
        return NULL;
    }
    if (len) memcpy(copy, buf, len);
    return parse(copy, len, err);
}

rd_st_file *rd_st_open(const char *path, rd_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    uint8_t *buf = NULL;
    size_t len, got = 0;
    rd_st_file *f;

    if (fd < 0) {
        rd_err_set(err, RD_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        rd_err_set(err, RD_ERR_IO, "%s: not a regular file", path);
        goto fail;
    }
    if ((unsigned long long)sb.st_size > RD_ST_MAX_FILE) {
        rd_err_set(err, RD_ERR_LIMIT, "%s: %lld bytes, over the %zu byte limit", path, (long long)sb.st_size,
                   RD_ST_MAX_FILE);
        goto fail;
    }
    len = (size_t)sb.st_size;
    buf = malloc(len ? len : 1);
    if (!buf) {
        rd_err_set(err, RD_ERR_NOMEM, "%s: out of memory for %zu bytes", path, len);
        goto fail;
    }
    while (got < len) {
        ssize_t r = read(fd, buf + got, len - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            rd_err_set(err, RD_ERR_IO, "%s: read failed: %s", path, r < 0 ? strerror(errno) : "file shrank");
            goto fail;
        }
        got += (size_t)r;
    }
    close(fd);
    f = parse(buf, len, err);
    if (!f) rd_err_prefix(err, "%s", path);
    return f;
fail:
    free(buf);
    close(fd);
    return NULL;
}

size_t rd_st_count(const rd_st_file *f) { return f ? f->n : 0; }

uint64_t rd_st_values(const rd_st_file *f)
{
    uint64_t n = 0; /* no overflow: the tensors do not overlap and F32..BOOL are >= 1 byte */
    for (size_t i = 0; f && i < f->n; i++) n += f->ts[i].numel;
    return n;
}

const rd_st_tensor *rd_st_at(const rd_st_file *f, size_t i) { return f && i < f->n ? &f->ts[i] : NULL; }

const rd_st_tensor *rd_st_find(const rd_st_file *f, const char *name)
{
    for (size_t i = 0; f && i < f->n; i++)
        if (strcmp(f->ts[i].name, name) == 0) return &f->ts[i];
    return NULL;
}

const char *rd_st_meta(const rd_st_file *f, const char *key)
{
    for (size_t i = 0; f && i < f->nmeta; i++)
        if (strcmp(f->meta[2 * i], key) == 0) return f->meta[2 * i + 1];
    return NULL;
}

const char *rd_st_sha256(const rd_st_file *f) { return f->sha; }

static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
    float out;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else if (exp == 0) {
        /* zero or subnormal: mant · 2^-24 */
        out = (float)mant * (1.0f / 16777216.0f);
        return sign ? -out : out;
    } else {
        bits = sign | ((exp + 112) << 23) | (mant << 13);
    }
    memcpy(&out, &bits, sizeof out);
    return out;
}

rd_status rd_st_to_f32(const rd_st_tensor *t, float *out, rd_err *err)
{
    const uint8_t *p = t->data;
    switch (t->dtype) {
    case RD_ST_F32:
        if (t->nbytes) memcpy(out, p, t->nbytes);
        return RD_OK;
    case RD_ST_F16:
        for (size_t i = 0; i < t->numel; i++) out[i] = half_to_float((uint16_t)(p[2 * i] | (p[2 * i + 1] << 8)));
        return RD_OK;
    case RD_ST_BF16:
        for (size_t i = 0; i < t->numel; i++) {
            uint32_t bits = ((uint32_t)p[2 * i] << 16) | ((uint32_t)p[2 * i + 1] << 24);
            memcpy(&out[i], &bits, sizeof bits);
        }
        return RD_OK;
    case RD_ST_F64:
        for (size_t i = 0; i < t->numel; i++) {
            double d;
            memcpy(&d, p + 8 * i, sizeof d);
            out[i] = (float)d;
        }
        return RD_OK;
    default:
        return rd_err_set(err, RD_ERR_UNSUPPORTED, "tensor \"%.80s\": dtype %s is not a float type", t->name,
                          dtypes[t->dtype].name);
    }
}

static void shape_str(char *buf, size_t cap, int ndim, const int64_t *shape)
{
    size_t used = 0;
    buf[0] = '\0';
    used += (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && used < cap; i++)
        used += (size_t)snprintf(buf + used, cap - used, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (used < cap) snprintf(buf + used, cap - used, "]");
}

const rd_st_tensor *rd_st_expect(const rd_st_file *f, const char *name, int ndim, const int64_t *want, rd_err *err)
{
    const rd_st_tensor *t = rd_st_find(f, name);
    int ok;
    if (!t) {
        rd_err_set(err, RD_ERR_FORMAT, "tensor \"%.100s\" is missing", name);
        return NULL;
    }
    ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = want[i] < 0 || want[i] == t->shape[i];
    if (!ok) {
        char a[160], b[160];
        shape_str(a, sizeof a, t->ndim, t->shape);
        shape_str(b, sizeof b, ndim, want);
        rd_err_set(err, RD_ERR_FORMAT, "tensor \"%.100s\" has shape %s, expected %s", name, a, b);
        return NULL;
    }
    if (t->dtype != RD_ST_F32 && t->dtype != RD_ST_F16 && t->dtype != RD_ST_BF16 && t->dtype != RD_ST_F64) {
        rd_err_set(err, RD_ERR_UNSUPPORTED, "tensor \"%.100s\": dtype %s is not a float type", name,
                   dtypes[t->dtype].name);
        return NULL;
    }
    return t;
}

static rd_status write_all(int fd, const void *p, size_t n, const char *path, rd_err *err)
{
    const uint8_t *b = p;
    while (n) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return rd_err_set(err, RD_ERR_IO, "%s: write failed: %s", path, w < 0 ? strerror(errno) : "no progress");
        b += w;
        n -= (size_t)w;
    }
    return RD_OK;
}

rd_status rd_st_write(const char *path, const rd_st_out_tensor *ts, size_t n, const char *const *meta_kv,
                      rd_err *err)
{
    json_t *root = json_object(), *meta = NULL;
    char *hdr = NULL, *tmp = NULL;
    size_t off = 0, hlen, padded, *sizes = NULL;
    int fd = -1;
    rd_status st = RD_OK;
    uint8_t lenbuf[8];

    if (!root || !(sizes = calloc(n + 1, sizeof *sizes))) {
        st = rd_err_set(err, RD_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        size_t numel = 1;
        json_t *e, *shape;
        if (!ts[i].name || !*ts[i].name || strcmp(ts[i].name, "__metadata__") == 0 || ts[i].ndim < 0 ||
            ts[i].ndim > RD_ST_MAX_DIMS) {
            st = rd_err_set(err, RD_ERR_ARG, "tensor %zu: invalid name or rank", i);
            goto out;
        }
        if (json_object_get(root, ts[i].name)) {
            st = rd_err_set(err, RD_ERR_ARG, "tensor \"%.80s\" given twice", ts[i].name);
            goto out;
        }
        shape = json_array();
        e = json_object();
        if (!shape || !e) {
            json_decref(shape);
            json_decref(e);
            st = rd_err_set(err, RD_ERR_NOMEM, "out of memory");
            goto out;
        }
        for (int d = 0; d < ts[i].ndim; d++) {
            if (ts[i].shape[d] < 0 || !rd_mul_size(numel, (size_t)ts[i].shape[d], &numel)) st = RD_ERR_ARG;
            json_array_append_new(shape, json_integer(ts[i].shape[d]));
        }
        if (st != RD_OK || !rd_mul_size(numel, sizeof(float), &sizes[i]) || !rd_add_size(off, sizes[i], &hlen)) {
            json_decref(shape);
            json_decref(e);
            st = rd_err_set(err, RD_ERR_ARG, "tensor \"%.80s\": invalid shape", ts[i].name);
            goto out;
        }
        json_object_set_new(e, "dtype", json_string("F32"));
        json_object_set_new(e, "shape", shape);
        json_object_set_new(e, "data_offsets", json_pack("[II]", (json_int_t)off, (json_int_t)(off + sizes[i])));
        off += sizes[i];
        if (json_object_set_new(root, ts[i].name, e) != 0) {
            st = rd_err_set(err, RD_ERR_NOMEM, "out of memory");
            goto out;
        }
    }
    if (meta_kv && meta_kv[0]) {
        meta = json_object();
        if (!meta) {
            st = rd_err_set(err, RD_ERR_NOMEM, "out of memory");
            goto out;
        }
        json_object_set_new(root, "__metadata__", meta);
        for (size_t i = 0; meta_kv[i]; i += 2) {
            if (!meta_kv[i + 1]) {
                st = rd_err_set(err, RD_ERR_ARG, "metadata key \"%.80s\" has no value", meta_kv[i]);
                goto out;
            }
            json_object_set_new(meta, meta_kv[i], json_string(meta_kv[i + 1]));
        }
    }
    hdr = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
    if (!hdr) {
        st = rd_err_set(err, RD_ERR_NOMEM, "cannot serialize the header");
        goto out;
    }
    hlen = strlen(hdr);
    padded = (hlen + 7) / 8 * 8; /* keep tensor data 8-byte aligned */
    for (int i = 0; i < 8; i++) lenbuf[i] = (uint8_t)((uint64_t)padded >> (8 * i));

    tmp = malloc(strlen(path) + 16);
    if (!tmp) {
        st = rd_err_set(err, RD_ERR_NOMEM, "out of memory");
        goto out;
    }
    sprintf(tmp, "%s.tmp.XXXXXX", path);
    fd = mkstemp(tmp);
    if (fd < 0) {
        st = rd_err_set(err, RD_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
        free(tmp);
        tmp = NULL;
        goto out;
    }
    if ((st = write_all(fd, lenbuf, 8, tmp, err)) != RD_OK) goto out;
    if ((st = write_all(fd, hdr, hlen, tmp, err)) != RD_OK) goto out;
    if ((st = write_all(fd, "        ", padded - hlen, tmp, err)) != RD_OK) goto out;
    for (size_t i = 0; i < n; i++)
        if ((st = write_all(fd, ts[i].data, sizes[i], tmp, err)) != RD_OK) goto out;
    if (fsync(fd) != 0) {
        st = rd_err_set(err, RD_ERR_IO, "%s: fsync failed: %s", tmp, strerror(errno));
        goto out;
    }
    if (close(fd) != 0) {
        fd = -1;
        st = rd_err_set(err, RD_ERR_IO, "%s: close failed: %s", tmp, strerror(errno));
        goto out;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        st = rd_err_set(err, RD_ERR_IO, "%s: cannot rename into place: %s", path, strerror(errno));
        goto out;
    }
    free(tmp);
    tmp = NULL;
out:
    if (fd >= 0) close(fd);
    if (tmp) {
        unlink(tmp);
        free(tmp);
    }
    free(hdr);
    free(sizes);
    json_decref(root);
    return st;
}
