variable "function_name" {
  type        = string
  description = "Deployed name of the function (stack prefix + the crate name, e.g. dofs-dev-api_handler)."
}

variable "description" {
  type        = string
  description = "What the function does, shown in the Lambda console."
}

variable "package_path" {
  type        = string
  description = "Path of the cargo-lambda zip holding the `bootstrap` binary (built for arm64)."
}

variable "package_architecture" {
  type        = string
  description = "Architecture the package was built for, as scripts/package-lambdas.sh records it (target/lambda/ARCH); anything but arm64 is refused."
}

variable "memory_size" {
  type        = number
  description = "Memory in MB; CPU share grows with it."
  default     = 256
}

variable "timeout" {
  type        = number
  description = "Invocation timeout in seconds."
  default     = 10
}

variable "reserved_concurrent_executions" {
  type        = number
  description = "Concurrency reserved for (and capping) the function; -1 leaves it unreserved."
  default     = -1
}

variable "environment" {
  type        = map(string)
  description = "Environment variables the function reads at startup (tables, queue, state machine, failure rate, ...)."
  default     = {}
}

variable "log_level" {
  type        = string
  description = "Log level exported as LOG_LEVEL; Lambda's application-log filter gets it too, but never above INFO (EMF lines count as INFO)."

  validation {
    condition     = contains(["TRACE", "DEBUG", "INFO", "WARN", "ERROR"], var.log_level)
    error_message = "log_level must be one of TRACE, DEBUG, INFO, WARN, ERROR."
  }
}

variable "log_retention_days" {
  type        = number
  description = "Retention of the function's log group, in days."
}

variable "kms_key_arn" {
  type        = string
  description = "Customer managed KMS key for the log group and the environment variables."
}

variable "policy_json" {
  type        = string
  description = "The function's own least-privilege policy document (the module adds its log group, X-Ray and KMS decrypt); a document without statements for a function that calls nothing."
  default     = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
}

variable "alarms" {
  type        = any
  description = "Alarm definitions from dashboards/alarms.json with scope \"function\", keyed by alarm name; `$${function_name}` resolves to this function."
  default     = {}
}

variable "alarm_placeholders" {
  type        = map(string)
  description = "Extra placeholder values for the alarms (function_name is added by the module)."
  default     = {}
}

variable "alarm_actions" {
  type        = list(string)
  description = "ARNs notified on ALARM and OK."
  default     = []
}

variable "tags" {
  type        = map(string)
  description = "Tags for every resource of the function."
  default     = {}
}
