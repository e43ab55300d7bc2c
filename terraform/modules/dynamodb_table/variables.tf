variable "name" {
  type        = string
  description = "Name of the table."
}

variable "hash_key" {
  type        = string
  description = "Name of the string partition key."
  default     = "order_id"
}

variable "kms_key_arn" {
  type        = string
  description = "Customer managed KMS key for server-side encryption."
}

variable "deletion_protection" {
  type        = bool
  description = "Refuse DeleteTable (on for production stacks)."
  default     = false
}

variable "tags" {
  type        = map(string)
  description = "Tags for the table."
  default     = {}
}
