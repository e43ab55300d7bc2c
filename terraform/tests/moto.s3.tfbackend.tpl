# Test-only backend settings, rendered by scripts/terraform-test.sh: the state
# bucket (created in moto by the script) and moto's S3 endpoint. Given after
# envs/<environment>.s3.tfbackend, as the pipeline gives the real bucket and
# region after it.
bucket                      = "dofs-test-state"
region                      = "us-east-1"
endpoints                   = { s3 = "http://127.0.0.1:@PORT@" }
use_path_style              = true
access_key                  = "testing"
secret_key                  = "testing"
skip_credentials_validation = true
skip_requesting_account_id  = true
skip_metadata_api_check     = true
skip_region_validation      = true
