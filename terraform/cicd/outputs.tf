output "pipeline_name" {
  description = "Name of the CodePipeline."
  value       = aws_codepipeline.main.name
}

output "codestar_connection_arn" {
  description = "ARN of the GitHub connection; complete its handshake in the console once (it starts PENDING)."
  value       = aws_codestarconnections_connection.github.arn
}

output "artifact_bucket" {
  description = "Name of the encrypted, private artifact bucket."
  value       = aws_s3_bucket.artifacts.bucket
}

output "codebuild_project_names" {
  description = "Names of the test, plan and apply CodeBuild projects."
  value = {
    test  = aws_codebuild_project.test.name
    plan  = aws_codebuild_project.deploy["plan"].name
    apply = aws_codebuild_project.deploy["apply"].name
  }
}

output "codebuild_log_groups" {
  description = "CloudWatch log groups of the test, plan and apply builds."
  value       = { for k, g in aws_cloudwatch_log_group.build : k => g.name }
}

output "codebuild_deploy_role_arn" {
  description = "ARN of the plan and apply builds' role, the only one the deploy role trusts."
  value       = aws_iam_role.codebuild_deploy.arn
}

output "deploy_role_arn" {
  description = "ARN of the role that deploys the stack (created here unless deploy_role_arn was given)."
  value       = local.deploy_role_arn
}

output "deploy_role_policy_json" {
  description = "The deploy role's permissions for this stack (deploy-role-policy.json.tftpl rendered), for administrators who bring their own role."
  value       = local.deploy_policy
}

output "stack_state_key" {
  description = "State key of the stack this pipeline deploys (from terraform/envs/<environment>.s3.tfbackend)."
  value       = local.stack_state_key
}
