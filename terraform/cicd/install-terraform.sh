#!/usr/bin/env bash
# Installs the Terraform CLI the repository is tested with into /usr/local/bin,
# verified against the SHA-256 HashiCorp publishes for the release
# (terraform_<version>_SHA256SUMS, linux_amd64 line). Run by every buildspec
# (`bash terraform/cicd/install-terraform.sh`: a source zip may lose the exec
# bit). A no-op when that version is already installed.
set -euo pipefail

version="1.11.4"
sha256="1ce994251c00281d6845f0f268637ba50c0005657eb3cf096b92f753b42ef4dc"

if command -v terraform >/dev/null 2>&1 && terraform version | head -1 | grep -qx "Terraform v${version}"; then
  terraform version | head -1
  exit 0
fi
zip="$(mktemp -d)/terraform.zip"
curl --proto '=https' --tlsv1.2 -sSfL -o "$zip" \
  "https://releases.hashicorp.com/terraform/${version}/terraform_${version}_linux_amd64.zip"
echo "${sha256}  ${zip}" | sha256sum -c -
unzip -o -q "$zip" terraform -d /usr/local/bin
terraform version | head -1
