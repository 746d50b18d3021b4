/* blas.h — making OpenBLAS run its fast kernels, and saying which it runs.
 *
 * Debian's OpenBLAS (DYNAMIC_ARCH) picks its kernel set from the CPU model
 * number at load time.  On CPUs it does not recognise (many virtual machines
 * report a generic "Intel Xeon Processor") it falls back to "Prescott" SSE3
 * kernels: sgemm runs ~8× slower than with the AVX-512 "SkylakeX" set.  The
 * choice is fixed once the library is loaded, so the only remedy is to set
 * OPENBLAS_CORETYPE and exec the program again before any work is done.
 *
 * rd_blas_autofix() does that from CPUID (with the OS's XSAVE support checked
 * via XGETBV): AVX-512 F/CD/BW/DQ/VL → SkylakeX (Cooperlake with AVX512_BF16),
 * AVX2+FMA → Haswell.  A user's own OPENBLAS_CORETYPE is never overridden;
 * RD_BLAS_NO_AUTOFIX=1 disables the fix.  Call it first thing in main(). */
#ifndef RD_BLAS_H
#define RD_BLAS_H

/* May not return (re-exec).  Returns normally when nothing needs fixing or the
 * re-exec failed (then rd_blas_describe says so). */
void rd_blas_autofix(int argc, char **argv);

/* One line for the log: "OpenBLAS 0.3.21 core SkylakeX (auto: CPU has AVX-512,
 * library chose Prescott), 2 threads". */
const char *rd_blas_describe(void);

/* Name of the kernel set in use ("SkylakeX"). */
const char *rd_blas_corename(void);

/* The kernel set CPUID says this CPU supports best, or NULL if unknown. */
const char *rd_blas_best_core(void);

void rd_blas_set_threads(int n);
int rd_blas_threads(void);

#endif
