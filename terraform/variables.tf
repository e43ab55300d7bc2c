variable "aws_region" {
  type        = string
  description = "AWS region of the stack."
  default     = "us-east-1"

  # The workflow ASL names its service integrations as arn:aws:states:::...,
  # and the KMS key policy names logs.<region>.amazonaws.com: both hold in the
  # aws partition only, so GovCloud (us-gov-*), China (cn-*) and the other
  # partitions' regions are refused rather than failing at apply.
  validation {
    condition     = can(regex("^[a-z]{2}-[a-z]+-[0-9]+$", var.aws_region)) && !startswith(var.aws_region, "cn-")
    error_message = "aws_region must be a region of the aws partition, such as us-east-1 (GovCloud and China regions are not supported)."
  }
}

variable "name_prefix" {
  type        = string
  description = "Prefix of every resource name; with the environment it makes a stack name such as dofs-dev."
  default     = "dofs"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,15}$", var.name_prefix))
    error_message = "name_prefix must be 2-16 lowercase letters, digits or dashes, starting with a letter."
  }
}

variable "environment" {
  type        = string
  description = "Deployment environment."
  default     = "dev"

  validation {
    condition     = contains(["dev", "staging", "prod"], var.environment)
    error_message = "environment must be one of dev, staging, prod."
  }
}

variable "tags" {
  type        = map(string)
  description = "Extra tags on every resource (Project, Environment and ManagedBy are always set)."
  default     = {}
}

variable "lambda_packages_dir" {
  type        = string
  description = "Folder holding <function>/bootstrap.zip for the five functions (as written by scripts/package-lambdas.sh); null means target/lambda at the repository root."
  default     = null
}

variable "log_level" {
  type        = string
  description = "Log level of every function (LOG_LEVEL). Lambda's own application-log filter is set to this level only up to INFO: EMF metric lines carry no level, which Lambda counts as INFO, so a WARN or ERROR filter would drop every metric."
  default     = "INFO"

  # No FATAL: tracing has no such level (the code would read it as a filter
  # target and log nothing).
  validation {
    condition     = contains(["TRACE", "DEBUG", "INFO", "WARN", "ERROR"], var.log_level)
    error_message = "log_level must be one of TRACE, DEBUG, INFO, WARN, ERROR."
  }
}

variable "log_retention_days" {
  type        = number
  description = "Retention in days of every log group (functions, workflow, API access logs)."
  default     = 30

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a retention CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, ... 3653)."
  }
}

variable "failure_rate" {
  type        = number
  description = "Share of fulfilment attempts fulfill_order fails on purpose (simulated failures), 0 to 1; null means 0.3 in dev and 0 elsewhere. prod refuses anything but 0."
  default     = null

  validation {
    condition     = coalesce(var.failure_rate, 0) >= 0 && coalesce(var.failure_rate, 0) <= 1
    error_message = "failure_rate must be between 0 and 1."
  }

  validation {
    condition     = var.environment != "prod" || coalesce(var.failure_rate, 0) == 0
    error_message = "prod must not simulate fulfilment failures: leave failure_rate unset (0) in prod."
  }
}

variable "order_trace_sample_rate" {
  type        = number
  description = "Share of orders api_handler traces in X-Ray, 0 to 1 (1: every order). HTTP APIs cannot start a trace, so api_handler decides per order and starts the order's trace itself (passed as ORDER_TRACE_SAMPLE_RATE)."
  default     = 1

  validation {
    condition     = var.order_trace_sample_rate >= 0 && var.order_trace_sample_rate <= 1
    error_message = "order_trace_sample_rate must be between 0 and 1."
  }
}

