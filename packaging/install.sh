#!/bin/sh
# Install station-agent on a Debian station (docs/operations.md, "Install"). Idempotent: run it
# again to upgrade the agent; the configuration, the key and the buffer are never touched.
#
#   sudo packaging/install.sh                         # the agent from this source tree
#   sudo packaging/install.sh --wheel station_agent-0.1.0-py3-none-any.whl
#   sudo packaging/install.sh --wheel W --wheelhouse DIR   # offline: dependencies from DIR only
#   packaging/install.sh --root DIR --skip-venv       # write into a root file system at DIR
#
# What it does: system group and user station-agent (home /var/lib/station-agent, no login
# shell, member of dialout for the serial ports); /var/lib/station-agent (0700, the buffer and
# the signing key); /etc/station-agent (0750 root:station-agent) with station-agent.toml copied
# from config/example.toml if there is none (0640); the agent in a venv at /opt/station-agent/.venv
# with /usr/local/bin/station-agent; the signing key if there is none; the hardened unit and its
# clock-wait unit under /etc/systemd/system; bash completion. It does not enable or start the
# service: edit the configuration first (or pass --enable).
set -eu

SRC=$(cd "$(dirname "$0")/.." && pwd)
ROOT=""
WHEEL=""
WHEELHOUSE=""
SKIP_VENV=0
ENABLE=0
USER_NAME=station-agent
PREFIX=/opt/station-agent
STATE=/var/lib/station-agent
CONF=/etc/station-agent
UNIT_DIR=/etc/systemd/system

die() { echo "install.sh: $*" >&2; exit 1; }
say() { echo "install.sh: $*"; }

while [ $# -gt 0 ]; do
    case "$1" in
        --root) [ $# -ge 2 ] || die "--root needs a directory"; ROOT=$(cd "$2" && pwd); shift 2 ;;
        --wheel) [ $# -ge 2 ] || die "--wheel needs a file"; WHEEL=$2; shift 2 ;;
        --wheelhouse) [ $# -ge 2 ] || die "--wheelhouse needs a directory"; WHEELHOUSE=$2; shift 2 ;;
        --skip-venv) SKIP_VENV=1; shift ;;
        --enable) ENABLE=1; shift ;;
        -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done
[ "$(id -u)" = 0 ] || die "run it as root (sudo)"
[ "$ROOT" = / ] && ROOT=""
[ -f "$SRC/systemd/station-agent.service" ] || die "$SRC/systemd/station-agent.service missing"
[ -f "$SRC/config/example.toml" ] || die "$SRC/config/example.toml missing"
[ -z "$WHEEL" ] || [ -f "$WHEEL" ] || die "--wheel $WHEEL: no such file"
[ -z "$WHEELHOUSE" ] || [ -d "$WHEELHOUSE" ] || die "--wheelhouse $WHEELHOUSE: no such directory"
[ -f "$ROOT/etc/passwd" ] && [ -f "$ROOT/etc/group" ] || die "$ROOT/etc/passwd or group missing"

# In $ROOT/etc, not through NSS: with --root the host's own users must not count.
has_group() { grep -q "^$1:" "$ROOT/etc/group"; }
has_user() { grep -q "^$1:" "$ROOT/etc/passwd"; }
in_group() { grep "^$1:" "$ROOT/etc/group" | cut -d: -f4 | tr , '\n' | grep -qx "$2"; }
with_root() { if [ -n "$ROOT" ]; then "$@" --root "$ROOT"; else "$@"; fi; }

# --- user and groups ---------------------------------------------------------------------------
has_group dialout || with_root groupadd --system dialout
if ! has_group "$USER_NAME"; then
    with_root groupadd --system "$USER_NAME"
    say "group $USER_NAME created"
fi
if ! has_user "$USER_NAME"; then
    with_root useradd --system --gid "$USER_NAME" --home-dir "$STATE" --no-create-home \
        --shell /usr/sbin/nologin --comment "station-agent daemon" "$USER_NAME"
    say "user $USER_NAME created"
fi
in_group dialout "$USER_NAME" || with_root usermod --append --groups dialout "$USER_NAME"
uid=$(grep "^$USER_NAME:" "$ROOT/etc/passwd" | cut -d: -f3)
gid=$(grep "^$USER_NAME:" "$ROOT/etc/group" | cut -d: -f3)

