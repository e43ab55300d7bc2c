output "api_url" {
  description = "Base URL of the order API (POST /orders, GET /orders/{order_id})."
  value       = aws_apigatewayv2_stage.default.invoke_url
}

output "state_machine_arn" {
  description = "ARN of the order workflow state machine."
  value       = aws_sfn_state_machine.order_workflow.arn
}

output "workflow_type" {
  description = "Type of the order workflow, STANDARD or EXPRESS (workflow_type). An EXPRESS execution cannot be described and has no execution history: read an order from the API or the orders table, and an execution's events from the workflow's log group."
  value       = aws_sfn_state_machine.order_workflow.type
}

output "order_queue_url" {
  description = "URL of the order queue fulfill_order consumes."
  value       = module.order_queue.queue_url
}

output "dead_letter_queue_url" {
  description = "URL of the dead-letter queue dlq_handler consumes."
  value       = module.order_queue.dlq_url
}

output "orders_table_name" {
  description = "Name of the orders table."
  value       = module.orders_table.name
}

output "failed_orders_table_name" {
  description = "Name of the failed_orders table."
  value       = module.failed_orders_table.name
}

output "function_names" {
  description = "Deployed Lambda function names, keyed by crate name."
  value       = { for fn in local.function_keys : fn => module.functions[fn].function_name }
}

output "dashboard_url" {
  description = "CloudWatch console URL of the DOFS dashboard."
  value       = "https://${local.region}.console.aws.amazon.com/cloudwatch/home?region=${local.region}#dashboards:name=${aws_cloudwatch_dashboard.main.dashboard_name}"
}

output "on_call_topic_arn" {
  description = "ARN of the on-call SNS topic every alarm notifies."
  value       = aws_sns_topic.on_call.arn
}

output "alarm_names" {
  description = "Names of every CloudWatch alarm of the stack."
  value = concat(
    [for a in module.stack_alarm : a.name],
    flatten([for fn in local.function_keys : values(module.functions[fn].alarm_names)]),
  )
}

output "kms_key_arn" {
  description = "ARN of the stack's customer managed KMS key."
  value       = aws_kms_key.stack.arn
}

output "simulated_failure_rate" {
  description = "Share of fulfilment attempts fulfill_order fails on purpose (failure_rate; 0.3 in dev, 0 in staging and prod). The post-deploy smoke check requires a dead-lettered order, and so dlq_handler in the trace, only when it is above 0."
  value       = local.failure_rate
}
