# Test-only inputs for the moto apply: every optional feature switched on so
# the test sees it (JWT authorizer, both subscription kinds).
name_prefix           = "dofstest"
environment           = "dev"
aws_region            = "us-east-1"
log_level             = "DEBUG"
failure_rate          = 0.25
alarm_email_endpoints = ["on-call@example.com"]
alarm_https_endpoints = ["https://pager.example.com/dofs"]
jwt_authorizer = {
  issuer   = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_example"
  audience = ["dofs-clients"]
}
