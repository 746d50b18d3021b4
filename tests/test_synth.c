/* test_synth.c — GLASS-style anomaly synthesis (core/synth.c): the Perlin
 * field and masks, local blending (exact outside the mask, exact inside
 * against a black texture, colour matching keeps the surface's statistics),
 * and the global synthesis: the shell projection, the flow's per-row input
 * gradient against central finite differences, one ascent step against its
 * first-order prediction (sign and size), and ascent lowering the likelihood
 * compared with noise alone. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flow.h"
#include "synth.h"
#include "testutil.h"

static void test_perlin(void)
{
    const int w = 96, h = 64;
    float *a = malloc((size_t)w * h * sizeof(float)), *b = malloc((size_t)w * h * sizeof(float));
    double sum = 0, sum2 = 0, vmax = 0, worst_step = 0;
    long cnt = 0;
    for (int t = 0; t < 40; t++) {
        int p = 1 << (t % 5);
        rd_rng r1, r2;
        rd_rng_seed(&r1, 100 + t);
        rd_rng_seed(&r2, 100 + t);
        rd_synth_perlin(&r1, w, h, p, p, 0.3 * t, a);
        rd_synth_perlin(&r2, w, h, p, p, 0.3 * t, b);
        RD_CHECK(!memcmp(a, b, (size_t)w * h * sizeof(float)), "field not deterministic for a seed");
        /* the gradient noise's slope is at most ~2.5√2 per lattice cell; a cell is w/p pixels */
        double bound = 2.5 * 1.4142135623730951 * p / (double)h;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                double v = a[y * w + x];
                sum += v, sum2 += v * v, cnt++;
                vmax = fmax(vmax, fabs(v));
                if (x + 1 < w) worst_step = fmax(worst_step, fabs(a[y * w + x + 1] - v) / bound);
                if (y + 1 < h) worst_step = fmax(worst_step, fabs(a[(y + 1) * w + x] - v) / bound);
            }
    }
    double mean = sum / cnt, sd = sqrt(sum2 / cnt - mean * mean);
    printf("perlin: mean %.3f sd %.3f max |v| %.3f worst step/bound %.2f\n", mean, sd, vmax, worst_step);
    RD_CHECK(vmax <= 1.0001, "Perlin field beyond [-1, 1]: %g", vmax);
    RD_CHECK(fabs(mean) < 0.05, "Perlin mean %g", mean);
    RD_CHECK(sd > 0.15 && sd < 0.6, "Perlin sd %g", sd);
    RD_CHECK(worst_step <= 1.0, "Perlin field not smooth: step %g of the bound", worst_step);

    /* masks: area within the bounds, both kinds of scale occur */
    rd_synth_cfg c;
    rd_synth_cfg_default(&c);
    uint8_t *m = malloc((size_t)w * h);
    float *scr = malloc(2 * (size_t)w * h * sizeof(float));
    rd_rng r;
    rd_rng_seed(&r, 7);
    double amin = 1, amax = 0;
    for (int t = 0; t < 60; t++) {
        int tries = rd_synth_mask(&c, &r, w, h, m, scr);
        size_t area = 0;
        for (int i = 0; i < w * h; i++) area += m[i];
        double s = (double)area / (w * h);
        RD_CHECK(tries >= 1, "no mask");
        RD_CHECK(s >= c.min_area && s <= c.max_area, "mask area %g outside [%g, %g]", s, c.min_area, c.max_area);
        amin = fmin(amin, s), amax = fmax(amax, s);
    }
    printf("masks: area share %.3f..%.3f\n", amin, amax);
    RD_CHECK(amax - amin > 0.1, "mask areas hardly vary: %g..%g", amin, amax);
    free(m);
    free(scr);
    free(a);
    free(b);
}

static void fill_image(rd_image *im, int w, int h, unsigned seed, int constant)
{
    im->w = w;
    im->h = h;
    im->rgb = malloc((size_t)w * h * 3);
    float *tmp = malloc((size_t)w * h * 3 * sizeof(float));
    rd_fill_uniform(tmp, (size_t)w * h * 3, seed, 30, 220);
    for (size_t i = 0; i < (size_t)w * h * 3; i++)
        im->rgb[i] = (uint8_t)(constant >= 0 ? constant : (int)tmp[i] + (int)(40 * sin(i * 0.001)));
    free(tmp);
}

