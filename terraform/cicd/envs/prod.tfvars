# The pipeline that deploys the prod stack (terraform/envs/prod.tfvars).
# github_repository and state_bucket belong to your account and repository
# and are given on the command line (terraform/README.md, "First deploy").
environment   = "prod"
github_branch = "main"
