/* safetensors.h — reading and writing the safetensors tensor file format.
 *
 * Format: u64 little-endian header length N, N bytes of JSON
 *   {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
 *    "__metadata__": {"key": "string value", ...}}
 * then the raw little-endian tensor bytes; offsets are relative to the end of
 * the header.  The header is parsed with jansson and every field is validated
 * (dtype known, shape product × dtype size == end − begin, offsets inside the
 * file, no overlap, N bounded): a malformed file is an RD_ERR_FORMAT with a
 * message, never a crash.
 *
 * Ownership: rd_st_open returns a heap object the caller frees with
 * rd_st_free; rd_st_tensor pointers and data stay valid until then.
 * Thread-safety: a loaded file is read-only and may be shared. */
#ifndef RD_SAFETENSORS_H
#define RD_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define RD_ST_MAX_DIMS 8
#define RD_ST_MAX_HEADER (100u << 20) /* 100 MiB of JSON is already absurd */

typedef enum rd_st_dtype {
    RD_ST_F32, RD_ST_F16, RD_ST_BF16, RD_ST_F64, RD_ST_I64, RD_ST_I32, RD_ST_I16, RD_ST_I8,
    RD_ST_U8, RD_ST_BOOL, RD_ST_DTYPE_COUNT
} rd_st_dtype;

typedef struct rd_st_tensor {
    const char *name;
    rd_st_dtype dtype;
    int ndim;
    int64_t shape[RD_ST_MAX_DIMS];
    size_t numel;
    const uint8_t *data; /* nbytes raw little-endian bytes, not necessarily aligned */
    size_t nbytes;
} rd_st_tensor;

typedef struct rd_st_file rd_st_file;

/* Reads and validates a whole file. */
rd_st_file *rd_st_open(const char *path, rd_err *err);
/* Same from a memory buffer (copied).  Used by tests and fuzzing. */
rd_st_file *rd_st_open_mem(const void *buf, size_t len, rd_err *err);
void rd_st_free(rd_st_file *f);

size_t rd_st_count(const rd_st_file *f);
/* Elements of all tensors together: what a file can fill, so an importer can
 * refuse a configuration the file cannot back before allocating for it. */
uint64_t rd_st_values(const rd_st_file *f);
const rd_st_tensor *rd_st_at(const rd_st_file *f, size_t i);
/* NULL when absent. */
const rd_st_tensor *rd_st_find(const rd_st_file *f, const char *name);
/* __metadata__ value or NULL. */
const char *rd_st_meta(const rd_st_file *f, const char *key);
/* Hex SHA-256 of the whole file (64 chars + NUL); identifies a model. */
const char *rd_st_sha256(const rd_st_file *f);

/* Copies tensor t to a float array of t->numel elements, converting F16/BF16/F64
 * (other dtypes are RD_ERR_UNSUPPORTED).  Checks the shape first:
 * want_ndim/want_shape (-1 in a dim = any) and fails with a message naming t. */
rd_status rd_st_to_f32(const rd_st_tensor *t, float *out, rd_err *err) RD_WARN_UNUSED;
/* Finds name, checks its shape against want (ndim entries, -1 = any), returns it. */
const rd_st_tensor *rd_st_expect(const rd_st_file *f, const char *name, int ndim,
                                 const int64_t *want, rd_err *err);

/* Writer: a list of F32 tensors plus string metadata, written atomically
 * (temp file + rename). */
typedef struct rd_st_out_tensor {
    const char *name;
    int ndim;
    int64_t shape[RD_ST_MAX_DIMS];
    const float *data;
} rd_st_out_tensor;

rd_status rd_st_write(const char *path, const rd_st_out_tensor *ts, size_t n,
                      const char *const *meta_kv /* key, value, ..., NULL */, rd_err *err) RD_WARN_UNUSED;

#endif
