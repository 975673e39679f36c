#!/usr/bin/env bash
# Idempotent, quick set-up for webims on Debian 12 (called by `make demo`, `make test`):
#   1. apt-get installs the packages of scripts/packages.txt that are missing
#      (apt-get update only when something is missing);
#   2. creates .venv with python3 >= 3.11 (the distribution's /usr/bin/python3 first;
#      made again when another interpreter is chosen) and runs `pip install -e '.[dev]'`
#      when pyproject.toml or the interpreter changed (stamp: .venv/.webims-setup);
#   3. runs `npm install` when package.json (or package-lock.json) changed or
#      node_modules is missing (stamp: node_modules/.webims-setup).
# Environment: PYTHON=/path/to/python3.x to choose the interpreter of .venv.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
say() { printf 'setup: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

# One set-up at a time (several `make` runs may start together).
if command -v flock >/dev/null 2>&1; then
    exec 9>.setup.lock
    flock 9
fi

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root to run: $*"
    fi
}

# ---------------------------------------------------------------- 1. Debian packages
apt_packages() {
    if ! command -v dpkg-query >/dev/null 2>&1; then
        say "warning: not a Debian system; install by hand: $(grep -v '^#' scripts/packages.txt | xargs)"
        return 0
    fi
    local missing=() words pkg tok cond
    while read -r -a words || [ "${#words[@]}" -gt 0 ]; do
        [ "${#words[@]}" -eq 0 ] && continue
        [[ "${words[0]}" == \#* ]] && continue
        pkg=${words[0]}
        cond=
        for tok in "${words[@]:1}"; do
            case $tok in
                unless=*) cond=${tok#unless=} ;;
                \#*) break ;;
                *) die "scripts/packages.txt: bad option '$tok' for $pkg" ;;
            esac
        done
        if [ -n "$cond" ] && command -v "$cond" >/dev/null 2>&1; then
            continue
        fi
        if [ "$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null)" != installed ]; then
            missing+=("$pkg")
        fi
    done < scripts/packages.txt
    if [ "${#missing[@]}" -gt 0 ]; then
        say "installing Debian packages: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        as_root apt-get update -qq
        as_root apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi
}

# ---------------------------------------------------------------- 2. Python venv
python_ok() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; }

# The distribution's interpreter comes first: Debian builds it with profile-guided and
# link-time optimisation into one static binary, while an interpreter built from source
# with default options (pyenv's, for one) is slower: on this project's machine a regular
# expression search or an object allocation takes 1.7 times as long, and the gateway
# 5-9 % more CPU per registration (README, Performance, "The interpreter").
find_python() {
    local c
    for c in ${PYTHON:-} /usr/bin/python3 python3.13 python3.12 python3.11 python3; do
        if command -v "$c" >/dev/null 2>&1 && python_ok "$c"; then
            command -v "$c"
            return 0
        fi
    done
    die "no python3 >= 3.11 found (Debian 12: apt-get install python3 python3-venv)"
}

# The interpreter itself, resolved (a pyenv shim, say, names its real interpreter).
real_python() { "$1" -c 'import os, sys; print(os.path.realpath(sys.executable))'; }

# The interpreter a venv was made from (pyvenv.cfg's "executable"), resolved.
venv_base() {
    local exe
    exe=$(sed -n 's/^executable *= *//p' "$VENV/pyvenv.cfg" 2>/dev/null)
    [ -n "$exe" ] && readlink -f "$exe"
}

python_env() {
    local stamp="$VENV/.webims-setup" want
    local py
    py=$(find_python)
    # a venv made from another interpreter than the one chosen now is made again
    if ! python_ok "$VENV/bin/python" || [ "$(venv_base)" != "$(real_python "$py")" ]; then
        say "creating $VENV with $py"
        "$py" -m venv --clear "$VENV" || die "'$py -m venv' failed (Debian: apt-get install python3-venv)"
    fi
    want="$(sha256sum pyproject.toml | cut -d' ' -f1) $("$VENV/bin/python" -c 'import sys; print(sys.version)' | head -1)"
    if [ ! -x "$VENV/bin/webims" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        say "installing Python packages (pip install -e '.[dev]')"
        "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e '.[dev]'
        printf '%s\n' "$want" > "$stamp"
    fi
}

# ---------------------------------------------------------------- 3. npm packages
npm_hash() { cat package.json package-lock.json 2>/dev/null | sha256sum | cut -d' ' -f1; }

npm_env() {
    [ -f package.json ] || return 0
    command -v npm >/dev/null 2>&1 || die "npm not found (scripts/packages.txt installs Debian nodejs + npm)"
    local stamp=node_modules/.webims-setup
    if [ ! -d node_modules ] || [ "$(cat "$stamp" 2>/dev/null)" != "$(npm_hash)" ]; then
        say "installing npm packages (npm install)"
        npm install --no-audit --no-fund --loglevel=error >&2
        npm_hash > "$stamp"
    fi
}

# ---------------------------------------------------------------- 4. compiled hot path
# mypyc compiles the SIP core, transports and endpoint (webims.native.COMPILED) when a
# source changed; without a C compiler webims runs as pure Python (slower, same behaviour).
compile_env() {
    if [ -n "${WEBIMS_PURE:-}" ]; then
        "$VENV/bin/python" scripts/compile.py --clean
    else
        "$VENV/bin/python" scripts/compile.py || say "warning: compiling the hot path failed; running pure Python"
    fi
}

apt_packages
python_env
npm_env
compile_env
