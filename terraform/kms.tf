# One customer managed key for the stack's data at rest: tables, queues, log
# groups, the on-call topic and the functions' environment. Services that use
# it on the stack's behalf are named in the key policy; the roles that read
# encrypted queues get kms:Decrypt/GenerateDataKey on it in their own policies.

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
    sid = "CloudWatchLogsEncryption"
    actions = [
      "kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*",
    ]
    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.amazonaws.com"]
    }
    resources = ["*"]
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:*"]
    }
  }

  # CloudWatch alarms publish to the encrypted on-call topic.
  statement {
    sid     = "CloudWatchAlarmsPublish"
    actions = ["kms:Decrypt", "kms:GenerateDataKey*"]
    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }
    resources = ["*"]
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_kms_key" "stack" {
  description             = "DOFS ${local.stack}: tables, queues, logs, on-call topic, Lambda environment."
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.kms.json
}

resource "aws_kms_alias" "stack" {
  name          = "alias/${local.stack}"
  target_key_id = aws_kms_key.stack.key_id
}
