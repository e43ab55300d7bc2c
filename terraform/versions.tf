terraform {
  # 1.9: validations that name other variables (prod needs an authorizer,
  # subscribers, ...); 1.10: the S3 backend's use_lockfile (envs/*.s3.tfbackend).
  required_version = ">= 1.10.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.100"
    }
  }

  # Partial configuration: the key (one state per environment), use_lockfile
  # and encrypt come from envs/<environment>.s3.tfbackend, the account's
  # bucket and its region from -backend-config at init (README.md, "First
  # deploy"; the pipeline's plan and apply do the same). The moto apply in
  # the tests overrides this with local state.
  backend "s3" {}
}
