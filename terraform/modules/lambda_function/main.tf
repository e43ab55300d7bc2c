# A DOFS Lambda function with everything that belongs to it alone: its IAM
# role (logs, X-Ray and the caller's least-privilege policy), its log group and
# its alarms. Everything is arm64 provided.al2023 with JSON logs and active
# tracing, so the settings are fixed here instead of exposed as variables.

data "aws_partition" "current" {}
data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

locals {
  log_group_name = "/aws/lambda/${var.function_name}"
  # Lambda's application-log filter treats a JSON line without a valid
  # `level` as INFO (Lambda docs, "Log-level filtering"); EMF metric lines
  # have none, so a filter above INFO would drop every metric. The filter
  # stops at INFO and LOG_LEVEL does the rest in process.
  application_log_level = contains(["TRACE", "DEBUG"], var.log_level) ? var.log_level : "INFO"
  log_group_arn         = "arn:${data.aws_partition.current.partition}:logs:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:log-group:${local.log_group_name}"
}

resource "aws_cloudwatch_log_group" "this" {
  #checkov:skip=CKV_AWS_338:Retention is var.log_retention_days (30 days by default to bound cost; set 365 or more where regulation asks); DOFS keeps its durable record of every order in DynamoDB, not in logs.
  name              = local.log_group_name
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_iam_role" "this" {
  name               = "${var.function_name}-role"
  description        = "Execution role of ${var.function_name}: its own log group, X-Ray, and only the calls it makes."
  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "base" {
  statement {
    sid       = "OwnLogGroup"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${local.log_group_arn}:*"]
  }

  # X-Ray trace ingestion has no resource-level permissions: "*" is the only
  # resource these two actions accept.
  statement {
    sid       = "XRayWrite"
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    resources = ["*"]
  }

  # Environment variables are encrypted with the stack key.
  statement {
    sid       = "DecryptEnvironment"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
  }
}

# One inline policy: the module's base statements plus the function's own.
data "aws_iam_policy_document" "combined" {
  source_policy_documents = [data.aws_iam_policy_document.base.json, var.policy_json]
}

resource "aws_iam_role_policy" "this" {
  name   = "least-privilege"
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.combined.json
}

resource "aws_lambda_function" "this" {
  #checkov:skip=CKV_AWS_117:DOFS only calls regional AWS APIs (DynamoDB, SQS, Step Functions); a VPC would add NAT or endpoints and cold-start cost without protecting any private resource.
  #checkov:skip=CKV_AWS_272:Code signing needs an AWS Signer profile the CodeBuild pipeline does not have; packages come only from the pipeline's own build.
  #checkov:skip=CKV_AWS_116:Asynchronous invocation is not used: API Gateway and Step Functions invoke synchronously and SQS event source mappings have their own redrive to the DLQ.
  #checkov:skip=CKV_AWS_115:Concurrency is var.reserved_concurrent_executions, unreserved (-1) by default: on new accounts any reservation can fail the apply (the account must keep 100 unreserved), and the queue consumers are capped by their event source mappings' maximum_concurrency instead.
  function_name = var.function_name
  description   = var.description
  role          = aws_iam_role.this.arn

  filename         = var.package_path
  source_code_hash = filebase64sha256(var.package_path)
  handler          = "bootstrap"
  runtime          = "provided.al2023"
  architectures    = ["arm64"]

  memory_size                    = var.memory_size
  timeout                        = var.timeout
  reserved_concurrent_executions = var.reserved_concurrent_executions
  kms_key_arn                    = var.kms_key_arn

  environment {
    variables = merge(var.environment, {
      LOG_LEVEL           = var.log_level
      DOFS_TRACE_EXPORTER = "xray"
    })
  }

  tracing_config {
    mode = "Active"
  }

  logging_config {
    log_format            = "JSON"
    application_log_level = local.application_log_level
    system_log_level      = "INFO"
    log_group             = aws_cloudwatch_log_group.this.name
  }

  tags = var.tags

  # The role's policies must exist before the first invocation can log.
  depends_on = [aws_iam_role_policy.this]

  lifecycle {
    # scripts/package-lambdas.sh falls back to x86_64 zips where the aarch64
    # standard library is missing; such a bootstrap fails every invocation on
    # Graviton (exec format error), so it must never be deployed.
    precondition {
      condition     = var.package_architecture == "arm64"
      error_message = "The package ${var.package_path} was built for ${var.package_architecture}, but the function runs on arm64: rebuild with `DOFS_LAMBDA_ARCH=arm64 bash scripts/package-lambdas.sh` (needs `rustup target add aarch64-unknown-linux-gnu`)."
    }
  }
}

module "alarm" {
  source   = "../metric_alarm"
  for_each = var.alarms

  alarm_name    = "${var.function_name}-${each.key}"
  definition    = each.value
  placeholders  = merge(var.alarm_placeholders, { function_name = var.function_name })
  alarm_actions = var.alarm_actions
  tags          = var.tags
}
