# Sourced by hack/images.sh and hack/load-images.sh: where things are, the images' registry and version, and
# `need` (a missing tool fails naming the script that installs it).
#
# Environment: TAROT_CACHE (default ~/.cache/tarot), TAROT_IMAGE_REGISTRY (default localhost/tarot),
# PYTHON (default python3: reads the version from pyproject.toml).
HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "${HACK_DIR}/.." && pwd)"
TAROT_CACHE="${TAROT_CACHE:-${HOME}/.cache/tarot}"
REGISTRY="${TAROT_IMAGE_REGISTRY:-localhost/tarot}"
PYTHON="${PYTHON:-python3}"
VERSION="$("${PYTHON}" -c 'import tomllib; print(tomllib.load(open("'"${REPO}"'/pyproject.toml", "rb"))["project"]["version"])')"

need() { command -v "$1" >/dev/null || { echo "error: '$1' is not installed (bash hack/install-system-packages.sh)" >&2; exit 1; }; }
