# Least privilege, one policy per function (the lambda_function module adds
# logs, X-Ray and kms:Decrypt on the stack key, which covers both the
# environment and reading the SSE-KMS queues) and the workflow's role.
# Every statement names ARNs; the only "*" resources are X-Ray's and Step
# Functions' log delivery, which accept nothing else.
#
# terraform/tests/check_iam.py keeps this file honest: each function's
# actions must equal, exactly, what its code can call (derived from
# aws/src/*.rs and lambdas/<fn>/src/{main,lib}.rs) plus what Lambda itself
# does with the role (logs, X-Ray, the environment key, the event source
# mapping's polling), and the workflow role must equal what the rendered ASL
# integrates with.

locals {
  # What a Lambda SQS event source mapping does with the function's role
  # (Lambda docs, "Execution role permissions" for Amazon SQS).
  sqs_consumer_actions = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]
}

data "aws_iam_policy_document" "api_handler" {
  # The same action starts a Standard and an asynchronous Express execution
  # (Step Functions developer guide, "IAM policies for Step Functions":
  # https://docs.aws.amazon.com/step-functions/latest/dg/stepfunctions-iam.html;
  # API reference, StartExecution:
  # https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartExecution.html),
  # so nothing here depends on var.workflow_type. StartSyncExecution is not
  # granted: api_handler never waits for the workflow.
  statement {
    sid       = "StartOrderWorkflow"
    actions   = ["states:StartExecution"]
    resources = [local.state_machine_arn]
  }
  # api_handler records every accepted order as RECEIVED (a conditional put)
  # before it starts the execution, and answers GET and an Idempotency-Key
  # replay from the table. It never asks Step Functions about an execution
  # (an Express one could not be described), so no states:DescribeExecution.
  statement {
    sid       = "RecordAndReadOrders"
    actions   = ["dynamodb:PutItem", "dynamodb:GetItem"]
    resources = [module.orders_table.arn]
  }
}

data "aws_iam_policy_document" "order_storage" {
  statement {
    sid       = "WriteOrders"
    actions   = ["dynamodb:PutItem", "dynamodb:GetItem"]
    resources = [module.orders_table.arn]
  }
}

data "aws_iam_policy_document" "fulfill_order" {
  statement {
    sid       = "FulfilOrders"
    actions   = ["dynamodb:UpdateItem"]
    resources = [module.orders_table.arn]
  }
  statement {
    sid       = "ConsumeOrderQueue"
    actions   = local.sqs_consumer_actions
    resources = [module.order_queue.queue_arn]
  }
}

data "aws_iam_policy_document" "dlq_handler" {
  # Reads the order, creates it when the workflow failed before storing it,
  # and marks it FAILED.
  statement {
    sid       = "FailOrders"
    actions   = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]
    resources = [module.orders_table.arn]
  }
  # Only ever adds a failed_orders row (a conditional put).
  statement {
    sid       = "RecordFailedOrders"
    actions   = ["dynamodb:PutItem"]
    resources = [module.failed_orders_table.arn]
  }
  statement {
    sid       = "ConsumeDeadLetterQueue"
    actions   = local.sqs_consumer_actions
    resources = [module.order_queue.dlq_arn]
  }
}

locals {
  # validator only computes: no policy beyond logs and X-Ray.
  function_policies = {
    api_handler   = data.aws_iam_policy_document.api_handler.json
    validator     = jsonencode({ Version = "2012-10-17", Statement = [] })
    order_storage = data.aws_iam_policy_document.order_storage.json
    fulfill_order = data.aws_iam_policy_document.fulfill_order.json
    dlq_handler   = data.aws_iam_policy_document.dlq_handler.json
  }
}

data "aws_iam_policy_document" "workflow_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["states.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "workflow" {
  name               = "${local.stack}-order-workflow-role"
  description        = "Role of the order workflow: invoke validator and order_storage, send to the order queue and the DLQ."
  assume_role_policy = data.aws_iam_policy_document.workflow_assume.json
}

data "aws_iam_policy_document" "workflow" {
  # The tasks name the functions' unqualified ARNs, so only those.
  statement {
    sid       = "InvokeWorkflowFunctions"
    actions   = ["lambda:InvokeFunction"]
    resources = [for fn in ["validator", "order_storage"] : module.functions[fn].arn]
  }

  # EnqueueOrder sends to the order queue; the DeadLetter catch-all sends
  # straight to the DLQ.
  statement {
    sid       = "SendToQueues"
    actions   = ["sqs:SendMessage"]
    resources = [module.order_queue.queue_arn, module.order_queue.dlq_arn]
  }
  statement {
    sid       = "EncryptQueueMessages"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [aws_kms_key.stack.arn]
  }

  # X-Ray trace ingestion and sampling have no resource-level permissions.
  statement {
    sid = "XRay"
    actions = [
      "xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules", "xray:GetSamplingTargets",
    ]
    resources = ["*"]
  }

  # Step Functions log delivery is a CloudWatch Logs "vended log" delivery;
  # these management calls do not support resource-level permissions.
  statement {
    sid = "LogDelivery"
    actions = [
      "logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery", "logs:DeleteLogDelivery",
      "logs:ListLogDeliveries", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies", "logs:DescribeLogGroups",
    ]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "workflow" {
  name   = "order-workflow"
  role   = aws_iam_role.workflow.id
  policy = data.aws_iam_policy_document.workflow.json
}
