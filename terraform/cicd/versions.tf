terraform {
  required_version = ">= 1.6.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.100"
    }
  }

  # Partial configuration, like the stack's (see ../README.md); use a
  # different key from the stack's state.
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