# --- directories and the configuration ---------------------------------------------------------
install -d -m 0755 "$ROOT/var/lib" "$ROOT/etc" "$ROOT$PREFIX" "$ROOT$UNIT_DIR"
install -d -m 0700 -o "$uid" -g "$gid" "$ROOT$STATE"
chown "$uid:$gid" "$ROOT$STATE" && chmod 0700 "$ROOT$STATE"  # also when it was there already
install -d -m 0750 -o 0 -g "$gid" "$ROOT$CONF"
chown "0:$gid" "$ROOT$CONF" && chmod 0750 "$ROOT$CONF"
if [ ! -e "$ROOT$CONF/station-agent.toml" ]; then
    install -m 0640 -o 0 -g "$gid" "$SRC/config/example.toml" "$ROOT$CONF/station-agent.toml"
    say "wrote $CONF/station-agent.toml (the example: edit it)"
else
    say "kept $CONF/station-agent.toml"
fi

# --- the unit ----------------------------------------------------------------------------------
install -m 0644 "$SRC/systemd/station-agent.service" "$ROOT$UNIT_DIR/station-agent.service"
install -m 0644 "$SRC/systemd/station-agent-clock-wait.service" \
    "$ROOT$UNIT_DIR/station-agent-clock-wait.service"

# --- the agent in its venv ---------------------------------------------------------------------
in_root() {  # in the root's own environment: none of this shell's PIP_* or PYTHON* settings
    if [ -n "$ROOT" ]; then
        chroot "$ROOT" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin \
            HOME=/root LANG=C.UTF-8 "$@"
    else "$@"; fi
}
if [ "$SKIP_VENV" = 0 ]; then
    [ -x "$ROOT/usr/bin/python3" ] || die "$ROOT/usr/bin/python3 missing: apt-get install python3-venv"
    stage=$(mktemp -d "$ROOT/tmp/station-agent-install.XXXXXX")
    trap 'rm -rf "$stage"' EXIT
    if [ -n "$WHEEL" ]; then
        cp "$WHEEL" "$stage/"
        what="/tmp/$(basename "$stage")/$(basename "$WHEEL")"
    else  # a copy: the build must not write into the source tree
        mkdir "$stage/src"
        tar -C "$SRC" --exclude=./.venv --exclude=./.git --exclude=./build \
            --exclude='*.egg-info' --exclude=__pycache__ --exclude='.*_cache' -cf - . \
            | tar -C "$stage/src" -xf -
        what="/tmp/$(basename "$stage")/src"
    fi
    pip_opts=""
    if [ -n "$WHEELHOUSE" ]; then
        mkdir "$stage/wheelhouse" && cp "$WHEELHOUSE"/*.whl "$stage/wheelhouse/"
        pip_opts="--no-index --find-links /tmp/$(basename "$stage")/wheelhouse"
    fi
    [ -x "$ROOT$PREFIX/.venv/bin/python" ] || in_root python3 -m venv "$PREFIX/.venv"
    # shellcheck disable=SC2086
    in_root "$PREFIX/.venv/bin/pip" install --quiet --disable-pip-version-check $pip_opts \
        --upgrade "$what"
    install -d -m 0755 "$ROOT/usr/local/bin"
    ln -sfn "$PREFIX/.venv/bin/station-agent" "$ROOT/usr/local/bin/station-agent"
    share=$(in_root "$PREFIX/.venv/bin/station-agent" docs --path)
    ln -sfn "$share" "$ROOT$PREFIX/share"  # the unit's Documentation= and the docs offline
    install -d -m 0755 "$ROOT/usr/share/bash-completion/completions"
    in_root "$PREFIX/.venv/bin/station-agent" completion bash \
        > "$ROOT/usr/share/bash-completion/completions/station-agent"
    if [ ! -e "$ROOT$STATE/station.key" ]; then
        in_root setpriv --reuid="$uid" --regid="$gid" --clear-groups \
            "$PREFIX/.venv/bin/station-agent" keygen --out "$STATE"
        say "send $STATE/station.jwk to the warehouse operator to register this station"
    fi
    say "installed $(in_root "$PREFIX/.venv/bin/station-agent" --version) in $PREFIX/.venv"
fi

# --- systemd -----------------------------------------------------------------------------------
if [ -z "$ROOT" ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    if [ "$ENABLE" = 1 ]; then systemctl enable --now station-agent.service; fi
elif [ "$ENABLE" = 1 ]; then
    systemctl --root="${ROOT:-/}" enable station-agent.service
fi
say "done. Next: edit $CONF/station-agent.toml, check it with"
say "  station-agent config validate $CONF/station-agent.toml"
say "then: systemctl enable --now station-agent"
