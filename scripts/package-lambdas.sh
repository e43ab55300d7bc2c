#!/usr/bin/env bash
# Builds the five Lambda functions as provided.al2023 zips with cargo-lambda:
#   target/lambda/<function>/bootstrap.zip
#
# Lambda runs them on arm64 (Graviton). Cross-compiling needs the Rust
# standard library for aarch64-unknown-linux-gnu (rustup target add) and a
# cross linker, which cargo-lambda brings as zig (PyPI `ziglang`, installed
# by scripts/tools.sh). When the aarch64 standard library is not installed
# the script builds x86_64 zips instead and says so: those serve local tests
# and measurements only. target/lambda/ARCH records which architecture the
# zips are, and Terraform refuses to deploy anything but arm64 (a
# precondition in terraform/modules/lambda_function); CodeBuild
# (buildspec.yml) adds the target and forces DOFS_LAMBDA_ARCH=arm64.
#
# DOFS_LAMBDA_ARCH=arm64|x86_64 forces an architecture (arm64 then fails
# loudly if it cannot be built). Extra arguments go to `cargo lambda build`.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
# shellcheck source=scripts/tools.sh
. scripts/tools.sh

functions=(api_handler validator order_storage fulfill_order dlq_handler)

aarch64_std="$(rustc --print sysroot)/lib/rustlib/aarch64-unknown-linux-gnu"
arch="${DOFS_LAMBDA_ARCH:-}"
if [ -z "$arch" ]; then
  if [ -d "$aarch64_std" ]; then
    arch=arm64
  else
    arch=x86_64
    echo "package-lambdas: NOTE: the aarch64-unknown-linux-gnu standard library is not installed" >&2
    echo "package-lambdas: NOTE: (rustup target add aarch64-unknown-linux-gnu); building x86_64 zips." >&2
    echo "package-lambdas: NOTE: these zips are for local tests and measurements; the functions are arm64," >&2
    echo "package-lambdas: NOTE: and terraform plan refuses x86_64 packages (target/lambda/ARCH)." >&2
  fi
fi

case "$arch" in
  arm64)
    if [ ! -d "$aarch64_std" ]; then
      echo "package-lambdas: arm64 requested but $aarch64_std is missing (rustup target add aarch64-unknown-linux-gnu)" >&2
      exit 1
    fi
    arch_flag=--arm64 ;;
  x86_64) arch_flag=--x86-64 ;;
  *) echo "package-lambdas: DOFS_LAMBDA_ARCH must be arm64 or x86_64, not '$arch'" >&2; exit 2 ;;
esac

package_args=()
for fn in "${functions[@]}"; do package_args+=(-p "$fn"); done

# No ARCH while zips are being replaced: a build that stops half way must not
# leave an earlier build's ARCH describing a mix (Terraform refuses a
# missing ARCH as it refuses x86_64).
rm -f target/lambda/ARCH

# The lambda-release profile (Cargo.toml): whole-program LTO, one codegen unit.
echo "package-lambdas: cargo lambda build --profile lambda-release $arch_flag --output-format zip (${functions[*]})" >&2
cargo lambda build --profile lambda-release "$arch_flag" --output-format zip "${package_args[@]}" "$@"

status=0
printf '%-14s %-8s %12s\n' function arch "zip bytes" >&2
for fn in "${functions[@]}"; do
  zip="target/lambda/$fn/bootstrap.zip"
  if [ ! -s "$zip" ]; then
    echo "package-lambdas: $zip was not produced" >&2
    status=1
    continue
  fi
  printf '%-14s %-8s %12s\n' "$fn" "$arch" "$(stat -c %s "$zip")" >&2
done
echo "$arch" > target/lambda/ARCH
exit "$status"
