/* browser.c — image caching, the stored original, signed URLs (see browser.h). */
#include "browser.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/thumbs.h"
#include "req.h"
#include "sha256.h"

int rd_browser_signable(const char *p)
{
    return !strcmp(p, "/v1/inspections/{id}/heatmap.png") || !strcmp(p, "/v1/inspections/{id}/image") ||
           !strcmp(p, "/v1/classes/{name}/references/{id}") || !strcmp(p, "/v1/classes/{name}/roi-mask");
}

int rd_browser_sign(const unsigned char *secret, size_t n, const char *path, long long exp, const char *kind,
                    char out[RD_SIGN_HEX])
{
    char msg[1024];
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int ml = 0;
    int k = snprintf(msg, sizeof msg, "%s\n%lld\n%s", path, exp, kind ? kind : "");
    if (k < 0 || (size_t)k >= sizeof msg) return -1;
    if (!HMAC(EVP_sha256(), secret, (int)n, (const unsigned char *)msg, (size_t)k, mac, &ml) || ml != 32) return -1;
    for (unsigned i = 0; i < 32; i++) snprintf(out + 2 * i, 3, "%02x", mac[i]);
    return 0;
}

int rd_browser_reply_image(rd_req *r, const char *ctype, void *data, size_t len, int immutable)
{
    char hex[RD_SHA256_HEX], etag[40];
    if (rd_sha256_hex(data, len, hex)) return rd_reply_buf(r, 200, ctype, data, len, 1);
    snprintf(etag, sizeof etag, "\"%.32s\"", hex);
    rd_req_add_header(r, "ETag", etag);
    rd_req_add_header(r, "Cache-Control", immutable ? "private, max-age=31536000, immutable" : "private, no-cache");
    const char *inm = rd_req_header(r, "If-None-Match");
    if (inm && strstr(inm, etag)) {
        free(data);
        return rd_reply_buf(r, 304, ctype, (void *)"", 0, 0);
    }
    return rd_reply_buf(r, 200, ctype, data, len, 1);
}

int rd_browser_h_signed_url(rd_req *r)
{
    const char *path = rd_req_query(r, "path"), *ttl_s = rd_req_query(r, "ttl"), *kind = rd_req_query(r, "kind");
    rd_match m;
    char sig[RD_SIGN_HEX], url[600];
    long long ttl = 300;
    if (!path || strlen(path) > 256)
        return rd_reply_err(r, 400, "bad_request", "path= is an image route's path, e.g. /v1/inspections/7/heatmap.png");
    if (ttl_s) {
        char *end;
        ttl = strtoll(ttl_s, &end, 10);
        if (*end || end == ttl_s || ttl < 1 || ttl > RD_SIGN_TTL_MAX)
            return rd_reply_err(r, 400, "bad_request", "ttl is 1..%d seconds", RD_SIGN_TTL_MAX);
    }
    if (kind && (strlen(kind) > 32 || strspn(kind, "abcdefghijklmnopqrstuvwxyz") != strlen(kind)))
        return rd_reply_err(r, 400, "bad_request", "kind is a lower-case word (overlay, raw, mask, thumbnail)");
    rd_route_match(rd_api_routes, rd_api_nroutes, "GET", path, &m);
    if (m.kind != RD_MATCH_OK || !rd_browser_signable(m.route->pattern))
        return rd_reply_err(r, 400, "bad_request", "only image routes can be signed: heatmap.png, image, references/{id}");
    long long exp = (long long)time(NULL) + ttl;
    if (rd_req_sign(r, path, exp, kind ? kind : "", sig))
        return rd_reply_err(r, 500, "internal", "cannot sign");
    snprintf(url, sizeof url, "%s?%s%s%sexp=%lld&sig=%s", path, kind ? "kind=" : "", kind ? kind : "", kind ? "&" : "",
             exp, sig);
    return rd_reply_json(r, 200, json_pack("{s:s, s:I}", "url", url, "exp", (json_int_t)exp));
}

int rd_browser_h_image(rd_req *r)
{
    uint8_t *data;
    size_t len;
    rd_err err = {0};
    const char *kind = rd_req_query(r, "kind");
    if (kind && strcmp(kind, "original") && strcmp(kind, "thumbnail"))
        return rd_reply_err(r, 400, "bad_request", "kind is original or thumbnail");
    rd_ecode code = rd_engine_insp_image(r->e, r->id, &data, &len, &err);
    if (code == RD_E_NOTFOUND && err.msg[0] == '\0')
        return rd_reply_err(r, 404, "image_not_retained",
                            "inspection %lld has no stored image (keep_images is off, or retention removed it)",
                            (long long)r->id);
    if (code != RD_E_OK) return rd_reply_code(r, code, &err);
    if (kind && !strcmp(kind, "thumbnail")) {
        rd_png_buf t = {0};
        rd_status st = rd_thumbnail_jpeg(data, len, RD_THUMB_SIDE, &t, &err);
        free(data);
        if (st != RD_OK) return rd_reply_err(r, 500, "internal", "cannot make the thumbnail: %s", err.msg);
        return rd_browser_reply_image(r, "image/jpeg", t.data, t.len, 1);
    }
    return rd_browser_reply_image(r, "image/jpeg", data, len, 1);
}
