# One CloudWatch alarm built from a definition in dashboards/alarms.json.
#
# The JSON is shared with the local runtime, so it cannot hold Terraform
# expressions: dimension values are written as whole `${name}` placeholders and
# resolved here by lookup. A placeholder without a value fails the plan instead
# of silently creating an alarm on a dimension nobody emits.

locals {
  is_math = try(var.definition.expression, null) != null

  # "${api_id}" -> "api_id"; a literal value stays as it is.
  placeholder_pattern = "^\\$\\{([a-z_]+)\\}$"

  single_dimensions = local.is_math ? {} : {
    for k, v in try(var.definition.dimensions, {}) :
    k => can(regex(local.placeholder_pattern, v)) ? var.placeholders[regex(local.placeholder_pattern, v)[0]] : v
  }

  math_metrics = local.is_math ? {
    for id, m in var.definition.metrics : id => merge(m, {
      dimensions = {
        for k, v in try(m.dimensions, {}) :
        k => can(regex(local.placeholder_pattern, v)) ? var.placeholders[regex(local.placeholder_pattern, v)[0]] : v
      }
    })
  } : {}

  expression_id = try(var.definition.expression_id, "result")
}

resource "aws_cloudwatch_metric_alarm" "this" {
  alarm_name          = var.alarm_name
  alarm_description   = var.definition.description
  comparison_operator = var.definition.comparison
  evaluation_periods  = var.definition.evaluation_periods
  datapoints_to_alarm = try(var.definition.datapoints_to_alarm, var.definition.evaluation_periods)
  threshold           = var.definition.threshold
  treat_missing_data  = var.definition.treat_missing_data

  # Single-metric form.
  namespace   = local.is_math ? null : var.definition.namespace
  metric_name = local.is_math ? null : var.definition.metric_name
  statistic   = local.is_math ? null : var.definition.statistic
  period      = local.is_math ? null : var.definition.period
  dimensions  = local.is_math ? null : local.single_dimensions

  # Metric-math form: the named metrics feed one expression, which is the
  # only query that returns data (the alarm evaluates it).
  dynamic "metric_query" {
    for_each = local.is_math ? [1] : []
    content {
      id          = local.expression_id
      expression  = var.definition.expression
      label       = try(var.definition.label, var.definition.name)
      return_data = true
    }
  }

  dynamic "metric_query" {
    for_each = local.math_metrics
    content {
      id          = metric_query.key
      return_data = false
      metric {
        namespace   = metric_query.value.namespace
        metric_name = metric_query.value.metric_name
        dimensions  = metric_query.value.dimensions
        stat        = metric_query.value.statistic
        period      = var.definition.period
      }
    }
  }

  alarm_actions             = var.alarm_actions
  ok_actions                = var.alarm_actions
  insufficient_data_actions = []

  tags = var.tags
}