static void test_local(void)
{
    const int w = 80, h = 72;
    rd_synth_cfg c;
    rd_err err;
    rd_image base = {0}, black = {0}, noise = {0};
    uint8_t *mask = malloc((size_t)w * h), *mask2 = malloc((size_t)w * h);
    fill_image(&base, w, h, 3, -1);
    fill_image(&black, 50, 40, 4, 0);
    fill_image(&noise, 64, 64, 5, -1);
    for (size_t i = 0; i < (size_t)64 * 64 * 3; i++) noise.rgb[i] = (uint8_t)(i % 3 == 0 ? 250 : noise.rgb[i] / 4);

    /* black foreign texture, no matching: inside = round(β·base) exactly, outside = base */
    rd_synth_cfg_default(&c);
    c.p_self = 0;
    c.p_match = 0;
    long bad_out = 0, bad_in = 0, inside = 0;
    for (int t = 0; t < 10; t++) {
        rd_rng r;
        rd_rng_seed(&r, 50 + t);
        rd_image out = {0};
        rd_synth_info inf;
        RD_CHECK(rd_synth_local(&c, &r, &base, &black, &out, mask, &inf, &err) == RD_OK, "%s", err.msg);
        if (!out.rgb) continue;
        RD_CHECK(!inf.self && !inf.matched, "drew self %d matched %d with both shares 0", inf.self, inf.matched);
        RD_CHECK(inf.beta >= c.beta_lo && inf.beta <= c.beta_hi, "beta %g", inf.beta);
        for (size_t i = 0; i < (size_t)w * h; i++)
            for (int k = 0; k < 3; k++) {
                int o = out.rgb[i * 3 + k], b = base.rgb[i * 3 + k];
                if (!mask[i]) bad_out += o != b;
                else bad_in += o != (int)lrint(inf.beta * b);
            }
        for (size_t i = 0; i < (size_t)w * h; i++) inside += mask[i];
        /* the same seed gives the same anomaly */
        rd_rng_seed(&r, 50 + t);
        rd_image again = {0};
        RD_CHECK(rd_synth_local(&c, &r, &base, &black, &again, mask2, NULL, &err) == RD_OK, "%s", err.msg);
        RD_CHECK(again.rgb && !memcmp(again.rgb, out.rgb, (size_t)w * h * 3) && !memcmp(mask, mask2, (size_t)w * h),
                 "not deterministic");
        rd_image_release(&again);
        rd_image_release(&out);
    }
    printf("local, black texture: %ld inside pixels, %ld wrong outside, %ld wrong inside\n", inside, bad_out,
           bad_in);
    RD_CHECK(inside > 0 && bad_out == 0 && bad_in == 0, "blend is not base*(1-m) + m*beta*base for a black texture");

    /* colour matching: a loud foreign texture ends with the surface's mean inside the mask */
    double worst_matched = 0, least_unmatched = 1e9;
    for (int matched = 0; matched < 2; matched++) {
        c.p_match = (float)matched;
        for (int t = 0; t < 8; t++) {
            rd_rng r;
            rd_rng_seed(&r, 90 + t);
            rd_image out = {0};
            rd_synth_info inf;
            RD_CHECK(rd_synth_local(&c, &r, &base, &noise, &out, mask, &inf, &err) == RD_OK, "%s", err.msg);
            if (!out.rgb) continue;
            RD_CHECK(inf.matched == matched, "matched %d", inf.matched);
            if (matched) RD_CHECK(inf.beta >= c.match_lo && inf.beta <= c.match_hi, "matched beta %g", inf.beta);
            double sb[3] = {0}, so[3] = {0};
            long n = 0;
            for (size_t i = 0; i < (size_t)w * h; i++) {
                if (!mask[i]) continue;
                n++;
                for (int k = 0; k < 3; k++) sb[k] += base.rgb[i * 3 + k], so[k] += out.rgb[i * 3 + k];
            }
            double d = 0;
            for (int k = 0; k < 3; k++) d = fmax(d, fabs(so[k] - sb[k]) / n);
            if (matched) worst_matched = fmax(worst_matched, d);
            else least_unmatched = fmin(least_unmatched, d);
            rd_image_release(&out);
        }
    }
    printf("local, colour matching: worst mean shift matched %.2f, least unmatched %.2f (0..255)\n", worst_matched,
           least_unmatched);
    RD_CHECK(worst_matched < 2.0, "colour-matched anomaly moved the mean by %g", worst_matched);
    RD_CHECK(least_unmatched > 10.0, "an unmatched loud texture barely moved the mean: %g", least_unmatched);

    /* bad input is an error, not a crash */
    rd_image tiny = {0};
    rd_image out = {0};
    rd_rng r;
    rd_rng_seed(&r, 1);
    RD_CHECK(rd_synth_local(&c, &r, &tiny, NULL, &out, mask, NULL, &err) == RD_ERR_ARG, "empty base accepted");
    rd_image_release(&base);
    rd_image_release(&black);
    rd_image_release(&noise);
    free(mask);
    free(mask2);
}

