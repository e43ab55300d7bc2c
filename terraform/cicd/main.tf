# CI/CD for DOFS: CodePipeline (GitHub through a CodeStar connection) ->
#   Test     CodeBuild `test`: buildspec.yml runs scripts/test (CI=true) and
#            packages the five functions for arm64. Its role cannot deploy.
#   Plan     CodeBuild `plan` (terraform/cicd/buildspec-plan.yml): assumes the
#            deploy role, plans envs/<environment>.tfvars against the state key
#            of envs/<environment>.s3.tfbackend, and tells the pipeline whether
#            the plan deletes or replaces anything (plan_gate.py).
#   Approve  a manual approval, entered only when the plan is destructive.
#   Apply    CodeBuild `apply` (terraform/cicd/buildspec-apply.yml): assumes the
#            deploy role and applies exactly that plan.
# Only the plan and apply projects' role may assume the deploy role; they
# build nothing and install nothing but a checksummed Terraform, so no
# third-party build script or package ever runs with deploy rights. Nor can
# the test project change what they run: its role writes only the packages
# and its cache, never the source or the plan (local.artifact_objects).
#
# A separate root from the stack so that the pipeline is not redeployed by
# itself. The connection is created PENDING: someone must complete the
# GitHub handshake once in the console (terraform/README.md, "First deploy").

data "aws_partition" "current" {}
data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

locals {
  name       = "${var.name_prefix}-${var.environment}"
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.name
  partition  = data.aws_partition.current.partition

  # The stack this pipeline deploys, and its state key: the one convention,
  # read from the file the buildspecs and the README init with.
  stack_vars        = file("${path.module}/../envs/${var.environment}.tfvars")
  stack_backend     = file("${path.module}/../envs/${var.environment}.s3.tfbackend")
  stack_name_prefix = try(regex("(?m)^name_prefix\\s*=\\s*\"([^\"]+)\"", local.stack_vars)[0], "dofs")
  stack_region      = try(regex("(?m)^aws_region\\s*=\\s*\"([^\"]+)\"", local.stack_vars)[0], "us-east-1")
  stack_name        = "${local.stack_name_prefix}-${var.environment}"
  stack_state_key   = regex("(?m)^key\\s*=\\s*\"([^\"]+)\"", local.stack_backend)[0]

  log_groups = {
    for project in ["test", "plan", "apply"] : project => "/aws/codebuild/${local.name}-${project}"
  }

  # The deploy role's permissions, documented in the repository and checked
  # against what Terraform does by terraform/tests/check_deploy_policy.py.
  deploy_policy = templatefile("${path.module}/deploy-role-policy.json.tftpl", {
    partition    = local.partition
    region       = local.stack_region
    account_id   = local.account_id
    stack        = local.stack_name
    state_bucket = var.state_bucket
    state_key    = local.stack_state_key
  })
  deploy_role_arn = var.deploy_role_arn != null ? var.deploy_role_arn : aws_iam_role.deploy[0].arn

  # Where each artifact lives in the artifact bucket. CodePipeline keys an
  # artifact <first 20 characters of the pipeline name>/<artifact name>/<id>
  # (it truncates long artifact names too, hence names of at most 8
  # characters). Each build role may put objects only under the prefixes of
  # the artifacts its stage outputs (and the test project under its cache):
  # no build can overwrite the source, or an artifact a later stage deploys,
  # but the stage that makes it. Were AWS's layout to differ, the upload would
  # be denied and the stage fail: this never grants more, only less.
  pipeline_name   = "${local.name}-pipeline"
  artifact_prefix = "${aws_s3_bucket.artifacts.arn}/${substr(local.pipeline_name, 0, 20)}"
  artifact_objects = {
    for artifact in ["source", "packages", "plan"] : artifact => "${local.artifact_prefix}/${artifact}/*"
  }
  # The test project's S3 cache: its cache block's location, and the objects
  # CodeBuild keeps under it.
  build_cache_prefix  = "build-cache"
  build_cache_objects = "${aws_s3_bucket.artifacts.arn}/${local.build_cache_prefix}/*"
}

# --- encryption ----------------------------------------------------------------

