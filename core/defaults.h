/* defaults.h — where the shipped default backbone lives.
 *
 * Looked up in order: $RESAD_BACKBONE; next to the running executable
 * (`models/mobilenet_v2.safetensors` in a build tree, so `./resad` works
 * uninstalled); $(pkgdatadir)/mobilenet_v2.safetensors of the installation. */
#ifndef RD_DEFAULTS_H
#define RD_DEFAULTS_H

#include <stddef.h>

#define RD_DEFAULT_BACKBONE_FILE "mobilenet_v2.safetensors"

/* Writes the first existing candidate into buf and returns buf, or NULL (buf
 * then holds the installed path, for the error message). */
const char *rd_default_backbone(char *buf, size_t len);

#endif
