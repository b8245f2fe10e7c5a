#!/usr/bin/env bash
# Installs the real RocketMQ clients used by the end-to-end tests (idempotent, fast when done):
#   target/clients/venv-rmq    PyPI rocketmq-client-python==0.5.0rc2 (Apache's Python client;
#                              its manylinux wheel bundles the C++ client library)
#   target/clients/venv-rmq44  PyPI rocketmq==0.4.4 (same C++ library; batch, async, PullConsumer)
#   tests/clients/js/node_modules  npm ali-ons (pure JavaScript), pinned by package-lock.json
# The two Python packages both install a package named `rocketmq`, hence two virtualenvs.
# Needs python3 with the venv module, node and npm. Set SHARDMQ_CLIENTS_DIR to move the venvs.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${SHARDMQ_CLIENTS_DIR:-$ROOT/target/clients}"
JS="$ROOT/tests/clients/js"
mkdir -p "$DIR"

PY="${PYTHON:-python3}"
command -v "$PY" >/dev/null || { echo "setup-clients: $PY not found (install python3 and python3-venv)" >&2; exit 1; }

install_venv() { # name, pip requirement
  local venv="$DIR/$1" req="$2" stamp="$DIR/$1/.installed"
  if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$req" ]] &&
     "$venv/bin/python" -c 'import rocketmq.client' 2>/dev/null; then
    echo "setup-clients: $1 ok ($req)"
    return
  fi
  echo "setup-clients: creating $venv with $req"
  rm -rf "$venv"
  "$PY" -m venv "$venv" || { echo "setup-clients: '$PY -m venv' failed (apt-get install python3-venv)" >&2; exit 1; }
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$req"
  "$venv/bin/python" -c 'import rocketmq.client' ||
    { echo "setup-clients: $req installed but 'import rocketmq.client' fails" >&2; exit 1; }
  echo "$req" > "$stamp"
}
install_venv venv-rmq 'rocketmq-client-python==0.5.0rc2'
install_venv venv-rmq44 'rocketmq==0.4.4'

command -v npm >/dev/null || { echo "setup-clients: npm not found (install nodejs and npm)" >&2; exit 1; }
want="$(sha256sum "$JS/package-lock.json" | cut -d' ' -f1)"
if [[ -f "$JS/node_modules/.shardmq-stamp" && "$(cat "$JS/node_modules/.shardmq-stamp")" == "$want" ]]; then
  echo "setup-clients: js ok (ali-ons $(node -p "require('$JS/node_modules/ali-ons/package.json').version"))"
else
  echo "setup-clients: npm ci in $JS"
  (cd "$JS" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" > "$JS/node_modules/.shardmq-stamp"
fi

echo "setup-clients: python (0.5.0rc2): $DIR/venv-rmq/bin/python"
echo "setup-clients: python (0.4.4):    $DIR/venv-rmq44/bin/python"
echo "setup-clients: node programs:     $JS (node $(node --version))"