data "aws_iam_policy_document" "kms" {
  #checkov:skip=CKV_AWS_109:A key policy's resource "*" means "this key"; the account root statement is the AWS default that lets IAM policies grant access to the key.
  #checkov:skip=CKV_AWS_111:A key policy's resource "*" means "this key"; the account root statement is the AWS default that lets IAM policies grant access to the key.
  #checkov:skip=CKV_AWS_356:A key policy's resource "*" means "this key", not every resource.
  statement {
    sid     = "AccountAdministration"
    actions = ["kms:*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
    resources = ["*"]
  }

  statement {
    sid     = "CloudWatchLogsEncryption"
    actions = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.amazonaws.com"]
    }
    resources = ["*"]
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = [for group in values(local.log_groups) : "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:${group}"]
    }
  }
}

resource "aws_kms_key" "pipeline" {
  description             = "DOFS ${local.name} pipeline: artifacts and build logs."
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.kms.json
}

resource "aws_kms_alias" "pipeline" {
  name          = "alias/${local.name}-pipeline"
  target_key_id = aws_kms_key.pipeline.key_id
}

# --- artifact bucket -------------------------------------------------------------

resource "aws_s3_bucket" "artifacts" {
  #checkov:skip=CKV_AWS_144:Artifacts are rebuilt from Git on every run; a cross-region replica would protect nothing that cannot be rebuilt.
  #checkov:skip=CKV_AWS_18:Only the pipeline's roles can reach the bucket and CloudTrail records their calls; server access logs would need a second bucket for no extra audit value.
  #checkov:skip=CKV2_AWS_62:Nothing consumes bucket events; the pipeline drives every step itself.
  bucket_prefix = "${local.name}-pipeline-"
  force_destroy = true
}

