/* args.h — numeric command-line values for every resad subcommand, checked
 * whole: the entire string must be the number ("8x", "" and "1e400" are not),
 * finite, and inside [lo, hi].  Each returns 0 and stores it, or −1 and leaves
 * out as it was; the caller names the option and its range in the message. */
#ifndef RD_CLI_ARGS_H
#define RD_CLI_ARGS_H

int rd_arg_int(const char *s, long lo, long hi, int *out);
int rd_arg_double(const char *s, double lo, double hi, double *out);
int rd_arg_float(const char *s, double lo, double hi, float *out);

#endif
