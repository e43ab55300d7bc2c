# The staging stack (pipeline environment = "staging"; state:
# envs/staging.s3.tfbackend). Like prod, without the deletion protection.
#
# Before the first deploy, replace every REPLACE-ME with your own values
# (terraform/README.md, "First deploy"); the pipeline's plan refuses a file
# that still holds one.

environment = "staging"
aws_region  = "us-east-1"

# No simulated failures outside dev (the default, written out).
failure_rate = 0

# Outside dev the API requires a JWT (variables.tf refuses null).
jwt_authorizer = {
  issuer   = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_REPLACE-ME"
  audience = ["REPLACE-ME"]
}

alarm_email_endpoints = ["REPLACE-ME@example.com"]
alarm_https_endpoints = []

# Throttled deliveries count as receives; AWS advises at least 5.
max_receive_count = 5

# The workflow type (variables.tf, workflow_type): STANDARD until EXPRESS
# has been proven on dev; switching replaces the state machine, which the
# pipeline's approval gate stops for.
workflow_type = "STANDARD"
