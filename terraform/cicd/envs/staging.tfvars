# The pipeline that deploys the staging stack (terraform/envs/staging.tfvars).
# github_repository and state_bucket belong to your account and repository
# and are given on the command line (terraform/README.md, "First deploy").
environment   = "staging"
github_branch = "main"