resource "aws_s3_bucket_public_access_block" "artifacts" {
  bucket                  = aws_s3_bucket.artifacts.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "artifacts" {
  bucket = aws_s3_bucket.artifacts.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_versioning" "artifacts" {
  bucket = aws_s3_bucket.artifacts.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "artifacts" {
  bucket = aws_s3_bucket.artifacts.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.pipeline.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "artifacts" {
  bucket = aws_s3_bucket.artifacts.id

  rule {
    id     = "expire-artifacts"
    status = "Enabled"
    filter {}
    expiration {
      days = var.artifact_retention_days
    }
    noncurrent_version_expiration {
      noncurrent_days = 7
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

data "aws_iam_policy_document" "artifacts_bucket" {
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    resources = [aws_s3_bucket.artifacts.arn, "${aws_s3_bucket.artifacts.arn}/*"]
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "artifacts" {
  bucket     = aws_s3_bucket.artifacts.id
  policy     = data.aws_iam_policy_document.artifacts_bucket.json
  depends_on = [aws_s3_bucket_public_access_block.artifacts]
}

# --- source ------------------------------------------------------------------------

resource "aws_codestarconnections_connection" "github" {
  name          = "${local.name}-github"
  provider_type = "GitHub"
}

# --- build logs ---------------------------------------------------------------------

resource "aws_cloudwatch_log_group" "build" {
  #checkov:skip=CKV_AWS_338:Build logs are reproducible by re-running the build; retention is var.log_retention_days.
  for_each = local.log_groups

  name              = each.value
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.pipeline.arn
}

data "aws_iam_policy_document" "codebuild_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["codebuild.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

# --- the test project: everything that runs third-party code, no deploy rights ------

resource "aws_iam_role" "codebuild_test" {
  name               = "${local.name}-codebuild-test"
  description        = "DOFS test build: reads the source, writes the packages artifact, its logs and its cache. Cannot assume the deploy role."
  assume_role_policy = data.aws_iam_policy_document.codebuild_assume.json
}

data "aws_iam_policy_document" "codebuild_test" {
  statement {
    sid       = "BuildLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.build["test"].arn}:*"]
  }
  # Reads the source; writes only its output (the packages) and its build
  # cache (build-cache/ in the same bucket), never the source or the plan
  # that the deploy projects run.
  statement {
    sid       = "ReadSourceAndCache"
    actions   = ["s3:GetObject", "s3:GetObjectVersion"]
    resources = [local.artifact_objects["source"], local.build_cache_objects]
  }
  statement {
    sid       = "WritePackagesAndCache"
    actions   = ["s3:PutObject"]
    resources = [local.artifact_objects["packages"], local.build_cache_objects]
  }
  statement {
    sid       = "ArtifactsBucket"
    actions   = ["s3:GetBucketLocation", "s3:GetBucketAcl"]
    resources = [aws_s3_bucket.artifacts.arn]
  }
  statement {
    sid       = "ArtifactsKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.pipeline.arn]
  }
}

resource "aws_iam_role_policy" "codebuild_test" {
  name   = "test"
  role   = aws_iam_role.codebuild_test.id
  policy = data.aws_iam_policy_document.codebuild_test.json
}

resource "aws_codebuild_project" "test" {
  name           = "${local.name}-test"
  description    = "DOFS: scripts/test (fmt, clippy, every test suite, the Terraform checks) with CI=true, then the arm64 Lambda packages."
  service_role   = aws_iam_role.codebuild_test.arn
  build_timeout  = 90
  encryption_key = aws_kms_key.pipeline.arn

  source {
    type      = "CODEPIPELINE"
    buildspec = "buildspec.yml"
  }

  artifacts {
    type = "CODEPIPELINE"
  }

  # Cargo's registry, rustup and target/ between builds (paths in
  # buildspec.yml); the role may write there (local.build_cache_objects).
  cache {
    type     = "S3"
    location = "${aws_s3_bucket.artifacts.bucket}/${local.build_cache_prefix}"
  }

  environment {
    compute_type    = var.codebuild_compute_type
    image           = var.codebuild_image
    type            = "LINUX_CONTAINER"
    privileged_mode = false
  }

  logs_config {
    cloudwatch_logs {
      group_name = aws_cloudwatch_log_group.build["test"].name
    }
  }
}

# --- the deploy projects: plan and apply, with the deploy role ---------------------

resource "aws_iam_role" "codebuild_deploy" {
  name               = "${local.name}-codebuild-deploy"
  description        = "DOFS plan and apply builds: read the source, packages and plan artifacts, write the plan, assume the deploy role."
  assume_role_policy = data.aws_iam_policy_document.codebuild_assume.json
}

data "aws_iam_policy_document" "codebuild_deploy" {
  statement {
    sid       = "BuildLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = [for p in ["plan", "apply"] : "${aws_cloudwatch_log_group.build[p].arn}:*"]
  }
  # Reads the source, the packages and the plan; writes only the plan (the
  # Plan stage's output; the Apply stage outputs no artifact).
  statement {
    sid       = "ReadArtifacts"
    actions   = ["s3:GetObject", "s3:GetObjectVersion"]
    resources = [for artifact in ["source", "packages", "plan"] : local.artifact_objects[artifact]]
  }
  statement {
    sid       = "WritePlan"
    actions   = ["s3:PutObject"]
    resources = [local.artifact_objects["plan"]]
  }
  statement {
    sid       = "ArtifactsBucket"
    actions   = ["s3:GetBucketLocation", "s3:GetBucketAcl"]
    resources = [aws_s3_bucket.artifacts.arn]
  }
  statement {
    sid       = "ArtifactsKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.pipeline.arn]
  }
  # The only role of the pipeline that may.
  statement {
    sid       = "Deploy"
    actions   = ["sts:AssumeRole"]
    resources = [local.deploy_role_arn]
  }
  # The smoke check's token for a JWT-protected API (CodeBuild resolves the
  # SECRETS_MANAGER variable with the project's service role).
  dynamic "statement" {
    for_each = var.smoke_authorization_secret_arn == null ? [] : [var.smoke_authorization_secret_arn]
    content {
      sid       = "SmokeToken"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_role_policy" "codebuild_deploy" {
  name   = "deploy"
  role   = aws_iam_role.codebuild_deploy.id
  policy = data.aws_iam_policy_document.codebuild_deploy.json
}

locals {
  deploy_projects = {
    plan = {
      description = "DOFS: terraform plan of envs/${var.environment}.tfvars with the deploy role; exports DESTRUCTIVE for the approval gate."
      buildspec   = "terraform/cicd/buildspec-plan.yml"
    }
    apply = {
      description = "DOFS: terraform apply of the plan the Plan stage made (and, if it was destructive, someone approved), with the deploy role."
      buildspec   = "terraform/cicd/buildspec-apply.yml"
    }
  }
}

resource "aws_codebuild_project" "deploy" {
  for_each = local.deploy_projects

  name           = "${local.name}-${each.key}"
  description    = each.value.description
  service_role   = aws_iam_role.codebuild_deploy.arn
  build_timeout  = 60
  encryption_key = aws_kms_key.pipeline.arn

  source {
    type      = "CODEPIPELINE"
    buildspec = each.value.buildspec
  }

  artifacts {
    type = "CODEPIPELINE"
  }

  environment {
    compute_type    = "BUILD_GENERAL1_SMALL"
    image           = var.codebuild_image
    type            = "LINUX_CONTAINER"
    privileged_mode = false

    environment_variable {
      name  = "TF_STATE_BUCKET"
      value = var.state_bucket
    }
    environment_variable {
      name  = "TF_STATE_REGION"
      value = var.state_bucket_region != null ? var.state_bucket_region : local.region
    }
    environment_variable {
      name  = "DOFS_ENVIRONMENT"
      value = var.environment
    }
    environment_variable {
      name  = "DEPLOY_ROLE_ARN"
      value = local.deploy_role_arn
    }
    dynamic "environment_variable" {
      for_each = each.key == "apply" && var.smoke_authorization_secret_arn != null ? [var.smoke_authorization_secret_arn] : []
      content {
        name  = "SMOKE_XRAY_AUTHORIZATION"
        type  = "SECRETS_MANAGER"
        value = environment_variable.value
      }
    }
  }

  logs_config {
    cloudwatch_logs {
      group_name = aws_cloudwatch_log_group.build[each.key].name
    }
  }
}

# --- the deploy role (unless the account's administrators bring their own) ---------

data "aws_iam_policy_document" "deploy_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "AWS"
      identifiers = [aws_iam_role.codebuild_deploy.arn]
    }
  }
}

resource "aws_iam_role" "deploy" {
  count = var.deploy_role_arn == null ? 1 : 0

  name                 = "${local.name}-deploy"
  description          = "Deploys the DOFS ${local.stack_name} stack; only the pipeline's plan and apply builds may assume it."
  assume_role_policy   = data.aws_iam_policy_document.deploy_assume.json
  permissions_boundary = var.deploy_role_permissions_boundary_arn
}

# The policy is a rendered template, which checkov cannot read; what it
# allows is checked against Terraform's own calls and resources by
# terraform/tests/check_deploy_policy.py instead.
resource "aws_iam_role_policy" "deploy" {
  count = var.deploy_role_arn == null ? 1 : 0

  name   = "deploy-${local.stack_name}"
  role   = aws_iam_role.deploy[0].id
  policy = local.deploy_policy
}

# --- pipeline ------------------------------------------------------------------------

locals {
  # The Approve stage's message. CodePipeline takes at most 500 characters of
  # CustomData; plan_gate.py cuts PLAN_SUMMARY to its SUMMARY_LIMIT so that
  # the message fits (checked below for this stack's name, and by
  # terraform/tests/check_pipeline.py for the longest name allowed).
  approval_message   = "The ${local.stack_name} plan deletes or replaces resources: #{Plan.PLAN_SUMMARY}. Read tfplan.txt in the Plan build's artifact before approving."
  plan_summary_limit = tonumber(regex("(?m)^SUMMARY_LIMIT = ([0-9]+)$", file("${path.module}/plan_gate.py"))[0])
}

data "aws_iam_policy_document" "pipeline_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["codepipeline.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "pipeline" {
  name               = "${local.name}-pipeline"
  description        = "DOFS pipeline: pull from GitHub, store artifacts, run the builds."
  assume_role_policy = data.aws_iam_policy_document.pipeline_assume.json
}

data "aws_iam_policy_document" "pipeline" {
  statement {
    sid       = "Source"
    actions   = ["codestar-connections:UseConnection"]
    resources = [aws_codestarconnections_connection.github.arn]
  }
  # The CodeStarSourceConnection action uploads the source zip with an ACL
  # and tags (aws-cdk#13557; AWS's minimal pipeline policy lists both). The
  # source stage's role is the only one that may write the source artifact.
  statement {
    sid       = "Artifacts"
    actions   = ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:PutObjectAcl", "s3:PutObjectTagging"]
    resources = ["${aws_s3_bucket.artifacts.arn}/*"]
  }
  statement {
    sid       = "ArtifactsBucket"
    actions   = ["s3:GetBucketVersioning", "s3:GetBucketLocation", "s3:GetBucketAcl"]
    resources = [aws_s3_bucket.artifacts.arn]
  }
  statement {
    sid       = "ArtifactsKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.pipeline.arn]
  }
  statement {
    sid       = "Builds"
    actions   = ["codebuild:StartBuild", "codebuild:BatchGetBuilds"]
    resources = concat([aws_codebuild_project.test.arn], [for p in aws_codebuild_project.deploy : p.arn])
  }
}

resource "aws_iam_role_policy" "pipeline" {
  name   = "pipeline"
  role   = aws_iam_role.pipeline.id
  policy = data.aws_iam_policy_document.pipeline.json
}

resource "aws_codepipeline" "main" {
  name          = local.pipeline_name
  role_arn      = aws_iam_role.pipeline.arn
  pipeline_type = "V2"
  # A newer commit supersedes a run still waiting for approval (its plan
  # would be stale anyway: apply refuses a plan older than the state).
  execution_mode = "SUPERSEDED"

  lifecycle {
    precondition {
      condition     = length(replace(local.approval_message, "#{Plan.PLAN_SUMMARY}", "")) + local.plan_summary_limit <= 500
      error_message = "The approval message with a plan summary of SUMMARY_LIMIT (plan_gate.py) characters exceeds CodePipeline's 500 characters of CustomData: lower SUMMARY_LIMIT or shorten the message."
    }
  }

  artifact_store {
    type     = "S3"
    location = aws_s3_bucket.artifacts.bucket
    encryption_key {
      id   = aws_kms_key.pipeline.arn
      type = "KMS"
    }
  }

  stage {
    name = "Source"
    action {
      name             = "GitHub"
      category         = "Source"
      owner            = "AWS"
      provider         = "CodeStarSourceConnection"
      version          = "1"
      output_artifacts = ["source"]
      configuration = {
        ConnectionArn    = aws_codestarconnections_connection.github.arn
        FullRepositoryId = var.github_repository
        BranchName       = var.github_branch
      }
    }
  }

  stage {
    name = "Test"
    action {
      name             = "TestAndPackage"
      category         = "Build"
      owner            = "AWS"
      provider         = "CodeBuild"
      version          = "1"
      input_artifacts  = ["source"]
      output_artifacts = ["packages"]
      configuration = {
        ProjectName = aws_codebuild_project.test.name
      }
    }
  }

  stage {
    name = "Plan"
    action {
      name             = "Plan"
      category         = "Build"
      owner            = "AWS"
      provider         = "CodeBuild"
      version          = "1"
      namespace        = "Plan"
      input_artifacts  = ["source", "packages"]
      output_artifacts = ["plan"]
      configuration = {
        ProjectName   = aws_codebuild_project.deploy["plan"].name
        PrimarySource = "source"
      }
    }
  }

  # Entered only when the plan deletes or replaces something; otherwise
  # skipped (a VariableCheck entry condition with result SKIP).
  stage {
    name = "Approve"

    before_entry {
      condition {
        result = "SKIP"
        rule {
          name = "PlanDestroysOrReplaces"
          rule_type_id {
            category = "Rule"
            owner    = "AWS"
            provider = "VariableCheck"
            version  = "1"
          }
          configuration = {
            Variable = "#{Plan.DESTRUCTIVE}"
            Operator = "EQ"
            Value    = "true"
          }
        }
      }
    }

    action {
      name     = "ApproveDestructivePlan"
      category = "Approval"
      owner    = "AWS"
      provider = "Manual"
      version  = "1"
      configuration = {
        CustomData = local.approval_message
      }
    }
  }

  stage {
    name = "Apply"
    action {
      name            = "Apply"
      category        = "Build"
      owner           = "AWS"
      provider        = "CodeBuild"
      version         = "1"
      input_artifacts = ["source", "packages", "plan"]
      configuration = {
        ProjectName   = aws_codebuild_project.deploy["apply"].name
        PrimarySource = "source"
      }
    }
  }
}
