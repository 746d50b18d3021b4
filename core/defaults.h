/* defaults.h — where the shipped default files live: the backbone
 * (MobileNetV2, converted from npm at build time) and the learned ResAD model
 * trained on it (constraintor + flows, committed in models/).
 *
 * Each is looked up in order: its environment variable ($RESAD_BACKBONE,
 * $RESAD_MODEL); next to the running executable (`models/NAME` in a build tree,
 * one level up for tests/ and bench/, so `./resad` works uninstalled);
 * $(pkgdatadir)/NAME of the installation. */
#ifndef RD_DEFAULTS_H
#define RD_DEFAULTS_H

#include <stddef.h>

#define RD_DEFAULT_BACKBONE_FILE "mobilenet_v2.safetensors"
#define RD_DEFAULT_MODEL_FILE "resad_mobilenet_v2.safetensors"

/* Writes the first existing candidate into buf and returns buf, or NULL (buf
 * then holds the installed path, for the error message). */
const char *rd_default_backbone(char *buf, size_t len);
/* Which learned model to load, the one rule for resad, resad eval and resadd.
 * requested: a path (used as is), "none" (the residual-norm scorer), or NULL:
 * the shipped model ($RESAD_MODEL, exe-dir, pkgdatadir as above; $RESAD_MODEL=none
 * means residual-norm) when use_shipped — the caller runs the default backbone
 * and geometry it was trained for — else residual-norm.  Sets *path (NULL =
 * residual-norm; it may point into buf) and returns 0, or returns -1 when the
 * shipped model is wanted but missing (*path NULL, buf = where it was looked for). */
int rd_choose_model(const char *requested, int use_shipped, char *buf, size_t len, const char **path);

#endif
