#!/usr/bin/env bash
# test_manpages.sh — the man pages say what the programs do.
#   resad(1):  every --option of `resad --help`, `resad eval --help` and
#              `resad train --help`, and no other; a section per subcommand
#              (the list `resad` itself prints for an unknown command).
#   resadd(8): every --option of `resadd --help` and no other; every
#              `token` subcommand; the default config path resadd prints.
#   both:      the version in .TH is what --version prints, and --version
#              names the default backbone's and learned model's sha256;
#              `mandoc -Tlint` reports nothing (skip, 77, without mandoc).
set -u
top_builddir=$(cd "${top_builddir:-.}" && pwd)
B=$top_builddir
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
opts() { grep -o -e '--[a-z][a-z0-9-]*' | sort -u; }
man_opts() { grep -v '^\.\\"' "$1" | sed 's/\\-/-/g' | opts; }

check_opts() { # page, help text on stdin
    local page=$1 help man
    help=$(opts)
    man=$(man_opts "$page")
    for o in $(comm -23 <(echo "$help") <(echo "$man")); do fail "$(basename "$page"): $o of --help is not documented"; done
    for o in $(comm -13 <(echo "$help") <(echo "$man")); do fail "$(basename "$page"): $o is not in --help"; done
}

for f in "$B/man/resad.1" "$B/man/resadd.8" "$B/resad" "$B/resadd"; do
    [ -e "$f" ] || { echo "FAIL: $f not built"; exit 1; }
done

# resad(1)
# (process substitution, not a pipe: check_opts must count failures in this shell)
check_opts "$B/man/resad.1" < <({ "$B/resad" --help; "$B/resad" eval --help; "$B/resad" train --help; } 2>&1)
cmds=$("$B/resad" no-such-command 2>&1 | sed -n 's/.*(commands: \([^;)]*\).*/\1/p' | tr -d ,)
[ -n "$cmds" ] || fail "resad does not list its commands"
for c in $cmds; do grep -qx "\.SS $c" "$B/man/resad.1" || fail "resad.1: no section for 'resad $c'"; done

# resadd(8)
help=$("$B/resadd" --help 2>&1)
check_opts "$B/man/resadd.8" <<<"$help"
for t in $(echo "$help" | grep -o 'token [a-z]*' | sort -u | cut -d' ' -f2); do
    grep -q "token $t" "$B/man/resadd.8" || fail "resadd.8: 'resadd token $t' not documented"
done
conf=$(echo "$help" | sed -n 's/.*--config PATH .*(default \([^;]*\);.*/\1/p')
[ -n "$conf" ] || fail "resadd --help names no default config path"
[ -n "$conf" ] && { grep -qF "$conf" "$B/man/resadd.8" || fail "resadd.8 does not name the default config $conf"; }

# --version: the version of the pages, and the default files' hashes
bb=$(sha256sum "$B/models/mobilenet_v2.safetensors" | cut -d' ' -f1)
lm=$(sha256sum "$B/models/resad_mobilenet_v2.safetensors" | cut -d' ' -f1)
for p in resad:1 resadd:8; do
    prog=${p%:*}
    v=$("$B/$prog" --version 2>&1)
    want=$(sed -n 's/^\.TH [A-Z]* [0-9] [^ ]* "resadd \([^"]*\)".*/\1/p' "$B/man/$prog.${p#*:}")
    [ "$(echo "$v" | head -1)" = "$prog $want" ] || fail "$prog --version says '$(echo "$v" | head -1)', $prog.${p#*:} says $want"
    echo "$v" | grep -q "$bb" || fail "$prog --version does not name the backbone's sha256 $bb"
    echo "$v" | grep -q "$lm" || fail "$prog --version does not name the learned model's sha256 $lm"
done

if command -v mandoc >/dev/null 2>&1; then
    for page in "$B/man/resad.1" "$B/man/resadd.8"; do
        out=$(mandoc -Tlint -W all "$page" 2>&1) || true
        [ -z "$out" ] || fail "mandoc -Tlint $(basename "$page"): $out"
    done
else
    [ $fails -eq 0 ] && { echo "SKIP: mandoc not installed (apt-get install mandoc); drift checks passed, lint not run"; exit 77; }
fi
[ $fails -eq 0 ] && echo "man pages match --help, --version and the defaults; mandoc -Tlint clean"
[ $fails -eq 0 ]
