variable "aws_region" {
  type        = string
  description = "Region of the pipeline (and of the stack it deploys)."
  default     = "us-east-1"
}

variable "name_prefix" {
  type        = string
  description = "Prefix of the pipeline's resource names."
  default     = "dofs"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,15}$", var.name_prefix))
    error_message = "name_prefix must be 2-16 lowercase letters, digits or dashes, starting with a letter."
  }
}

variable "environment" {
  type        = string
  description = "Environment the pipeline deploys (passed to the stack as its environment)."
  default     = "dev"

  validation {
    condition     = contains(["dev", "staging", "prod"], var.environment)
    error_message = "environment must be one of dev, staging, prod."
  }
}

variable "tags" {
  type        = map(string)
  description = "Extra tags on every resource."
  default     = {}
}

variable "github_repository" {
  type        = string
  description = "GitHub repository the pipeline builds, as owner/name."

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", var.github_repository))
    error_message = "github_repository must look like owner/name."
  }
}

variable "github_branch" {
  type        = string
  description = "Branch whose pushes start the pipeline."
  default     = "main"
}

variable "state_bucket" {
  type        = string
  description = "S3 bucket holding the stack's Terraform state (the build runs terraform init -backend-config=bucket=...)."
}

variable "state_key" {
  type        = string
  description = "Key of the stack's state object in the state bucket."
  default     = "dofs/stack.tfstate"
}

variable "deploy_role_arn" {
  type        = string
  description = "Role the build assumes to run terraform plan/apply of the stack. Deploying creates IAM roles, functions and tables, so those rights live in a role the account administrators own (ideally with a permissions boundary), not in the build's own role."

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+$", var.deploy_role_arn))
    error_message = "deploy_role_arn must be an IAM role ARN."
  }
}

variable "codebuild_compute_type" {
  type        = string
  description = "CodeBuild compute type (Rust release builds of five functions like more cores)."
  default     = "BUILD_GENERAL1_LARGE"

  validation {
    condition     = contains(["BUILD_GENERAL1_SMALL", "BUILD_GENERAL1_MEDIUM", "BUILD_GENERAL1_LARGE", "BUILD_GENERAL1_XLARGE", "BUILD_GENERAL1_2XLARGE"], var.codebuild_compute_type)
    error_message = "codebuild_compute_type must be a BUILD_GENERAL1_* size."
  }
}

variable "codebuild_image" {
  type        = string
  description = "CodeBuild image; cargo-lambda cross-compiles the arm64 functions from x86_64 with zig."
  default     = "aws/codebuild/amazonlinux2-x86_64-standard:5.0"
}

variable "log_retention_days" {
  type        = number
  description = "Retention of the build logs, in days."
  default     = 90
}

variable "artifact_retention_days" {
  type        = number
  description = "Days pipeline artifacts are kept in the artifact bucket."
  default     = 30
}
