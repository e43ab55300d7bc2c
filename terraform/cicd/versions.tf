terraform {
  # 1.10: the S3 backend's use_lockfile (envs/<environment>.s3.tfbackend).
  required_version = ">= 1.10.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.100"
    }
  }

  # Partial configuration, like the stack's: the key from
  # envs/<environment>.s3.tfbackend (dofs/cicd/<environment>.tfstate, next to
  # the stack's dofs/<environment>.tfstate), bucket and region at init
  # (../README.md, "First deploy").
  backend "s3" {}
}

provider "aws" {
  region = var.aws_region

  default_tags {
    tags = merge(var.tags, {
      Project   = "dofs"
      Component = "cicd"
      ManagedBy = "terraform"
    })
  }
}
