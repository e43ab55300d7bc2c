module "orders_table" {
  source = "./modules/dynamodb_table"

  name                = "${local.stack}-orders"
  kms_key_arn         = aws_kms_key.stack.arn
  deletion_protection = local.deletion_protection
}

module "failed_orders_table" {
  source = "./modules/dynamodb_table"

  name                = "${local.stack}-failed-orders"
  kms_key_arn         = aws_kms_key.stack.arn
  deletion_protection = local.deletion_protection
}
