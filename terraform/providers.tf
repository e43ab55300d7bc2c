provider "aws" {
  region = var.aws_region

  default_tags {
    tags = merge(var.tags, {
      Project     = "dofs"
      Environment = var.environment
      ManagedBy   = "terraform"
    })
  }
}
