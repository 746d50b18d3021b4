/* simline.h — `resad eval --simulate-line` (cli/simline.c). */
#ifndef RD_CLI_SIMLINE_H
#define RD_CLI_SIMLINE_H

/* argv[1] == "eval" and one argument is --simulate-line.  Returns the exit status. */
int rd_cli_simline(int argc, char **argv);

#endif
