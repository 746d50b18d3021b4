/* fuzz_labels.c — libFuzzer target for the label routes' JSON bodies
 * (api/labels.h): the first byte picks PUT /v1/inspections/{id}/label
 * {"label", "join_pool"} (bit 0 clear) or PUT /v1/classes/{name}/threshold-policy
 * {"threshold_policy", "learn_from_labels"}; the rest is the body.  Checks the
 * contract: a success has label good|defect and join -1/0/1 (never 1 with
 * defect), or a canonical policy that parses again and learn -1/0/1 with at
 * least one of them given; a failure has an error word and a message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/labels.h"
#include "fuzz.h"
#include "threshold.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rd_body_err e = {0};
    if (size < 1) return 0;
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    if (!(data[0] & 1)) {
        char label[8];
        int join = 7;
        if (rd_body_label(body, len, label, &join, &e) == 0) {
            if (strcmp(label, "good") && strcmp(label, "defect")) abort();
            if (join < -1 || join > 1 || (join == 1 && strcmp(label, "good"))) abort();
        } else if (!e.code || !e.msg[0]) {
            abort();
        }
    } else {
        char policy[32];
        int learn = 7;
        if (rd_body_label_policy(body, len, policy, &learn, &e) == 0) {
            rd_tpolicy p;
            if (learn < -1 || learn > 1 || (!policy[0] && learn < 0)) abort();
            if (policy[0] && rd_tpolicy_parse(policy, &p, NULL) != RD_OK) abort();
        } else if (!e.code || !e.msg[0]) {
            abort();
        }
    }
    return 0;
}
