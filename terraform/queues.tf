module "order_queue" {
  source = "./modules/queue_with_dlq"

  name                       = "${local.stack}-orders"
  consumer_timeout_seconds   = var.function_timeouts["fulfill_order"]
  visibility_timeout_seconds = 6 * var.function_timeouts["fulfill_order"]
  max_receive_count          = var.max_receive_count
  # dlq_handler consumes the DLQ; same 6x rule.
  dlq_visibility_timeout_seconds = 6 * var.function_timeouts["dlq_handler"]
  kms_key_arn                    = aws_kms_key.stack.arn
}

# Partial batch responses: only the failed messages of a batch are retried.
# maximum_concurrency caps the invocations each mapping makes, so the
# consumers are not throttled (a throttled delivery still counts as a
# receive, and after max_receive_count of them an order is dead-lettered
# without ever being processed).
resource "aws_lambda_event_source_mapping" "fulfill_order" {
  event_source_arn        = module.order_queue.queue_arn
  function_name           = module.functions["fulfill_order"].arn
  batch_size              = var.queue_batch_size
  function_response_types = ["ReportBatchItemFailures"]
  enabled                 = true

  scaling_config {
    maximum_concurrency = var.queue_maximum_concurrency
  }
}

resource "aws_lambda_event_source_mapping" "dlq_handler" {
  event_source_arn        = module.order_queue.dlq_arn
  function_name           = module.functions["dlq_handler"].arn
  batch_size              = var.queue_batch_size
  function_response_types = ["ReportBatchItemFailures"]
  enabled                 = true

  scaling_config {
    maximum_concurrency = var.queue_maximum_concurrency
  }
}