/* A small flow with non-trivial parameters (as test_learned_grad). */
static rd_flow *small_flow(int c, int k, unsigned seed)
{
    rd_flow_cfg cfg;
    rd_err err;
    rd_flow_cfg_default(&cfg, c, k);
    cfg.p = 8;
    cfg.hid = 12;
    rd_flow *f = rd_flow_new(&cfg, seed, &err);
    RD_CHECK(f, "flow_new: %s", err.msg);
    if (!f) return NULL;
    for (int b = 0; b < k; b++) {
        rd_flow_block bl = rd_flow_block_view(f, f->params, b);
        for (size_t i = 0; i < (size_t)2 * f->ca * f->cfg.hid; i++) bl.w2[i] *= 4.0f;
        float tmp[64];
        rd_fill_uniform(tmp, 2 * (size_t)c, seed + 7 * b, -1.0f, 1.0f);
        for (int j = 0; j < c; j++) {
            bl.gamma[j] += tmp[j];
            bl.offset[j] = 0.3f * tmp[c + j];
        }
    }
    return f;
}

static void test_global(void)
{
    const int c = 7, mh = 4, mw = 5;
    const size_t n = 16;
    rd_err err;
    rd_flow *f = small_flow(c, 3, 31);
    if (!f) return;
    rd_flow_ws *ws = rd_flow_ws_new(f, n, mh, mw, &err);
    RD_CHECK(ws, "ws: %s", err.msg);
    float *x = malloc(n * c * sizeof(float)), *g = malloc(n * c * sizeof(float)), *g0 = malloc(n * c * sizeof(float));
    float *grad = malloc(f->nparams * sizeof(float)), *lpc = malloc(n * sizeof(float)), *dlpc = malloc(n * sizeof(float));
    float *dx = malloc(n * c * sizeof(float)), *lx = malloc(n * sizeof(float)), *lg = malloc(n * sizeof(float));
    int32_t py[16], px[16];
    rd_fill_uniform(x, n * c, 5, -1.5f, 1.5f);
    for (size_t i = 0; i < n; i++) {
        py[i] = (int32_t)(i * 3 % mh);
        px[i] = (int32_t)(i * 7 % mw);
    }
    double u = rd_gas_unit(x, n, c);
    RD_CHECK(u > 0.5 && u < 5, "unit %g", u);

    /* projection: norms clamped into the shell, directions kept */
    for (size_t i = 0; i < n * c; i++) g[i] = x[i] + (float)((i % 5) * 0.2 - 0.4) * (float)(1 + i % 3);
    memcpy(g0, g, n * c * sizeof(float));
    rd_gas_project(g, x, n, c, 0.8, 1.2);
    double worst = 0, dirw = 0;
    for (size_t i = 0; i < n; i++) {
        double q = 0, q0 = 0, dot = 0;
        for (int j = 0; j < c; j++) {
            double d = g[i * c + j] - x[i * c + j], d0 = g0[i * c + j] - x[i * c + j];
            q += d * d, q0 += d0 * d0, dot += d * d0;
        }
        double nm = sqrt(q), want = fmin(fmax(sqrt(q0), 0.8), 1.2);
        worst = fmax(worst, fabs(nm - want));
        if (q0 > 0) dirw = fmax(dirw, 1 - dot / (nm * sqrt(q0)));
    }
    printf("project: worst norm error %.2e, direction change %.2e\n", worst, dirw);
    RD_CHECK(worst < 1e-5 && dirw < 1e-6, "projection: norm error %g, direction change %g", worst, dirw);

    /* the flow's per-row input gradient (dlpc = 1 per row: rows are independent)
     * against central differences of lpc_i along coordinates and along it */
    RD_CHECK(rd_flow_train_forward(f, ws, x, py, px, n, lx, &err) == RD_OK, "%s", err.msg);
    for (size_t i = 0; i < n; i++) dlpc[i] = 1;
    memset(grad, 0, f->nparams * sizeof(float));
    RD_CHECK(rd_flow_train_backward(f, ws, dlpc, grad, dx, &err) == RD_OK, "%s", err.msg);
    double fd_worst = 0, fd_scale = 0;
    const double eps = 1e-3; /* float forward: truncation ~eps², round-off ~1e-7/eps */
    for (size_t i = 0; i < n; i++) {
        for (int j = 0; j < c; j += 2) {
            memcpy(g, x, n * c * sizeof(float));
            g[i * c + j] = (float)(x[i * c + j] + eps);
            RD_CHECK(rd_flow_train_forward(f, ws, g, py, px, n, lpc, &err) == RD_OK, "%s", err.msg);
            double lp = lpc[i];
            g[i * c + j] = (float)(x[i * c + j] - eps);
            RD_CHECK(rd_flow_train_forward(f, ws, g, py, px, n, lpc, &err) == RD_OK, "%s", err.msg);
            double fd = (lp - lpc[i]) / (2 * eps);
            fd_worst = fmax(fd_worst, fabs(fd - dx[i * c + j]));
            fd_scale = fmax(fd_scale, fabs(fd));
        }
    }
    printf("input gradient of lpc vs central differences: err %.2e (scale %.2e)\n", fd_worst / fd_scale, fd_scale);
    RD_CHECK(fd_worst / fd_scale < 2e-3, "per-row input gradient: %g", fd_worst / fd_scale);

    /* one ascent step from x itself (shell [0, big]: no noise, no clamp):
     * lpc changes by -eta*u*|grad| to first order */
    rd_gas_cfg gc = {1, 0.0f, 100.0f, 0.002f};
    rd_rng r;
    rd_rng_seed(&r, 3);
    RD_CHECK(rd_gas_synth(&gc, &r, f, ws, x, py, px, n, u, g, grad, lpc, dlpc, dx, &err) == RD_OK, "%s", err.msg);
    RD_CHECK(rd_flow_train_forward(f, ws, x, py, px, n, lx, &err) == RD_OK, "%s", err.msg);
    for (size_t i = 0; i < n; i++) dlpc[i] = 1;
    memset(grad, 0, f->nparams * sizeof(float));
    RD_CHECK(rd_flow_train_backward(f, ws, dlpc, grad, dx, &err) == RD_OK, "%s", err.msg);
    double rworst = 0;
    for (size_t i = 0; i < n; i++) {
        double q = 0;
        for (int j = 0; j < c; j++) q += (double)dx[i * c + j] * dx[i * c + j];
        lg[i] = (float)(-gc.eta * u * sqrt(q)); /* predicted change */
    }
    RD_CHECK(rd_flow_train_forward(f, ws, g, py, px, n, lpc, &err) == RD_OK, "%s", err.msg);
    for (size_t i = 0; i < n; i++) rworst = fmax(rworst, fabs((lpc[i] - lx[i]) / lg[i] - 1));
    printf("one ascent step: worst |actual/predicted - 1| = %.3f\n", rworst);
    RD_CHECK(rworst < 0.05, "an ascent step does not lower lpc as predicted: %g", rworst);

    /* full synthesis: every row in the shell; ascent lowers lpc vs the same noise without it */
    rd_gas_cfg_default(&gc);
    gc.eta = 0.2f;
    rd_rng_seed(&r, 9);
    RD_CHECK(rd_gas_synth(&gc, &r, f, ws, x, py, px, n, u, g, grad, lpc, dlpc, dx, &err) == RD_OK, "%s", err.msg);
    double shell_worst = 0;
    for (size_t i = 0; i < n; i++) {
        double q = 0;
        for (int j = 0; j < c; j++) q += ((double)g[i * c + j] - x[i * c + j]) * ((double)g[i * c + j] - x[i * c + j]);
        double nm = sqrt(q) / u;
        shell_worst = fmax(shell_worst, fmax(gc.r1 - nm, nm - gc.r2));
    }
    printf("shell [%.2f, %.2f]: worst violation %.2e (units of u)\n", gc.r1, gc.r2, shell_worst);
    RD_CHECK(shell_worst < 1e-5, "rows outside the shell: %g", shell_worst);
    rd_gas_cfg g0c = gc;
    g0c.steps = 0;
    rd_rng_seed(&r, 9);
    RD_CHECK(rd_gas_synth(&g0c, &r, f, ws, x, py, px, n, u, g0, grad, lpc, dlpc, dx, &err) == RD_OK, "%s", err.msg);
    RD_CHECK(rd_flow_train_forward(f, ws, g, py, px, n, lg, &err) == RD_OK, "%s", err.msg);
    RD_CHECK(rd_flow_train_forward(f, ws, g0, py, px, n, lpc, &err) == RD_OK, "%s", err.msg);
    RD_CHECK(rd_flow_train_forward(f, ws, x, py, px, n, lx, &err) == RD_OK, "%s", err.msg);
    double mx = 0, mn = 0, ma = 0;
    for (size_t i = 0; i < n; i++) mx += lx[i] / n, mn += lpc[i] / n, ma += lg[i] / n;
    printf("mean lpc: normal %.4f, noise only %.4f, noise + %d ascent steps %.4f\n", mx, mn, gc.steps, ma);
    RD_CHECK(ma < mn, "gradient ascent did not lower the likelihood (%g vs %g with noise only)", ma, mn);
    RD_CHECK(rd_gas_synth(&(rd_gas_cfg){1, 2.0f, 1.0f, 0.1f}, &r, f, ws, x, py, px, n, u, g, grad, lpc, dlpc, dx,
                          &err) == RD_ERR_ARG,
             "r1 > r2 accepted");
    rd_flow_ws_free(ws);
    rd_flow_free(f);
    free(x), free(g), free(g0), free(grad), free(lpc), free(dlpc), free(dx), free(lx), free(lg);
}

int main(void)
{
    test_perlin();
    test_local();
    test_global();
    return rd_test_done("test_synth");
}
