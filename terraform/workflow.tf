# The order workflow: the ASL file shared with the local runtime, rendered
# with the real ARNs and URLs.

resource "aws_cloudwatch_log_group" "workflow" {
  #checkov:skip=CKV_AWS_338:Retention is var.log_retention_days (30 days by default to bound cost; set 365 or more where regulation asks); DOFS keeps its durable record of every order in DynamoDB, not in logs.
  # The /aws/vendedlogs/ prefix keeps Step Functions' log delivery resource
  # policy within CloudWatch Logs' size limit.
  name              = "/aws/vendedlogs/states/${local.state_machine_name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.stack.arn
}

locals {
  # The ASL file as the local runtime runs it too, with the real ARNs and URLs.
  workflow_template = jsondecode(templatefile("${path.module}/order_workflow.asl.json", {
    validator_function_arn     = module.functions["validator"].arn
    order_storage_function_arn = module.functions["order_storage"].arn
    order_queue_url            = module.order_queue.queue_url
    dead_letter_queue_url      = module.order_queue.dlq_url
  }))

  # A lambda:invoke task must wait longer than the function may run (its
  # timeout, plus up to 10 s of init on a cold start): a task that times out
  # first retries while the first invocation still runs. So every such
  # task's TimeoutSeconds is the invoked function's timeout + 10 s, whatever
  # the file says (the file keeps a value for the local runtime).
  workflow_function_timeouts = {
    for fn in ["validator", "order_storage"] : module.functions[fn].arn => var.function_timeouts[fn]
  }
  workflow_definition = jsonencode(merge(local.workflow_template, {
    States = {
      for name, state in local.workflow_template.States : name => (
        try(state.Resource, "") == "arn:aws:states:::lambda:invoke"
        ? merge(state, { TimeoutSeconds = local.workflow_function_timeouts[state.Parameters.FunctionName] + 10 })
        : state
      )
    }
  }))
}

resource "aws_sfn_state_machine" "order_workflow" {
  #checkov:skip=CKV_AWS_285:Execution history is logged at level ALL; only the execution data is left out because it carries the customer's order (ARCHITECTURE.md: no customer data in logs beyond order_id).
  name     = local.state_machine_name
  type     = "STANDARD"
  role_arn = aws_iam_role.workflow.arn

  definition = local.workflow_definition

  logging_configuration {
    log_destination = "${aws_cloudwatch_log_group.workflow.arn}:*"
    # Execution data holds the customer's order; the execution name is the
    # order_id, which is all a journey query needs.
    include_execution_data = false
    level                  = "ALL"
  }

  tracing_configuration {
    enabled = true
  }

  # The role must be able to deliver logs before the state machine is created.
  depends_on = [aws_iam_role_policy.workflow]

  lifecycle {
    postcondition {
      condition     = self.arn == local.state_machine_arn
      error_message = "The state machine ARN differs from the one computed in main.tf that api_handler's policy and environment use."
    }
  }
}
