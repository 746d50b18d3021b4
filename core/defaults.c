/* defaults.c — locating the shipped default files (see defaults.h). */
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

static const char *find_default(const char *envname, const char *file, char *buf, size_t len)
{
    const char *env = getenv(envname);
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
        snprintf(buf, len, "%s/models/%s", dir, file);
        if (access(buf, R_OK) == 0) return buf;
        snprintf(buf, len, "%s/../models/%s", dir, file);
        if (access(buf, R_OK) == 0) return buf;
    }
    snprintf(buf, len, "%s/%s", RD_DATADIR, file);
    return access(buf, R_OK) == 0 ? buf : NULL;
}

const char *rd_default_backbone(char *buf, size_t len)
{
    return find_default("RESAD_BACKBONE", RD_DEFAULT_BACKBONE_FILE, buf, len);
}

int rd_choose_model(const char *requested, int use_shipped, char *buf, size_t len, const char **path)
{
    const char *env = getenv("RESAD_MODEL");
    *path = NULL;
    if (requested) {
        if (strcmp(requested, "none")) *path = requested;
        return 0;
    }
    if (!use_shipped || (env && !strcmp(env, "none"))) return 0;
    *path = find_default("RESAD_MODEL", RD_DEFAULT_MODEL_FILE, buf, len);
    return *path ? 0 : -1;
}
