terraform {
  required_version = ">= 1.6.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.100"
    }
  }

  # Partial configuration: bucket, key, region (and use_lockfile or
  # dynamodb_table) are given at `terraform init -backend-config=...`, see
  # README.md. Tests override this with local state.
  backend "s3" {}
}
