/* blas.c — OpenBLAS kernel-set detection and fix by re-exec (see blas.h).
 *
 * This is the one place in core/ that touches process state (environment and
 * exec): it must run before anything else, so it lives apart from the maths. */
#include "blas.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define RD_HAVE_CPUID 1
#endif

#define REEXEC_MARK "RD_BLAS_REEXECED"

static char describe_buf[256];
static char describe_how[160];

#ifdef RD_HAVE_CPUID
static unsigned long long xgetbv0(void)
{
    unsigned int lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}
#endif

const char *rd_blas_best_core(void)
{
#ifdef RD_HAVE_CPUID
    unsigned int a, b, c, d, max;
    int osxsave, avx2, fma, avx512, bf16 = 0;
    unsigned long long xcr0;
    max = __get_cpuid_max(0, NULL);
    if (max < 7) return NULL;
    __cpuid_count(1, 0, a, b, c, d);
    osxsave = (c >> 27) & 1;
    fma = (c >> 12) & 1;
    if (!osxsave) return NULL;
    xcr0 = xgetbv0();
    if ((xcr0 & 0x6) != 0x6) return NULL; /* OS does not save YMM state */
    __cpuid_count(7, 0, a, b, c, d);
    avx2 = (b >> 5) & 1;
    /* F(16) DQ(17) CD(28) BW(30) VL(31) */
    avx512 = ((b >> 16) & 1) && ((b >> 17) & 1) && ((b >> 28) & 1) && ((b >> 30) & 1) &&
             ((b >> 31) & 1) && ((xcr0 & 0xe0) == 0xe0);
    if (avx512 && max >= 7) {
        __cpuid_count(7, 1, a, b, c, d);
        bf16 = (a >> 5) & 1;
    }
    if (avx512) return bf16 ? "Cooperlake" : "SkylakeX";
    if (avx2 && fma) return "Haswell";
#endif
    return NULL;
}

const char *rd_blas_corename(void)
{
    const char *n = openblas_get_corename();
    return n ? n : "unknown";
}

/* Kernel sets that are at least as good as `best`: nothing to fix then. */
static int core_is_good_enough(const char *cur, const char *best)
{
    static const char *const strong[] = {"SkylakeX", "Cooperlake", "SapphireRapids", NULL};
    if (!strcasecmp(cur, best)) return 1;
    if (!strcasecmp(best, "Haswell"))
        return !strcasecmp(cur, "Zen") || !strcasecmp(cur, "SkylakeX") ||
               !strcasecmp(cur, "Cooperlake") || !strcasecmp(cur, "SapphireRapids");
    for (int i = 0; strong[i]; i++)
        if (!strcasecmp(cur, strong[i])) return 1;
    return 0;
}

static void set_describe(const char *how) { snprintf(describe_how, sizeof describe_how, "%s", how); }

void rd_blas_autofix(int argc, char **argv)
{
    const char *cur = rd_blas_corename();
    const char *best = rd_blas_best_core();
    const char *user = getenv("OPENBLAS_CORETYPE");
    const char *was = getenv(REEXEC_MARK);
    char how[160];
    (void)argc;

    if (was) {
        snprintf(how, sizeof how, "auto: library chose %s on this CPU; re-executed with OPENBLAS_CORETYPE=%s", was, cur);
        unsetenv(REEXEC_MARK);
        unsetenv("OPENBLAS_CORETYPE"); /* do not leak into child processes' choices */
        set_describe(how);
        return;
    }
    if (user && *user) {
        snprintf(how, sizeof how, "OPENBLAS_CORETYPE=%s set by the user", user);
        set_describe(how);
        return;
    }
    if (getenv("RD_BLAS_NO_AUTOFIX") || !best || core_is_good_enough(cur, best)) {
        snprintf(how, sizeof how, "library's own choice%s%s", best ? "; CPU supports " : "",
                 best ? best : "");
        set_describe(how);
        return;
    }
    if (setenv("OPENBLAS_CORETYPE", best, 1) == 0 && setenv(REEXEC_MARK, cur, 1) == 0) {
        fflush(NULL);
        execv("/proc/self/exe", argv);
    }
    unsetenv("OPENBLAS_CORETYPE");
    unsetenv(REEXEC_MARK);
    snprintf(how, sizeof how, "SLOW: CPU supports %s but re-exec failed", best);
    set_describe(how);
}

const char *rd_blas_describe(void)
{
    if (!describe_how[0]) set_describe("autofix not run");
    snprintf(describe_buf, sizeof describe_buf, "OpenBLAS core %s (%s), %d thread(s)", rd_blas_corename(),
             describe_how, openblas_get_num_threads());
    return describe_buf;
}

void rd_blas_set_threads(int n)
{
    if (n < 1) n = 1;
    openblas_set_num_threads(n);
}

int rd_blas_threads(void) { return openblas_get_num_threads(); }
