#!/usr/bin/env bash
# tests/daemon_openapi_lint.sh — the OpenAPI document the daemon serves, checked
# by real validators from npm: @apidevtools/swagger-cli validate and
# @redocly/cli lint (recommended rules), both with zero errors.  The tools
# (pinned) go into $top_builddir/.cache/npm-openapi ($RD_NPM_CACHE if set),
# never into the source tree.  Skips (77), saying why, when node/npm are
# missing or the npm registry cannot be reached.
. "$(dirname "$0")/daemon_lib.sh"
SWAGGER_CLI_VERSION=4.0.4
REDOCLY_VERSION=2.77.0
cache=${RD_NPM_CACHE:-$(cd "$top_builddir" && pwd)/.cache}/npm-openapi
export npm_config_fetch_retries=0 npm_config_fetch_timeout=30000 npm_config_update_notifier=false
skip() { echo "SKIP: $1: the OpenAPI document was not checked by swagger-cli and redocly"; exit 77; }
command -v node >/dev/null 2>&1 || skip "node not found"
command -v npm >/dev/null 2>&1 || skip "npm not found"
if ! grep -qs "\"version\": \"$REDOCLY_VERSION\"" "$cache/node_modules/@redocly/cli/package.json" ||
   ! grep -qs "\"version\": \"$SWAGGER_CLI_VERSION\"" "$cache/node_modules/@apidevtools/swagger-cli/package.json"; then
    mkdir -p "$cache"
    echo "installing swagger-cli@$SWAGGER_CLI_VERSION and @redocly/cli@$REDOCLY_VERSION into $cache"
    npm install --no-audit --no-fund --prefix "$cache" "@apidevtools/swagger-cli@$SWAGGER_CLI_VERSION" \
        "@redocly/cli@$REDOCLY_VERSION" >"$T/npm.log" 2>&1 || { tail -5 "$T/npm.log"; skip "npm install failed (registry unreachable?)"; }
fi
start_resadd
curl -fs "$URL/v1/openapi.json" -o "$T/openapi.json" || fail "GET /v1/openapi.json"
stop_resadd
check "swagger-cli validate" "$cache/node_modules/.bin/swagger-cli" validate "$T/openapi.json"
# redocly exits non-zero on any error; warnings are printed but allowed
REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true "$cache/node_modules/.bin/redocly" lint \
    --format stylish "$T/openapi.json" >"$T/redocly.log" 2>&1
rc=$?
grep -v -e '^ *[║╔╚]' "$T/redocly.log" | tail -40
check "redocly lint: zero errors" [ "$rc" -eq 0 ]
[ "$FAILS" -eq 0 ] || exit 1
echo "PASS"
