# Test-only override, rendered by scripts/terraform-test.sh into a scratch copy
# of terraform/ (never into terraform/ itself): the AWS provider pointed at the
# moto server on 127.0.0.1:@PORT@ with fake credentials. The apply adds
# local_backend_override.tf (local state); the per-environment plans keep the
# real S3 backend, pointed at moto's S3 by tests/moto.s3.tfbackend.tpl. The
# real configuration stays untouched.

provider "aws" {
  region                      = "us-east-1"
  access_key                  = "testing"
  secret_key                  = "testing"
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
  s3_use_path_style           = true

  endpoints {
    apigatewayv2 = "http://127.0.0.1:@PORT@"
    cloudwatch   = "http://127.0.0.1:@PORT@"
    dynamodb     = "http://127.0.0.1:@PORT@"
    iam          = "http://127.0.0.1:@PORT@"
    kms          = "http://127.0.0.1:@PORT@"
    lambda       = "http://127.0.0.1:@PORT@"
    logs         = "http://127.0.0.1:@PORT@"
    s3           = "http://127.0.0.1:@PORT@"
    sfn          = "http://127.0.0.1:@PORT@"
    sns          = "http://127.0.0.1:@PORT@"
    sqs          = "http://127.0.0.1:@PORT@"
    sts          = "http://127.0.0.1:@PORT@"
  }
}
