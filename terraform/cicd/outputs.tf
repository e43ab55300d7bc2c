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

output "codebuild_project_name" {
  description = "Name of the CodeBuild project running buildspec.yml."
  value       = aws_codebuild_project.build.name
}

output "codebuild_role_arn" {
  description = "ARN of the build's role (the deploy role must trust it)."
  value       = aws_iam_role.codebuild.arn
}
