variable "aws_region" {
  type        = string
  description = "Region of the pipeline. The stack's own region is aws_region in terraform/envs/<environment>.tfvars."
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
  description = "Environment the pipeline deploys: the stack is planned from terraform/envs/<environment>.tfvars on the state key of terraform/envs/<environment>.s3.tfbackend."
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
  description = "S3 bucket holding the stack's Terraform state (versioned, encrypted; terraform/README.md bootstraps it). The key is not a setting: it is the one terraform/envs/<environment>.s3.tfbackend names."

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.state_bucket))
    error_message = "state_bucket must be an S3 bucket name."
  }
}

variable "state_bucket_region" {
  type        = string
  description = "Region of the state bucket; null means the pipeline's region."
  default     = null
}

variable "deploy_role_arn" {
  type        = string
  description = "Role the plan and apply builds assume to deploy the stack; null creates it here (<name>-deploy) with the policy of deploy-role-policy.json.tftpl. A role the account administrators bring must trust the codebuild_deploy_role_arn output and hold the deploy_role_policy_json output's permissions."
  default     = null

  validation {
    condition     = var.deploy_role_arn == null || can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+$", var.deploy_role_arn))
    error_message = "deploy_role_arn must be an IAM role ARN (or null)."
  }
}

variable "deploy_role_permissions_boundary_arn" {
  type        = string
  description = "Permissions boundary for the deploy role this root creates (null: none)."
  default     = null
}

variable "codebuild_compute_type" {
  type        = string
  description = "Compute type of the test project (Rust builds of five functions and the whole test suite like more cores); plan and apply run on BUILD_GENERAL1_SMALL."
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

variable "smoke_authorization_secret_arn" {
  type        = string
  description = "Secrets Manager secret holding the Authorization header value (\"Bearer <token>\") the post-deploy smoke check (scripts/smoke-xray.sh) sends to an API behind jwt_authorizer; null for a public (dev) API. Without it the smoke check fails on a protected API rather than pass unchecked."
  default     = null

  validation {
    condition     = var.smoke_authorization_secret_arn == null || can(regex("^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:.+$", var.smoke_authorization_secret_arn))
    error_message = "smoke_authorization_secret_arn must be a Secrets Manager secret ARN (or null)."
  }
}
