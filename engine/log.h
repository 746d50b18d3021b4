/* log.h — resadd's log: one line per event on stderr (or a file), each line
 * prefixed with a syslog priority "<N>" that journald understands, then a
 * level word, so it reads well both under systemd and on a terminal.  Lines
 * written to a log_file start with a UTC timestamp instead of the prefix. */
#ifndef RD_LOG_H
#define RD_LOG_H

#include "status.h"

enum { RD_LOG_ERR = 3, RD_LOG_WARN = 4, RD_LOG_INFO = 6, RD_LOG_DEBUG = 7 };

/* path NULL or "" = stderr.  Returns 0 or -1 (file not openable). */
int rd_log_open(const char *path, int level);
/* SIGHUP: reopen the file (log rotation). */
int rd_log_reopen(void);
int rd_log_level_parse(const char *s);
void rd_log(int level, const char *fmt, ...) RD_PRINTF(2, 3);

#endif
