output "arn" {
  description = "ARN of the alarm."
  value       = aws_cloudwatch_metric_alarm.this.arn
}

output "name" {
  description = "Name of the alarm."
  value       = aws_cloudwatch_metric_alarm.this.alarm_name
}
