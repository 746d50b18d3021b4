/* browser.h — what a browser needs of the API: image replies with ETag and
 * Cache-Control (304 on If-None-Match), the stored original of an inspection
 * (GET /v1/inspections/{id}/image), and short-lived signed URLs so an
 * <img src> can show an image with auth on: GET /v1/signed-url?path=P&ttl=S
 * (read scope) answers P?exp=E&sig=HEX, where HEX is
 * HMAC-SHA256(the daemon's secret, P "\n" E "\n" kind) and E a unix time; the
 * daemon accepts exp+sig in place of the Bearer token on GET image routes
 * only, until E.  The secret is random per process (a restart voids URLs). */
#ifndef RD_API_BROWSER_H
#define RD_API_BROWSER_H

#include <stddef.h>

struct rd_req;
#define RD_SIGN_HEX 65
#define RD_SIGN_TTL_MAX 86400

/* 1 if pattern (a route row's) is a GET image route that signed URLs may open. */
int rd_browser_signable(const char *pattern);
/* hex HMAC-SHA256(secret, path "\n" exp "\n" kind); 0 on success. */
int rd_browser_sign(const unsigned char *secret, size_t n, const char *path, long long exp, const char *kind,
                    char out[RD_SIGN_HEX]);
/* Replies 200 with an image and its ETag (sha256 of the bytes), or 304 when
 * If-None-Match has it.  immutable: the URL's bytes never change. */
int rd_browser_reply_image(struct rd_req *r, const char *ctype, void *data, size_t len, int immutable);
/* route handlers */
int rd_browser_h_signed_url(struct rd_req *r);
int rd_browser_h_image(struct rd_req *r);

#endif
