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
  workflow_timeout_bound = max(
    local.workflow_template.TimeoutSeconds,
    ceil(sum(concat([0], values(local.workflow_task_worst_case)))) + 60
  )

  # An Express execution runs for 5 minutes at most, whatever TimeoutSeconds
  # says (Step Functions developer guide, "Choosing workflow type":
  # https://docs.aws.amazon.com/step-functions/latest/dg/concepts-standard-vs-express.html,
  # and "Step Functions service quotas":
  # https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html),
  # so the definition says what really holds: at most 300 s. The bound above
  # (713 s with the default timeouts) cannot fit in it: only a path on which
  # attempts keep timing out takes that long (a healthy order takes seconds,
  # a transient error adds at most 7 s of backoff per task), and such an
  # execution ends TIMED_OUT, uncatchable, instead of in DeadLetter. The order
  # is not lost for that: api_handler records it RECEIVED in the orders table
  # before it starts the execution, the workflow-executions-timed-out alarm
  # pages (docs/runbook.md), and a retry with the same Idempotency-Key starts
  # a stuck order's workflow again (api_handler's side of issue #17).
  workflow_express_max_seconds = 300
  workflow_timeout_seconds     = var.workflow_type == "EXPRESS" ? min(local.workflow_timeout_bound, local.workflow_express_max_seconds) : local.workflow_timeout_bound

  workflow_definition = jsonencode(merge(local.workflow_template, {
    TimeoutSeconds = local.workflow_timeout_seconds
    States         = local.workflow_states
  }))
}

locals {
  # Logging by workflow type. Execution data holds the customer's order, so
  # it is left out under both; the execution name is the order_id, which is
  # all a journey query needs.
  # - STANDARD: every event at level ALL, as DOFS has always logged it
  #   (Step Functions also keeps the history itself, for DescribeExecution
  #   and GetExecutionHistory).
  # - EXPRESS: Step Functions keeps no history of an Express execution; the
  #   log group is the only record of what an execution did, so every event
  #   (level ALL) must be logged. Step Functions developer guide, "Logging
  #   in CloudWatch Logs" (Express workflows) and "Log levels":
  #   https://docs.aws.amazon.com/step-functions/latest/dg/cw-logs.html
  #   https://docs.aws.amazon.com/step-functions/latest/dg/cloudwatch-log-level.html
  workflow_logging = {
    STANDARD = { level = "ALL", include_execution_data = false }
    EXPRESS  = { level = "ALL", include_execution_data = false }
  }[var.workflow_type]

  # Express workflows run Request Response integrations only: no .sync and
  # no .waitForTaskToken (Step Functions developer guide, "Integrating
  # optimized services with Step Functions":
  # https://docs.aws.amazon.com/step-functions/latest/dg/integrate-optimized.html).
  workflow_task_resources = [for state in values(local.workflow_states) : state.Resource if state.Type == "Task"]

  # What an Express state machine needs: its history in the logs, without
  # the customer's order; a definition within its 5 minutes; Request
  # Response integrations only (the precondition below).
  workflow_fits_express = alltrue(concat(
    [local.workflow_logging.level == "ALL", !local.workflow_logging.include_execution_data],
    [local.workflow_timeout_seconds <= local.workflow_express_max_seconds],
    [for r in local.workflow_task_resources : !endswith(r, ".sync") && !endswith(r, ".waitForTaskToken")],
  ))
}

resource "aws_sfn_state_machine" "order_workflow" {
  #checkov:skip=CKV_AWS_285:Execution history is logged at level ALL; only the execution data is left out because it carries the customer's order (ARCHITECTURE.md: no customer data in logs beyond order_id).
  name = local.state_machine_name
  # STANDARD or EXPRESS (variables.tf says what each means for DOFS);
  # changing it replaces the state machine.
  type     = var.workflow_type
  role_arn = aws_iam_role.workflow.arn

  definition = local.workflow_definition

  logging_configuration {
    log_destination        = "${aws_cloudwatch_log_group.workflow.arn}:*"
    include_execution_data = local.workflow_logging.include_execution_data
    level                  = local.workflow_logging.level
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
    precondition {
      condition     = var.workflow_type != "EXPRESS" || local.workflow_fits_express
      error_message = "An EXPRESS workflow must log at level ALL without execution data, time out within 300 s and use Request Response integrations only (no .sync, no .waitForTaskToken)."
    }
    postcondition {
      condition     = self.arn == local.state_machine_arn
      error_message = "The state machine ARN differs from the one computed in main.tf that api_handler's policy and environment use."
    }
  }
}
