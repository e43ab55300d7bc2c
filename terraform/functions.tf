# The five functions. Environment variables are the contract with the Rust
# code's startup configuration (ARCHITECTURE.md, "Contracts").

locals {
  function_descriptions = {
    api_handler   = "DOFS HTTP API: validates the request shape, starts the order workflow, answers order status."
    validator     = "DOFS workflow step: business validation of an order."
    order_storage = "DOFS workflow step: stores the order (PENDING or REJECTED) in the orders table."
    fulfill_order = "DOFS order-queue consumer: fulfils PENDING orders, reports failed records for redelivery."
    dlq_handler   = "DOFS dead-letter consumer: records failed orders and marks them FAILED."
  }

  function_environment = {
    api_handler = {
      ORDERS_TABLE            = module.orders_table.name
      STATE_MACHINE_ARN       = local.state_machine_arn
      ORDER_TRACE_SAMPLE_RATE = tostring(var.order_trace_sample_rate)
    }
    validator = {}
    order_storage = {
      ORDERS_TABLE = module.orders_table.name
    }
    fulfill_order = {
      ORDERS_TABLE = module.orders_table.name
      FAILURE_RATE = tostring(local.failure_rate)
    }
    dlq_handler = {
      ORDERS_TABLE        = module.orders_table.name
      FAILED_ORDERS_TABLE = module.failed_orders_table.name
    }
  }
}

module "functions" {
  source   = "./modules/lambda_function"
  for_each = toset(local.function_keys)

  function_name                  = local.function_names[each.key]
  description                    = local.function_descriptions[each.key]
  package_path                   = "${local.packages_dir}/${each.key}/bootstrap.zip"
  package_architecture           = local.packages_arch
  timeout                        = var.function_timeouts[each.key]
  memory_size                    = var.function_memory_mb
  reserved_concurrent_executions = var.reserved_concurrency
  environment                    = local.function_environment[each.key]
  log_level                      = var.log_level
  log_retention_days             = var.log_retention_days
  kms_key_arn                    = aws_kms_key.stack.arn
  policy_json                    = local.function_policies[each.key]

  alarms        = local.function_alarms
  alarm_actions = [aws_sns_topic.on_call.arn]
}
