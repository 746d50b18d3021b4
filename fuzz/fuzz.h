/* fuzz.h — what the libFuzzer targets share: the entry point's prototype and
 * rd_fuzz_note, which prints an input's outcome when RD_FUZZ_VERBOSE is set
 * (to see why a seed or a reproducer is refused; silent otherwise). */
#ifndef RD_FUZZ_H
#define RD_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "status.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static inline void rd_fuzz_note(const char *what, rd_status st, const rd_err *e)
{
    static int verbose = -1;
    if (verbose < 0) verbose = getenv("RD_FUZZ_VERBOSE") != NULL;
    if (verbose) fprintf(stderr, "%s: %s\n", what, st == RD_OK ? "ok" : e->msg);
}

#endif
