#!/usr/bin/env bash
# Installs, idempotently and only under target/tools/, every outside tool the
# tests use: a Python venv with moto[server], statelint, checkov and
# cargo-lambda, and a Terraform CLI config that points at the machine's
# provider mirror so `terraform init` works offline; and the Debian packages
# of the programs some tests drive (Chromium and ChromeDriver for the
# console's browser tests, Prometheus), see `debian_tool` below.
#
# The Python tools are pinned in tools/requirements.in (and
# tools/schemathesis-requirements.in); what is installed is their lock,
# tools/requirements.txt (tools/schemathesis-requirements.txt): every
# package, transitive ones too, by exact version and SHA-256. pip installs it
# with --require-hashes (a download that does not match is refused),
# --no-deps (nothing outside the lock) and --only-binary :all: (no source
# build, whose build dependencies pip would fetch unchecked). The .in files
# say how to regenerate the locks.
#
# Source it (`. scripts/tools.sh`) to get the environment it exports:
#   DOFS_TOOLS_DIR, DOFS_VENV, DOFS_SCHEMATHESIS (schemathesis' `st`),
#   PATH (venv bin first), TF_CLI_CONFIG_FILE,
#   DOFS_TF_PLUGIN_MIRROR (when a mirror was found).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export DOFS_TOOLS_DIR="${DOFS_TOOLS_DIR:-$repo_root/target/tools}"
export DOFS_VENV="$DOFS_TOOLS_DIR/venv"
mkdir -p "$DOFS_TOOLS_DIR"

# pip's options for a lock: hashes required, nothing but the lock, wheels only.
# The venv's own pip (the one ensurepip bundles with python3) installs it;
# upgrading pip first would be one more download without a hash.
locked_install=(install --quiet --disable-pip-version-check --require-hashes --no-deps --only-binary ':all:')

# The lock's content is the stamp, so a changed pin rebuilds the venv and a
# re-run is instant. The venv's scripts have its absolute path baked into
# their shebangs, so the stamp covers the path too: a moved checkout gets a
# fresh venv, not a broken one.
tools_lock="$repo_root/tools/requirements.txt"
stamp="$DOFS_VENV/.dofs-tools-$({ printf '%s\n' "$DOFS_VENV"; cat "$tools_lock"; } | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "tools: installing tools/requirements.txt (pins of tools/requirements.in) into $DOFS_VENV" >&2
  rm -rf "$DOFS_VENV"
  python3 -m venv "$DOFS_VENV"
  "$DOFS_VENV/bin/python" -m pip "${locked_install[@]}" -r "$tools_lock" >&2
  touch "$stamp"
fi
export PATH="$DOFS_VENV/bin:$PATH"

# Schemathesis (the API contract test) in a venv of its own: its pins
# (hypothesis, jsonschema_rs) need not agree with checkov's, and adding it
# does not rebuild the venv above. DOFS_SCHEMATHESIS is its `st`.
schemathesis_lock="$repo_root/tools/schemathesis-requirements.txt"
export DOFS_SCHEMATHESIS_VENV="$DOFS_TOOLS_DIR/schemathesis-venv"
export DOFS_SCHEMATHESIS="$DOFS_SCHEMATHESIS_VENV/bin/st"
st_stamp="$DOFS_SCHEMATHESIS_VENV/.dofs-tools-$({ printf '%s\n' "$DOFS_SCHEMATHESIS_VENV"; cat "$schemathesis_lock"; } | sha256sum | cut -c1-16)"
if [ ! -f "$st_stamp" ]; then
  echo "tools: installing tools/schemathesis-requirements.txt into $DOFS_SCHEMATHESIS_VENV" >&2
  rm -rf "$DOFS_SCHEMATHESIS_VENV"
  python3 -m venv "$DOFS_SCHEMATHESIS_VENV"
  "$DOFS_SCHEMATHESIS_VENV/bin/python" -m pip "${locked_install[@]}" -r "$schemathesis_lock" >&2
  touch "$st_stamp"
fi

# Terraform: the image carries the CLI and an unpacked provider mirror. Find
# the mirror (or honour DOFS_TF_PLUGIN_MIRROR) and write a CLI config that
# installs providers from it only.
if [ -z "${DOFS_TF_PLUGIN_MIRROR:-}" ]; then
  for candidate in /opt/tf-plugins /usr/share/terraform/plugins "$HOME/.terraform.d/plugins"; do
    if [ -d "$candidate/registry.terraform.io/hashicorp/aws" ]; then
      DOFS_TF_PLUGIN_MIRROR="$candidate"
      break
    fi
  done
fi
if [ -n "${DOFS_TF_PLUGIN_MIRROR:-}" ]; then
  export DOFS_TF_PLUGIN_MIRROR
  export TF_CLI_CONFIG_FILE="$DOFS_TOOLS_DIR/terraformrc"
  cat > "$TF_CLI_CONFIG_FILE" <<TFRC
provider_installation {
  filesystem_mirror {
    path    = "$DOFS_TF_PLUGIN_MIRROR"
    include = ["registry.terraform.io/hashicorp/*"]
  }
  direct {
    exclude = ["registry.terraform.io/hashicorp/*"]
  }
}
TFRC
  export TF_PLUGIN_CACHE_DIR="$DOFS_TOOLS_DIR/terraform-plugin-cache"
  mkdir -p "$TF_PLUGIN_CACHE_DIR"
fi

# Debian packages a test drives as a real program (system packages, the one
# thing installed outside target/tools: Chromium cannot run from a folder):
# installed when one of `binaries` is missing, so a second run only checks
# paths. Under CI=true a package that cannot be installed is a failure;
# elsewhere its tests skip, saying so.
debian_tool() {
  local purpose=$1 binaries=$2 binary missing=
  shift 2
  for binary in $binaries; do [ -x "$binary" ] || missing=1; done
  [ -z "$missing" ] && return 0
  echo "tools: installing Debian's $* for $purpose" >&2
  if [ "$(id -u)" = 0 ] &&
    { DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >&2 ||
      { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >&2; }; }; then
    return 0
  fi
  if [ "${CI:-}" = true ]; then
    echo "tools: ERROR: could not install $* (CI=true: $purpose must run)" >&2
    exit 1
  fi
  echo "tools: WARNING: no $*; $purpose will be SKIPPED" >&2
}

# The console's browser tests drive headless Chromium (local/tests/runtime/browser.rs).
debian_tool "the console's browser tests" "/usr/bin/chromium /usr/bin/chromedriver" chromium chromium-driver
# A real Prometheus scrapes `dofs serve` (local/tests/runtime/prometheus.rs).
debian_tool "the Prometheus scrape test" /usr/bin/prometheus prometheus
