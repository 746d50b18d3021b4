/* backbone.h — the frozen feature extractor, loaded from a safetensors file.
 *
 * Architectures:
 *   resnet18 / resnet50 / wide_resnet50_2 — torchvision (and timm) tensor names
 *     ("conv1.weight", "layer1.0.bn1.running_mean", ...), as written by a plain
 *     state_dict export; the arch is taken from metadata "resadd.arch" or
 *     recognized from the tensor shapes.  Levels: layer1, layer2, layer3.
 *     Input: ImageNet mean/std.
 *   mobilenet_v2 (embedded default) — written by tools/nsfwjs-convert.mjs:
 *     metadata "resadd.arch" = "keras", "resadd.topology" = Keras layer list
 *     (JSON), "resadd.levels" = comma-separated layer names; tensors under their
 *     Keras weight names ("Conv1/kernel", "bn_Conv1/gamma", ...).  Input scaled
 *     to [-1, 1] (mean 0.5, std 0.5).
 *   inception_v3 (optional) — the same converter (--model inception_v3) and
 *     builder; adds Keras Concatenate and TF "same" padding at stride 2.
 *
 * A backbone is immutable after load and shared between workers. */
#ifndef RD_BACKBONE_H
#define RD_BACKBONE_H

#include "graph.h"
#include "status.h"

typedef struct rd_backbone {
    char arch[32];       /* "resnet18", "wide_resnet50_2", "mobilenet_v2", ... */
    char sha256[65];     /* of the file: keys stored features and trained models */
    float mean[3], std[3];
    int default_size;    /* S the weights were trained at (224) */
    rd_graph *graph;
    char level_names[RD_MAX_LEVELS][64];
} rd_backbone;

/* levels_csv: NULL = the file's/arch's default levels, else layer names
 * ("layer1,layer2,layer3", "block_2_add,block_5_add,block_9_add"). */
rd_backbone *rd_backbone_load(const char *path, const char *levels_csv, rd_err *err);
void rd_backbone_free(rd_backbone *bb);

/* Internal builders, one per family (used by rd_backbone_load). */
struct rd_st_file;
rd_status rd_backbone_build_resnet(rd_backbone *bb, const struct rd_st_file *f,
                                   const char *levels_csv, rd_err *err) RD_WARN_UNUSED;
rd_status rd_backbone_build_keras(rd_backbone *bb, const struct rd_st_file *f,
                                  const char *levels_csv, rd_err *err) RD_WARN_UNUSED;

#endif
