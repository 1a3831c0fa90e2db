#!/usr/bin/env bash
# Run the sandbox's red-team tests as an unprivileged user, as the sandbox runs inside a pod.
#
# Idempotent: creates the user once (TAROT_CI_USER, default tarot-ci), lets that one user
# traverse to the Python interpreter when it lives under a private home (pyenv under /root:
# an ACL entry on each such directory, nothing else changes), then runs
# `pytest tests/redteam` as that user with the environment CI gives (TAROT_EXPECT_ISOLATION).
# Must be started as root. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

user="${TAROT_CI_USER:-tarot-ci}"
python="$(python3 -c 'import os, sys; print(os.path.realpath(sys.executable))')"

if [ "$(id -u)" != 0 ]; then
    echo "hack/ci-unprivileged.sh: must run as root (it creates the user $user)" >&2
    exit 2
fi
if ! id -u "$user" >/dev/null 2>&1; then
    useradd --system --create-home --shell /usr/sbin/nologin "$user"
fi
if ! command -v setfacl >/dev/null 2>&1; then
    apt-get install -y -q acl >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q acl >/dev/null; }
fi
# Every directory from the interpreter (and this checkout) up to / must be traversable by the user.
for start in "$python" "$PWD/tests"; do
    dir="$(dirname "$start")"
    while [ "$dir" != / ]; do
        if ! runuser -u "$user" -- test -x "$dir"; then
            setfacl -m "u:$user:x" "$dir"
        fi
        dir="$(dirname "$dir")"
    done
done

exec runuser -u "$user" -- env -i \
    PATH="$(dirname "$python"):/usr/local/bin:/usr/bin:/bin" \
    HOME="$(getent passwd "$user" | cut -d: -f6)" \
    LANG=C.UTF-8 \
    PYTHONDONTWRITEBYTECODE=1 \
    TAROT_EXPECT_ISOLATION="${TAROT_EXPECT_ISOLATION:-}" \
    "$python" -m pytest -p no:cacheprovider -q -m "not cluster" tests/redteam "$@"
