/* defaults.c — locating the default backbone file (see defaults.h). */
#include "defaults.h"

#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef RD_DATADIR
#define RD_DATADIR "/usr/local/share/resadd"
#endif

const char *rd_default_backbone(char *buf, size_t len)
{
    const char *env = getenv("RESAD_BACKBONE");
    char exe[PATH_MAX];
    ssize_t n;
    if (env && *env) {
        snprintf(buf, len, "%s", env);
        return access(buf, R_OK) == 0 ? buf : NULL;
    }
    n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *dir = dirname(exe);
        /* build tree: the binary sits at the top, tests one level down */
        snprintf(buf, len, "%s/models/%s", dir, RD_DEFAULT_BACKBONE_FILE);
        if (access(buf, R_OK) == 0) return buf;
        snprintf(buf, len, "%s/../models/%s", dir, RD_DEFAULT_BACKBONE_FILE);
        if (access(buf, R_OK) == 0) return buf;
    }
    snprintf(buf, len, "%s/%s", RD_DATADIR, RD_DEFAULT_BACKBONE_FILE);
    return access(buf, R_OK) == 0 ? buf : NULL;
}
