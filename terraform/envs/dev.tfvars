# The dev stack, as both the pipeline (terraform/cicd with environment = "dev")
# and a manual deploy (terraform/README.md) apply it:
#   terraform plan -var-file=envs/dev.tfvars
# Its state: envs/dev.s3.tfbackend. Anything not set here takes the default
# of variables.tf.

environment = "dev"
aws_region  = "us-east-1"

# dev is where the failure paths are exercised: 30 % of fulfilment attempts
# fail on purpose, so orders go through retries, the DLQ and dlq_handler.
failure_rate = 0.3

# dev may be public and may be torn down.
jwt_authorizer      = null
deletion_protection = false

alarm_email_endpoints = []
alarm_https_endpoints = []

# The workflow type (variables.tf, workflow_type): STANDARD here, where the
# failure paths are exercised and GetExecutionHistory helps; set EXPRESS to
# try the cheaper type before staging and prod take it.
workflow_type = "STANDARD"
