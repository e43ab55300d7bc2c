# Alarms, the dashboard and Logs Insights queries. The alarms and the dashboard
# are data under dashboards/ (shared with the local runtime); this file only
# binds their placeholders to this stack's resources.

locals {
  dashboards_dir = "${path.module}/../dashboards"
  metric_catalog = jsondecode(file("${local.dashboards_dir}/metrics.json"))
  alarm_catalog  = jsondecode(file("${local.dashboards_dir}/alarms.json"))

  stack_alarms    = { for a in local.alarm_catalog.alarms : a.name => a if a.scope == "stack" }
  function_alarms = { for a in local.alarm_catalog.alarms : a.name => a if a.scope == "function" }

  alarm_placeholders = {
    api_id = aws_apigatewayv2_api.orders.id
    # The ARN computed in main.tf (the state machine's postcondition holds it
    # equal to the real one), not the resource's attribute: that is unknown
    # while a workflow_type change replaces the state machine, and an unknown
    # inside an alarm's metric_query set makes the AWS provider fail the
    # apply ("Provider produced inconsistent final plan").
    state_machine_arn      = local.state_machine_arn
    order_queue_name       = module.order_queue.queue_name
    dead_letter_queue_name = module.order_queue.dlq_name
    # DOFS custom metrics are dimensioned by deployed function name (stack-scoped).
    function_name_fulfill_order = local.function_names["fulfill_order"]
    function_name_dlq_handler   = local.function_names["dlq_handler"]
    function_name_api_handler   = local.function_names["api_handler"]
  }
}

resource "aws_sns_topic" "on_call" {
  name              = "${local.stack}-on-call"
  display_name      = "DOFS ${local.stack} on-call"
  kms_master_key_id = aws_kms_key.stack.arn
}

resource "aws_sns_topic_subscription" "email" {
  for_each = toset(var.alarm_email_endpoints)

  topic_arn = aws_sns_topic.on_call.arn
  protocol  = "email"
  endpoint  = each.key
}

resource "aws_sns_topic_subscription" "https" {
  for_each = toset(var.alarm_https_endpoints)

  topic_arn              = aws_sns_topic.on_call.arn
  protocol               = "https"
  endpoint               = each.key
  endpoint_auto_confirms = false
}

module "stack_alarm" {
  source   = "./modules/metric_alarm"
  for_each = local.stack_alarms

  alarm_name    = "${local.stack}-${each.key}"
  definition    = each.value
  placeholders  = local.alarm_placeholders
  alarm_actions = [aws_sns_topic.on_call.arn]
}

locals {
  all_alarm_arns = concat(
    [for a in module.stack_alarm : a.arn],
    flatten([for fn in local.function_keys : values(module.functions[fn].alarm_arns)]),
  )

  dashboard_template = jsondecode(templatefile("${local.dashboards_dir}/dashboard.json", merge(
    {
      region = local.region
      api_id = aws_apigatewayv2_api.orders.id
      # As for the alarms: known at plan time, so replacing the state machine
      # leaves the dashboard alone.
      state_machine_arn      = local.state_machine_arn
      order_queue_name       = module.order_queue.queue_name
      dead_letter_queue_name = module.order_queue.dlq_name
    },
    { for fn in local.function_keys : "function_name_${fn}" => local.function_names[fn] },
  )))

  # The funnel is every per-function counter of the metric catalogue, in
  # catalogue order, so a new counter shows up without editing the dashboard.
  # The dimension value is the deployed function name (EMF writes
  # AWS_LAMBDA_FUNCTION_NAME), so this stack's dashboard shows this stack only.
  funnel_metrics = [
    for m in local.metric_catalog.metrics :
    [local.metric_catalog.namespace, m.name, local.metric_catalog.dimension, local.function_names[m.function], { stat = "Sum", label = m.name }]
    if m.unit == "Count" && m.function != "*"
  ]

  # Widgets differ in shape, so they are joined as JSON text rather than
  # combined in one Terraform list (which would need one element type).
  dashboard_widgets = [
    for w in local.dashboard_template.widgets : (
      try(w.dofs_generated, "") == "order_funnel" ? jsonencode({
        type       = w.type, x = w.x, y = w.y, width = w.width, height = w.height
        properties = merge(w.properties, { metrics = local.funnel_metrics })
      }) :
      try(w.dofs_generated, "") == "alarm_status" ? jsonencode({
        type       = w.type, x = w.x, y = w.y, width = w.width, height = w.height
        properties = merge(w.properties, { alarms = local.all_alarm_arns })
      }) :
      jsonencode(w)
    )
  ]
}

resource "aws_cloudwatch_dashboard" "main" {
  dashboard_name = "${local.stack}-orders"
  dashboard_body = "{\"widgets\":[${join(",", local.dashboard_widgets)}]}"
}

locals {
  journey_log_groups = concat(
    [for fn in local.function_keys : module.functions[fn].log_group_name],
    [aws_cloudwatch_log_group.workflow.name],
  )
}

# Replace ORDER_ID with the order's id. Matching on the raw message finds the
# order wherever its id appears: the order_id field of the functions' JSON
# logs, and the execution ARN (named after the order) in the workflow's log.
resource "aws_cloudwatch_query_definition" "order_journey" {
  name            = "${local.stack}/one order's journey by order_id"
  log_group_names = local.journey_log_groups
  query_string    = <<-EOT
    fields @timestamp, @log, level, message, function, trace_id, type
    | filter @message like "ORDER_ID"
    | sort @timestamp asc
    | limit 1000
  EOT
}

# Application errors, and Lambda's own failure records: with the JSON system
# log format a timeout, an out-of-memory kill or a failed init is a
# platform.* record (platform.runtimeDone, platform.initReport, ...) whose
# record.status is not "success", with no `level`.
resource "aws_cloudwatch_query_definition" "errors_by_function" {
  name            = "${local.stack}/errors by function"
  log_group_names = [for fn in local.function_keys : module.functions[fn].log_group_name]
  query_string    = <<-EOT
    fields @timestamp, @log, level, message, order_id, trace_id, type, record.status, record.errorType
    | filter level = "ERROR" or level = "error" or ispresent(errorType) or (ispresent(record.status) and record.status != "success")
    | stats count(*) as errors by @log, bin(5m)
    | sort errors desc
  EOT
}