variable "workflow_type" {
  type        = string
  description = "Type of the order workflow's state machine, STANDARD or EXPRESS. STANDARD: exactly-once executions deduplicated by name (the order_id), DescribeExecution and GetExecutionHistory (kept 90 days), billed per state transition (about five per order). EXPRESS: billed per request and duration, far cheaper per order, but an asynchronous start is at-least-once and names are not deduplicated (DOFS relies on the orders table's conditional writes instead), there is no DescribeExecution or GetExecutionHistory (the history is only in the workflow's CloudWatch Logs group, logged at level ALL without execution data), and an execution ends after 5 minutes at most. Changing it replaces the state machine (the pipeline's approval gate stops for it)."
  default     = "STANDARD"

  # Step Functions developer guide, "Choosing workflow type in Step Functions":
  # https://docs.aws.amazon.com/step-functions/latest/dg/concepts-standard-vs-express.html
  # and "Execution guarantees" (at-least-once, no name idempotency for
  # asynchronous Express):
  # https://docs.aws.amazon.com/step-functions/latest/dg/express-at-least-once-execution.html
  validation {
    condition     = contains(["STANDARD", "EXPRESS"], var.workflow_type)
    error_message = "workflow_type must be STANDARD or EXPRESS (upper case, as Step Functions spells the type)."
  }
}

variable "function_timeouts" {
  type        = map(number)
  description = "Timeout in seconds per function; the order queue's visibility timeout is 6x fulfill_order's."
  default = {
    api_handler   = 10
    validator     = 10
    order_storage = 10
    fulfill_order = 10
    dlq_handler   = 10
  }

  validation {
    condition     = alltrue([for k in ["api_handler", "validator", "order_storage", "fulfill_order", "dlq_handler"] : contains(keys(var.function_timeouts), k)])
    error_message = "function_timeouts needs a value for api_handler, validator, order_storage, fulfill_order and dlq_handler."
  }

  validation {
    condition     = alltrue([for v in values(var.function_timeouts) : v >= 1 && v <= 900])
    error_message = "Function timeouts must be between 1 and 900 seconds."
  }

  # API Gateway gives an HTTP API integration at most 30 s; the integration
  # timeout is api_handler's timeout + 0.5 s.
  validation {
    condition     = lookup(var.function_timeouts, "api_handler", 10) <= 29
    error_message = "api_handler's timeout must be at most 29 seconds (HTTP APIs cut integrations off at 30 s)."
  }
}

variable "function_memory_mb" {
  type        = number
  description = "Memory of every function in MB (Rust binaries need little; more memory also means more CPU)."
  default     = 256

  validation {
    condition     = var.function_memory_mb >= 128 && var.function_memory_mb <= 10240
    error_message = "function_memory_mb must be between 128 and 10240."
  }
}

variable "reserved_concurrency" {
  type        = number
  description = "Reserved concurrency per function, capping what one runaway function can take from the account; -1 (the default) reserves nothing. New accounts have a low concurrency quota, and a reservation that leaves the account fewer than 100 unreserved executions fails the apply."
  default     = -1

  # 0 would disable every function.
  validation {
    condition     = var.reserved_concurrency == -1 || var.reserved_concurrency >= 1
    error_message = "reserved_concurrency must be -1 (no reservation) or at least 1."
  }

  validation {
    condition     = var.reserved_concurrency == -1 || var.reserved_concurrency >= var.queue_maximum_concurrency
    error_message = "reserved_concurrency must be at least queue_maximum_concurrency, or the queue consumers are throttled and throttled deliveries count as receives."
  }
}

variable "max_receive_count" {
  type        = number
  description = "Deliveries of an order-queue message before it is redriven to the dead-letter queue."
  default     = 3

  validation {
    condition     = var.max_receive_count >= 1 && var.max_receive_count <= 10
    error_message = "max_receive_count must be between 1 and 10."
  }
}

variable "queue_maximum_concurrency" {
  type        = number
  description = "Most concurrent invocations each queue's event source mapping makes (scaling_config.maximum_concurrency). Without a cap the mappings compete with the API and the workflow for the account's concurrency, and throttled SQS deliveries still count towards max_receive_count."
  default     = 5

  validation {
    condition     = var.queue_maximum_concurrency >= 2 && var.queue_maximum_concurrency <= 1000
    error_message = "queue_maximum_concurrency must be between 2 and 1000 (the event source mapping limits)."
  }
}

