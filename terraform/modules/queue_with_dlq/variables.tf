variable "name" {
  type        = string
  description = "Name of the main queue; the dead-letter queue is named <name>-dlq."
}

variable "visibility_timeout_seconds" {
  type        = number
  description = "Visibility timeout of the main queue; AWS advises at least 6x the consuming function's timeout."
}

variable "consumer_timeout_seconds" {
  type        = number
  description = "Timeout of the function consuming the main queue, checked against the visibility timeout."

  validation {
    condition     = var.consumer_timeout_seconds > 0
    error_message = "consumer_timeout_seconds must be positive."
  }
}

variable "max_receive_count" {
  type        = number
  description = "Receives of one message before SQS moves it to the dead-letter queue."
  default     = 3

  validation {
    condition     = var.max_receive_count >= 1 && var.max_receive_count <= 1000
    error_message = "max_receive_count must be between 1 and 1000."
  }
}

variable "message_retention_seconds" {
  type        = number
  description = "Retention of the main queue."
  default     = 345600
}

variable "dlq_message_retention_seconds" {
  type        = number
  description = "Retention of the dead-letter queue (the SQS maximum, 14 days, gives on-call the most time)."
  default     = 1209600
}

variable "dlq_visibility_timeout_seconds" {
  type        = number
  description = "Visibility timeout of the dead-letter queue (>= 6x its consumer's timeout)."
  default     = 60
}

variable "kms_key_arn" {
  type        = string
  description = "Customer managed KMS key for server-side encryption of both queues."
}

variable "tags" {
  type        = map(string)
  description = "Tags for both queues."
  default     = {}
}
