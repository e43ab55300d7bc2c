variable "aws_region" {
  type        = string
  description = "AWS region of the stack."
  default     = "us-east-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.aws_region))
    error_message = "aws_region must be a region name such as us-east-1."
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
  description = "Application log level of every function."
  default     = "INFO"

  validation {
    condition     = contains(["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"], var.log_level)
    error_message = "log_level must be one of TRACE, DEBUG, INFO, WARN, ERROR, FATAL."
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
  description = "Share of fulfilment attempts fulfill_order fails on purpose (simulated failures), 0 to 1."
  default     = 0.3

  validation {
    condition     = var.failure_rate >= 0 && var.failure_rate <= 1
    error_message = "failure_rate must be between 0 and 1."
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
  description = "Reserved concurrency per function, capping what one runaway function can take from the account; -1 for none."
  default     = -1
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
  description = "Steady-state requests per second the API stage accepts."
  default     = 50
}

variable "api_throttling_burst_limit" {
  type        = number
  description = "Burst of requests the API stage accepts."
  default     = 100
}

variable "jwt_authorizer" {
  type = object({
    issuer   = string
    audience = list(string)
  })
  description = "When set, every route requires a JWT from this issuer (e.g. a Cognito user pool URL) for one of these audiences; null leaves the API open."
  default     = null
}

variable "alarm_email_endpoints" {
  type        = list(string)
  description = "E-mail addresses subscribed to the on-call topic (each must confirm the subscription)."
  default     = []

  validation {
    condition     = alltrue([for e in var.alarm_email_endpoints : can(regex("^[^@\\s]+@[^@\\s]+$", e))])
    error_message = "alarm_email_endpoints must be e-mail addresses."
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
  description = "Protect the DynamoDB tables against deletion (turn on for prod)."
  default     = false
}
