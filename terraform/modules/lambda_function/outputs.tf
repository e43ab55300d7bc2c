output "function_name" {
  description = "Name of the function."
  value       = aws_lambda_function.this.function_name
}

output "arn" {
  description = "ARN of the function."
  value       = aws_lambda_function.this.arn
}

output "invoke_arn" {
  description = "ARN API Gateway uses to invoke the function."
  value       = aws_lambda_function.this.invoke_arn
}

output "role_arn" {
  description = "ARN of the function's execution role."
  value       = aws_iam_role.this.arn
}

output "role_name" {
  description = "Name of the function's execution role."
  value       = aws_iam_role.this.name
}

output "log_group_name" {
  description = "Name of the function's log group."
  value       = aws_cloudwatch_log_group.this.name
}

output "alarm_names" {
  description = "Names of the function's alarms, keyed by alarm definition name."
  value       = { for k, a in module.alarm : k => a.name }
}

output "alarm_arns" {
  description = "ARNs of the function's alarms, keyed by alarm definition name."
  value       = { for k, a in module.alarm : k => a.arn }
}
