#!/usr/bin/env bash
# Installs, idempotently and only under target/tools/, every outside tool the
# tests use: a Python venv with moto[server], statelint, checkov and
# cargo-lambda, and a Terraform CLI config that points at the machine's
# provider mirror so `terraform init` works offline.
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

# Bump when the pinned set changes; a stamp file makes re-runs instant.
# ziglang is cargo-lambda's cross linker: pinned too, since a zig that
# cargo-lambda does not know how to drive breaks the arm64 packaging.
python_tools=("moto[server]==5.2.5" "statelint==3.1.0" "checkov==3.3.30" "cargo-lambda==1.9.2" "ziglang==0.17.1")
# The venv's scripts have its absolute path baked into their shebangs, so the
# stamp covers the path too: a moved checkout gets a fresh venv, not a broken one.
stamp="$DOFS_VENV/.dofs-tools-$(printf '%s\n' "$DOFS_VENV" "${python_tools[@]}" | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "tools: installing ${python_tools[*]} into $DOFS_VENV" >&2
  rm -rf "$DOFS_VENV"
  python3 -m venv "$DOFS_VENV"
  "$DOFS_VENV/bin/pip" install --quiet --disable-pip-version-check --upgrade pip >&2
  "$DOFS_VENV/bin/pip" install --quiet --disable-pip-version-check "${python_tools[@]}" >&2
  touch "$stamp"
fi
export PATH="$DOFS_VENV/bin:$PATH"

# Schemathesis (the API contract test) in a venv of its own: its pins
# (hypothesis, jsonschema_rs) need not agree with checkov's, and adding it
# does not rebuild the venv above. DOFS_SCHEMATHESIS is its `st`.
schemathesis_pin="schemathesis==4.32.5"
export DOFS_SCHEMATHESIS_VENV="$DOFS_TOOLS_DIR/schemathesis-venv"
export DOFS_SCHEMATHESIS="$DOFS_SCHEMATHESIS_VENV/bin/st"
st_stamp="$DOFS_SCHEMATHESIS_VENV/.dofs-tools-$(printf '%s\n' "$DOFS_SCHEMATHESIS_VENV" "$schemathesis_pin" | sha256sum | cut -c1-16)"
if [ ! -f "$st_stamp" ]; then
  echo "tools: installing $schemathesis_pin into $DOFS_SCHEMATHESIS_VENV" >&2
  rm -rf "$DOFS_SCHEMATHESIS_VENV"
  python3 -m venv "$DOFS_SCHEMATHESIS_VENV"
  "$DOFS_SCHEMATHESIS_VENV/bin/pip" install --quiet --disable-pip-version-check "$schemathesis_pin" >&2
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
