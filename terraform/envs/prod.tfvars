# The prod stack (pipeline environment = "prod"; state: envs/prod.s3.tfbackend).
#
# Before the first deploy, replace every REPLACE-ME with your own values
# (terraform/README.md, "First deploy"); the pipeline's plan refuses a file
# that still holds one. variables.tf refuses a prod stack without an
# authorizer or without anyone to page, with simulated failures, or with
# deletable tables.

environment = "prod"
aws_region  = "us-east-1"

# No simulated failures in prod (the only value prod accepts).
failure_rate = 0

# The tables refuse DeleteTable (the only value prod accepts).
deletion_protection = true

# Every route requires a JWT from this issuer for one of these audiences.
jwt_authorizer = {
  issuer   = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_REPLACE-ME"
  audience = ["REPLACE-ME"]
}

# On-call: every alarm notifies these (an e-mail subscriber must confirm once).
alarm_email_endpoints = ["REPLACE-ME@example.com"]
alarm_https_endpoints = []

# Throttled deliveries count as receives; AWS advises at least 5.
max_receive_count = 5

log_retention_days = 365

# The workflow type (variables.tf, workflow_type): STANDARD until EXPRESS
# has been proven on staging; switching replaces the state machine, which
# the pipeline's approval gate stops for.
workflow_type = "STANDARD"
