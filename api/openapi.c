/* openapi.c — the OpenAPI 3 document served at GET /v1/openapi.json. */
#include "http.h"
#include "engine/engine.h"

#define ERR "{\"$ref\": \"#/components/responses/Error\"}"
#define IMG_BODY                                                                                             \
    "\"requestBody\": {\"required\": true, \"content\": {\"image/jpeg\": {\"schema\": {\"type\": \"string\", " \
    "\"format\": \"binary\"}}, \"image/png\": {\"schema\": {\"type\": \"string\", \"format\": \"binary\"}}, "   \
    "\"multipart/form-data\": {\"schema\": {\"type\": \"object\", \"additionalProperties\": {\"type\": "       \
    "\"string\", \"format\": \"binary\"}}}}}"
#define NAME_P "{\"name\": \"name\", \"in\": \"path\", \"required\": true, \"schema\": {\"type\": \"string\", \"pattern\": \"^[a-z0-9][a-z0-9_-]{0,63}$\"}}"
#define ID_P "{\"name\": \"id\", \"in\": \"path\", \"required\": true, \"schema\": {\"type\": \"integer\", \"minimum\": 1}}"
#define Q(n, t) "{\"name\": \"" n "\", \"in\": \"query\", \"schema\": {\"type\": \"" t "\"}}"
#define JSON_OK(d) "{\"description\": \"" d "\", \"content\": {\"application/json\": {\"schema\": {\"type\": \"object\"}}}}"

