#!/usr/bin/env bash
# tests/layers.sh — the layer rule, checked on the sources: every #include "..."
# of a file resolves to a folder at the same or a lower layer
#   core (0) <- sql (1) <- engine (2) <- api (3) <- daemon (4)
# (core includes nothing outside core), and api/ calls no SQL and no store
# function (no sqlite3_*, no rd_store_*).  Prints each violation.
set -u
: "${top_srcdir:=$(cd "$(dirname "$0")/.." && pwd)}"
cd "$top_srcdir" || exit 1
rank() { case $1 in core) echo 0;; sql) echo 1;; engine) echo 2;; api) echo 3;; daemon) echo 4;; *) echo -1;; esac; }
bad=0; n=0
for dir in core sql engine api daemon; do
    r=$(rank "$dir")
    for f in "$dir"/*.c "$dir"/*.h; do
        [ -f "$f" ] || continue
        while read -r inc; do
            n=$((n + 1))
            # resolve like the compiler: the file's folder, then -I core, then -I top
            if [[ $inc == ../* ]]; then tgt=${inc#../}; tgt=${tgt%%/*}
            elif [ -f "$dir/$inc" ]; then tgt=$dir
            elif [ -f "core/$inc" ]; then tgt=core
            elif [ -f "$inc" ]; then tgt=${inc%%/*}
            else tgt=generated; fi   # e.g. migrations.inc from the build folder
            [ "$tgt" = generated ] && continue
            tr=$(rank "$tgt")
            if [ "$tr" -lt 0 ] || [ "$tr" -gt "$r" ] || { [ "$dir" = core ] && [ "$tgt" != core ]; }; then
                echo "layer violation: $f includes \"$inc\" ($tgt is above $dir)"; bad=$((bad + 1))
            fi
        done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f")
    done
done
if grep -nE 'sqlite3_|rd_store_' api/*.c api/*.h; then
    echo "api/ must not call SQL or the store (lines above)"; bad=$((bad + 1))
fi
if grep -nE '\bstrtok\(' api/*.c engine/*.c sql/*.c daemon/*.c; then
    echo "strtok keeps hidden state shared by threads (lines above)"; bad=$((bad + 1))
fi
echo "$n includes checked, $bad violation(s)"
[ "$bad" -eq 0 ]
