# Names and shared data for the DOFS stack. The concerns live in their own
# files: kms.tf, tables.tf, queues.tf, iam.tf, functions.tf, workflow.tf,
# api.tf, observability.tf.

data "aws_partition" "current" {}
data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

locals {
  stack = "${var.name_prefix}-${var.environment}"

  # The five functions, named exactly like their crates.
  function_keys = ["api_handler", "validator", "order_storage", "fulfill_order", "dlq_handler"]
  function_names = {
    for fn in local.function_keys : fn => "${local.stack}-${fn}"
  }

  packages_dir = coalesce(var.lambda_packages_dir, "${path.root}/../target/lambda")
  # scripts/package-lambdas.sh records the architecture it built for; the
  # functions run on arm64, so anything else is refused at plan time (see
  # modules/lambda_function).
  packages_arch_file = "${local.packages_dir}/ARCH"
  packages_arch      = fileexists(local.packages_arch_file) ? trimspace(file(local.packages_arch_file)) : "unknown (no ${local.packages_arch_file})"

  # Environment-dependent defaults: simulated failures only in dev, tables
  # protected in prod (variables.tf refuses the unsafe values in prod).
  failure_rate        = coalesce(var.failure_rate, var.environment == "dev" ? 0.3 : 0)
  deletion_protection = coalesce(var.deletion_protection, var.environment == "prod")

  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.name
  partition  = data.aws_partition.current.partition

  # Known before apply, so the IAM policies and the workflow can name the
  # state machine without a dependency cycle (api_handler needs its ARN,
  # the state machine needs the functions).
  state_machine_name = "${local.stack}-order-workflow"
  state_machine_arn  = "arn:${local.partition}:states:${local.region}:${local.account_id}:stateMachine:${local.state_machine_name}"
}
