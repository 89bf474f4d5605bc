# Sourced by scripts/run and scripts/test: system packages and the virtualenv, installed only
# when missing. Debian/Ubuntu: installs with apt-get as root (or sudo); elsewhere says what to install.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

_apt_install() {
    local packages=("$@")
    [ ${#packages[@]} -eq 0 ] && return 0
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
            echo "vidgen: please install: apt-get install ${packages[*]}" >&2; exit 1
        fi
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "vidgen: please install: ${packages[*]} (with your system's package manager)" >&2; exit 1
    fi
    echo "vidgen: installing ${packages[*]} ..." >&2
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
}

# need_system_packages KIND: "run" needs ffmpeg; "test" also a browser, MariaDB and CJK fonts.
need_system_packages() {
    local missing=()
    command -v ffmpeg >/dev/null 2>&1 || missing+=(ffmpeg)
    python3 -m venv --help >/dev/null 2>&1 && python3 -c "import ensurepip" 2>/dev/null || missing+=(python3-venv)
    if [ "$1" = test ]; then
        [ -x /usr/bin/chromium ] || missing+=(chromium)
        { command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ]; } || missing+=(mariadb-server)
        fc-list 2>/dev/null | grep -i "Noto Sans CJK" >/dev/null || missing+=(fonts-noto-cjk)
    fi
    _apt_install "${missing[@]}"
}

# ensure_venv EXTRA: a .venv with vidgen installed editable (EXTRA: "" or "[test]").
ensure_venv() {
    local extra="$1"
    local stamp=".venv/.installed${extra}"
    if [ ! -x .venv/bin/python ]; then
        python3 -m venv .venv
    fi
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
        echo "vidgen: installing Python packages into .venv ..." >&2
        # The build backend's notes are noise on success; the log is shown when it fails.
        if ! { .venv/bin/python -m pip install -q --upgrade pip &&
               .venv/bin/python -m pip install -q -e ".${extra}"; } >.venv/install.log 2>&1; then
            cat .venv/install.log >&2
            echo "vidgen: installing the Python packages failed (log above)" >&2
            exit 1
        fi
        touch "$stamp"
    fi
}
