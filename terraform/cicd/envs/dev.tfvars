# The pipeline that deploys the dev stack (terraform/envs/dev.tfvars).
# github_repository and state_bucket belong to your account and repository
# and are given on the command line (terraform/README.md, "First deploy").
environment   = "dev"
github_branch = "main"