const char rd_openapi_json[] =
    "{\"openapi\": \"3.0.3\",\n"
    " \"info\": {\"title\": \"resadd\", \"version\": \"" PACKAGE_VERSION "\", \"description\": "
    "\"Few-shot anomaly detection (ResAD): register a product class from a few good images, inspect parts, fetch heatmaps. "
    "Errors are {\\\"error\\\": {\\\"code\\\", \\\"message\\\"}}. Bearer tokens with scopes admin, inspect, read.\"},\n"
    " \"components\": {\"securitySchemes\": {\"bearer\": {\"type\": \"http\", \"scheme\": \"bearer\"}},\n"
    "  \"responses\": {\"Error\": {\"description\": \"error\", \"content\": {\"application/json\": {\"schema\": "
    "{\"$ref\": \"#/components/schemas/Error\"}}}}},\n"
    "  \"schemas\": {\"Error\": {\"type\": \"object\", \"properties\": {\"error\": {\"type\": \"object\", "
    "\"properties\": {\"code\": {\"type\": \"string\"}, \"message\": {\"type\": \"string\"}}}}},\n"
    "   \"Class\": {\"type\": \"object\", \"properties\": {\"name\": {\"type\": \"string\"}, \"description\": {\"type\": "
    "\"string\"}, \"references\": {\"type\": \"integer\"}, \"threshold\": {\"type\": \"number\", \"nullable\": true}, "
    "\"threshold_source\": {\"type\": \"string\", \"enum\": [\"auto\", \"manual\"]}, \"created_at\": {\"type\": "
    "\"string\"}, \"updated_at\": {\"type\": \"string\"}, \"ready\": {\"type\": \"boolean\"}}},\n"
    "   \"Inspection\": {\"type\": \"object\", \"properties\": {\"id\": {\"type\": \"integer\"}, \"class\": {\"type\": "
    "\"string\"}, \"status\": {\"type\": \"string\", \"enum\": [\"queued\", \"done\", \"failed\"]}, \"score\": "
    "{\"type\": \"number\"}, \"threshold\": {\"type\": \"number\"}, \"anomalous\": {\"type\": \"boolean\"}, "
    "\"heatmap_url\": {\"type\": \"string\"}, \"external_id\": {\"type\": \"string\"}, \"created_at\": {\"type\": "
    "\"string\"}, \"timings_ms\": {\"type\": \"object\"}, \"scorer\": {\"type\": \"string\", \"enum\": "
    "[\"resad\", \"residual-norm\"]}, \"model_sha256\": {\"type\": \"string\", \"description\": \"the learned "
    "model file that produced the score (see /v1/model)\"}}}}},\n"
    " \"security\": [{\"bearer\": []}],\n"
    " \"paths\": {\n"
    "  \"/healthz\": {\"get\": {\"summary\": \"process alive\", \"security\": [], \"responses\": {\"200\": " JSON_OK("alive") "}}},\n"
    "  \"/readyz\": {\"get\": {\"summary\": \"model loaded, every class loaded and the database writable (not after a full disk until it has room)\", \"security\": [], \"responses\": "
    "{\"200\": " JSON_OK("ready") ", \"503\": " ERR "}}},\n"
    "  \"/metrics\": {\"get\": {\"summary\": \"Prometheus metrics (read; open when metrics_auth = off)\", \"responses\": {\"200\": "
    "{\"description\": \"text format 0.0.4\", \"content\": {\"text/plain\": {}}}}}},\n"
    "  \"/v1/openapi.json\": {\"get\": {\"summary\": \"this document\", \"security\": [], \"responses\": {\"200\": " JSON_OK("OpenAPI 3") "}}},\n"
    "  \"/v1/model\": {\"get\": {\"summary\": \"the loaded backbone, scorer and learned model (file, sha256, provenance)\", \"responses\": {\"200\": " JSON_OK("model") "}}},\n"
    "  \"/v1/classes\": {\"get\": {\"summary\": \"list classes (read)\", \"responses\": {\"200\": " JSON_OK("{classes: [Class]}") "}},\n"
    "   \"post\": {\"summary\": \"create a class (admin)\", \"requestBody\": {\"required\": true, \"content\": "
    "{\"application/json\": {\"schema\": {\"type\": \"object\", \"required\": [\"name\"], \"properties\": {\"name\": "
    "{\"type\": \"string\"}, \"description\": {\"type\": \"string\"}}}}}}, \"responses\": {\"201\": " JSON_OK("Class")
    ", \"400\": " ERR ", \"409\": " ERR "}}},\n"
    "  \"/v1/classes/{name}\": {\"parameters\": [" NAME_P "],\n"
    "   \"get\": {\"summary\": \"a class (read)\", \"responses\": {\"200\": " JSON_OK("Class") ", \"404\": " ERR "}},\n"
    "   \"patch\": {\"summary\": \"description, threshold (null = auto) (admin)\", \"requestBody\": {\"content\": "
    "{\"application/json\": {\"schema\": {\"type\": \"object\", \"properties\": {\"description\": {\"type\": "
    "\"string\"}, \"threshold\": {\"type\": \"number\", \"nullable\": true}}}}}}, \"responses\": {\"200\": " JSON_OK("Class")
    ", \"404\": " ERR "}},\n"
    "   \"delete\": {\"summary\": \"delete a class and its references (admin)\", \"responses\": {\"200\": " JSON_OK("deleted")
    ", \"404\": " ERR "}}},\n"
    "  \"/v1/classes/{name}/references\": {\"parameters\": [" NAME_P "],\n"
    "   \"get\": {\"summary\": \"list references (read)\", \"responses\": {\"200\": " JSON_OK("references") "}},\n"
    "   \"post\": {\"summary\": \"add reference images; pool and calibration rebuilt before the reply (admin)\", " IMG_BODY
    ", \"responses\": {\"201\": " JSON_OK("{added: [{id, sha256}], references}") ", \"413\": " ERR ", \"415\": " ERR
    ", \"422\": " ERR ", \"503\": " ERR ", \"507\": " ERR "}}},\n"
    "  \"/v1/classes/{name}/references/{id}\": {\"parameters\": [" NAME_P ", " ID_P "],\n"
    "   \"get\": {\"summary\": \"the stored image bytes (read)\", \"responses\": {\"200\": {\"description\": \"image\", "
    "\"content\": {\"image/jpeg\": {}, \"image/png\": {}}}, \"404\": " ERR "}},\n"
    "   \"delete\": {\"summary\": \"remove a reference (admin)\", \"responses\": {\"200\": " JSON_OK("deleted") ", \"404\": " ERR "}}},\n"
    "  \"/v1/classes/{name}/inspections\": {\"parameters\": [" NAME_P ", " Q("async", "boolean") ", " Q("external_id", "string")
    ", {\"name\": \"X-Request-Id\", \"in\": \"header\", \"schema\": {\"type\": \"string\"}}],\n"
    "   \"post\": {\"summary\": \"inspect one image (inspect)\", " IMG_BODY ", \"responses\": {\"200\": " JSON_OK("Inspection")
    ", \"202\": " JSON_OK("queued; Location: /v1/inspections/{id}") ", \"409\": " ERR ", \"413\": " ERR ", \"415\": " ERR
    ", \"422\": " ERR ", \"503\": " ERR ", \"504\": " ERR ", \"507\": " ERR "}}},\n"
    "  \"/v1/inspections\": {\"get\": {\"summary\": \"newest first, cursor-paged (read)\", \"parameters\": [" Q("class", "string")
    ", " Q("anomalous", "boolean") ", " Q("since", "string") ", " Q("after_id", "integer") ", " Q("before_id", "integer")
    ", " Q("limit", "integer") "], \"responses\": {\"200\": " JSON_OK("{inspections: [Inspection], last_id, next_before_id}") "}}},\n"
    "  \"/v1/inspections/{id}\": {\"parameters\": [" ID_P "], \"get\": {\"summary\": \"one inspection (read)\", "
    "\"responses\": {\"200\": " JSON_OK("Inspection") ", \"404\": " ERR "}}},\n"
    "  \"/v1/inspections/{id}/heatmap.png\": {\"parameters\": [" ID_P ", {\"name\": \"kind\", \"in\": \"query\", "
    "\"schema\": {\"type\": \"string\", \"enum\": [\"overlay\", \"raw\", \"mask\"]}}], \"get\": {\"summary\": "
    "\"heatmap PNG (read)\", \"responses\": {\"200\": {\"description\": \"PNG\", \"content\": {\"image/png\": {}}}, "
    "\"404\": " ERR "}}},\n"
    "  \"/v1/stats\": {\"get\": {\"summary\": \"counts, anomaly rate, latency percentiles (read)\", \"parameters\": ["
    Q("class", "string") ", " Q("since", "string") "], \"responses\": {\"200\": " JSON_OK("stats") "}}}\n"
    " }}\n";