variable "queue_batch_size" {
  type        = number
  description = "Messages per fulfill_order / dlq_handler invocation."
  default     = 10

  validation {
    condition     = var.queue_batch_size >= 1 && var.queue_batch_size <= 10
    error_message = "queue_batch_size must be between 1 and 10 (no batching window is configured)."
  }
}

variable "api_throttling_rate_limit" {
  type        = number
  description = "Steady-state requests per second the API stage accepts for a route without its own entry in api_route_throttling."
  default     = 50

  validation {
    condition     = var.api_throttling_rate_limit > 0
    error_message = "api_throttling_rate_limit must be positive."
  }
}

variable "api_throttling_burst_limit" {
  type        = number
  description = "Burst of requests the API stage accepts for a route without its own entry in api_route_throttling."
  default     = 100

  validation {
    condition     = var.api_throttling_burst_limit > 0
    error_message = "api_throttling_burst_limit must be positive."
  }
}

variable "api_route_throttling" {
  type = map(object({
    rate_limit  = number
    burst_limit = number
  }))
  description = "Per-route throttling, keyed by route key. Every POST /orders starts a workflow execution (state transitions, three or more invocations, table and queue writes), so it gets a tighter limit than reads; $default only ever answers 404/405."
  default = {
    "POST /orders"           = { rate_limit = 10, burst_limit = 20 }
    "GET /orders/{order_id}" = { rate_limit = 50, burst_limit = 100 }
    "$default"               = { rate_limit = 5, burst_limit = 10 }
  }

  validation {
    condition     = alltrue([for k in keys(var.api_route_throttling) : contains(["POST /orders", "GET /orders/{order_id}", "$default"], k)])
    error_message = "api_route_throttling keys must be route keys of the API: \"POST /orders\", \"GET /orders/{order_id}\", \"$default\"."
  }

  validation {
    condition     = alltrue([for r in values(var.api_route_throttling) : r.rate_limit > 0 && r.burst_limit > 0])
    error_message = "Route throttling limits must be positive."
  }
}

variable "jwt_authorizer" {
  type = object({
    issuer   = string
    audience = list(string)
  })
  description = "Every route requires a JWT from this issuer (e.g. a Cognito user pool URL) for one of these audiences. Required outside dev; null (dev only) leaves the API open."
  default     = null

  validation {
    condition     = var.jwt_authorizer == null || (startswith(try(var.jwt_authorizer.issuer, ""), "https://") && length(try(var.jwt_authorizer.audience, [])) > 0 && alltrue([for a in try(var.jwt_authorizer.audience, []) : length(a) > 0]))
    error_message = "jwt_authorizer needs an https:// issuer and at least one non-empty audience (API Gateway refuses anything else)."
  }

  validation {
    condition     = var.environment == "dev" || var.jwt_authorizer != null
    error_message = "Outside dev the order API must not be public: set jwt_authorizer."
  }
}

variable "alarm_email_endpoints" {
  type        = list(string)
  description = "E-mail addresses subscribed to the on-call topic (each must confirm the subscription)."
  default     = []

  validation {
    condition     = alltrue([for e in var.alarm_email_endpoints : can(regex("^[^@\\s]+@[^@\\s]+$", e))])
    error_message = "alarm_email_endpoints must be e-mail addresses."
  }

  validation {
    condition     = var.environment != "prod" || length(var.alarm_email_endpoints) + length(var.alarm_https_endpoints) > 0
    error_message = "A prod stack needs someone to page: set alarm_email_endpoints or alarm_https_endpoints."
  }
}

variable "alarm_https_endpoints" {
  type        = list(string)
  description = "HTTPS webhooks (e.g. a paging service) subscribed to the on-call topic."
  default     = []

  validation {
    condition     = alltrue([for e in var.alarm_https_endpoints : startswith(e, "https://")])
    error_message = "alarm_https_endpoints must be https:// URLs."
  }
}

variable "deletion_protection" {
  type        = bool
  description = "Protect the DynamoDB tables against deletion; null means on in prod and off elsewhere. prod refuses false."
  default     = null

  validation {
    condition     = var.environment != "prod" || var.deletion_protection != false
    error_message = "prod tables keep deletion protection: leave deletion_protection unset or true in prod."
  }
}
