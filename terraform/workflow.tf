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
  workflow_states = {
    for name, state in local.workflow_template.States : name => (
      try(state.Resource, "") == "arn:aws:states:::lambda:invoke"
      ? merge(state, { TimeoutSeconds = local.workflow_function_timeouts[state.Parameters.FunctionName] + 10 })
      : state
    )
  }

  # The execution's TimeoutSeconds must outlast the worst case of the tasks'
  # retries, or an execution that would have reached its Catch (DeadLetter,
  # the order FAILED) times out instead, uncatchable, the order stuck
  # RECEIVED. The task timeouts grow with var.function_timeouts, so the
  # execution timeout is derived from them: the file's value (300, what the
  # local runtime runs) or, when larger, this bound. (Refusing instead, with
  # a precondition, would refuse the defaults themselves: the longest path
  # alone, validate, store, enqueue, dead-letter, can take 520 s.)
  #
  # A task's worst case: every attempt (the first, then each retrier's
  # MaxAttempts: retriers count separately) runs to the task's
  # TimeoutSeconds, and every backoff waits its full
  # IntervalSeconds * BackoffRate^n, capped at MaxDelaySeconds (JitterStrategy
  # FULL only shortens it), with the ASL defaults (3 attempts, 1 s, rate 2).
  # The bound is the sum over every task: each state runs at most once, so
  # no path takes longer (the states are Task, Choice, Pass, Succeed or Fail,
  # each Task with a TimeoutSeconds: the precondition below; and they form no
  # cycle: terraform/tests/check_consistency.py). A minute more for the
  # transitions. With the default 10 s function timeouts: 653 s + 60 s.
  workflow_task_worst_case = {
    for name, state in local.workflow_states : name => (
      (1 + sum(concat([0], [for r in try(state.Retry, []) : try(r.MaxAttempts, 3)]))) * try(state.TimeoutSeconds, 99999999)
      + sum(concat([0], flatten([
        for r in try(state.Retry, []) : [
          for n in range(try(r.MaxAttempts, 3)) :
          min(try(r.IntervalSeconds, 1) * pow(try(r.BackoffRate, 2), n), try(r.MaxDelaySeconds, 31622401))
        ]
      ])))
    ) if state.Type == "Task"
  }
  workflow_timeout_seconds = max(
    local.workflow_template.TimeoutSeconds,
    ceil(sum(concat([0], values(local.workflow_task_worst_case)))) + 60
  )

  workflow_definition = jsonencode(merge(local.workflow_template, {
    TimeoutSeconds = local.workflow_timeout_seconds
    States         = local.workflow_states
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
    # What the execution timeout's bound (locals above) assumes.
    precondition {
      condition = alltrue([
        for state in values(local.workflow_states) :
        contains(["Task", "Choice", "Pass", "Succeed", "Fail"], state.Type) && (state.Type != "Task" || can(state.TimeoutSeconds))
      ])
      error_message = "The workflow's execution timeout is derived for Task (each with a TimeoutSeconds), Choice, Pass, Succeed and Fail states only: extend workflow_task_worst_case in workflow.tf for a new kind of state."
    }
    postcondition {
      condition     = self.arn == local.state_machine_arn
      error_message = "The state machine ARN differs from the one computed in main.tf that api_handler's policy and environment use."
    }
  }
}
