/* fuzz_safetensors.c — libFuzzer target for model files: the safetensors
 * reader (core/safetensors.c: length prefix, header JSON, dtypes, shapes,
 * offsets, metadata) and what is built from a file that opens — the learned
 * model's constraintor and flow importers and the backbone builders (the Keras
 * topology JSON in metadata "resadd.topology", ResNet tensor sets), and the
 * planning of a built backbone's shapes at two input sizes.
 *
 * Model files are named by the operator, not uploaded, but they are still
 * bytes from outside: a bad file must be an error with a message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backbone.h"
#include "constraintor.h"
#include "flow.h"
#include "fuzz.h"
#include "safetensors.h"

static void touch_tensors(const rd_st_file *f)
{
    size_t n = rd_st_count(f);
    for (size_t i = 0; i < n; i++) {
        const rd_st_tensor *t = rd_st_at(f, i);
        rd_err e = {0};
        if (!t || !t->name || rd_st_find(f, t->name) == NULL) abort();
        if (t->numel > (1u << 16)) continue;
        float *x = malloc((t->numel ? t->numel : 1) * sizeof(float));
        if (!x) continue;
        if (rd_st_to_f32(t, x, &e) != RD_OK && !e.msg[0]) abort();
        free(x);
    }
    (void)rd_st_meta(f, "resadd.arch");
    if (strlen(rd_st_sha256(f)) != 64) abort();
}

static void try_learned(const rd_st_file *f)
{
    rd_err e = {0};
    rd_cstr *c = rd_cstr_import(f, "level0.cstr", &e);
    rd_fuzz_note("constraintor", c ? RD_OK : e.code, &e);
    if (!c && !e.msg[0]) abort();
    rd_cstr_free(c);
    memset(&e, 0, sizeof e);
    rd_flow *fl = rd_flow_import(f, "level0.flow", &e);
    rd_fuzz_note("flow", fl ? RD_OK : e.code, &e);
    if (!fl && !e.msg[0]) abort();
    rd_flow_free(fl);
}

static void try_backbone(const rd_st_file *f)
{
    rd_err e = {0};
    rd_backbone *bb = calloc(1, sizeof *bb);
    const char *arch = rd_st_meta(f, "resadd.arch");
    rd_status st;
    if (!bb) return;
    bb->default_size = 224;
    if (arch && (!strcmp(arch, "keras") || !strcmp(arch, "mobilenet_v2")))
        st = rd_backbone_build_keras(bb, f, rd_st_meta(f, "fuzz.levels"), &e);
    else
        st = rd_backbone_build_resnet(bb, f, NULL, &e);
    rd_fuzz_note("backbone", st, &e);
    if (st != RD_OK && !e.msg[0]) abort();
    /* shapes only (no forward): a size on the stride grid and an odd one */
    for (int s = 32; st == RD_OK && s <= 33; s++) {
        size_t scratch;
        memset(&e, 0, sizeof e);
        rd_status ps = rd_graph_plan(bb->graph, s, &scratch, &e);
        rd_fuzz_note("plan", ps, &e);
        if (ps != RD_OK && !e.msg[0]) abort();
    }
    rd_backbone_free(bb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rd_err e = {0};
    rd_st_file *f = rd_st_open_mem(data, size, &e);
    rd_fuzz_note("open", f ? RD_OK : e.code, &e);
    if (!f) {
        if (!e.msg[0]) abort(); /* every failure says why */
        return 0;
    }
    touch_tensors(f);
    try_learned(f);
    try_backbone(f);
    rd_st_free(f);
    return 0;
}
