variable "alarm_name" {
  type        = string
  description = "Full CloudWatch alarm name (already prefixed with the stack name)."
}

variable "definition" {
  type        = any
  description = "One alarm from dashboards/alarms.json, as decoded JSON: either `metric` (a single metric) or `expression` over `metrics` (metric math), plus statistic, period, evaluation_periods, threshold, comparison and treat_missing_data."

  validation {
    condition     = (try(var.definition.expression, null) == null) == (try(var.definition.metrics, null) == null)
    error_message = "An alarm has either a single metric (namespace, metric_name, statistic) or an expression together with its named metrics."
  }

  validation {
    condition = contains([
      "GreaterThanThreshold", "GreaterThanOrEqualToThreshold", "LessThanThreshold", "LessThanOrEqualToThreshold",
    ], var.definition.comparison)
    error_message = "comparison must be one of GreaterThanThreshold, GreaterThanOrEqualToThreshold, LessThanThreshold, LessThanOrEqualToThreshold."
  }

  validation {
    condition     = contains(["breaching", "notBreaching", "ignore", "missing"], var.definition.treat_missing_data)
    error_message = "treat_missing_data must be one of breaching, notBreaching, ignore, missing."
  }
}

variable "placeholders" {
  type        = map(string)
  description = "Values for the `$${name}` placeholders that alarm dimensions use (e.g. function_name, api_id, dead_letter_queue_name)."
}

variable "alarm_actions" {
  type        = list(string)
  description = "ARNs notified on ALARM and on OK (the on-call SNS topic)."
}

variable "tags" {
  type        = map(string)
  description = "Tags for the alarm."
  default     = {}
}
