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
/* The same for the shipped learned model.  $RESAD_MODEL=none → NULL with buf
 * set to "none" (the caller then scores with residual-norm). */
const char *rd_default_model(char *buf, size_t len);

#endif
