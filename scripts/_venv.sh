# Shared by scripts/test and scripts/lab: create .venv once, then (re)install the
# project with the extra named by $1 whenever pyproject.toml is newer than the last install.
VENV="${SMTPLAB_VENV:-.venv}"

ensure_venv() {
    local extra="$1" stamp
    if [ ! -x "$VENV/bin/python" ]; then
        echo "smtplab: creating $VENV" >&2
        python3 -m venv "$VENV"
    fi
    stamp="$VENV/.installed-$extra"
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
        echo "smtplab: installing smtplab[$extra] into $VENV (first run takes a few minutes)" >&2
        "$VENV/bin/python" -m pip install --quiet --upgrade pip
        "$VENV/bin/python" -m pip install --quiet -e ".[$extra]"
        touch "$stamp"
    fi
}
