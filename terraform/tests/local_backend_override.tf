# Test-only override, copied by scripts/terraform-test.sh next to
# moto_override.tf for the moto apply: local state instead of the S3 backend.
terraform {
  backend "local" {}
}
