#!/usr/bin/env bash
# The Terraform checks, with no AWS account:
#   1. terraform fmt -check -recursive, init -backend=false and validate (stack and CI/CD roots)
#   2. consistency of metrics, alarms, function/queue/table names (terraform/tests/check_consistency.py)
#   3. statelint on the rendered workflow ASL
#   4. checkov on terraform/ (zero failed checks; every skip carries its reason)
#   5. the pipeline as files (terraform/tests/check_pipeline.py): buildspec.yml runs scripts/test with
#      CI=true and packages arm64; the deploy buildspecs build nothing and verify what they download;
#      the CI/CD root splits test, plan, approval and apply and only the deploy projects may assume
#      the deploy role; envs/<env> files agree; every command of terraform/README.md refers to files,
#      variables and outputs that exist
#   6. the AWS requests each function's bootstrap makes, recorded on moto per function
#      (cargo test --test it iam::, harness/tests/it/iam.rs)
#   7. on one moto (terraform/tests/moto_wrapper.py, every request recorded):
#      a. terraform apply of the whole stack (local state, tests/moto.tfvars), boto3 assertions
#         (terraform/tests/assert_stack.py), the IAM cross-check of every role against the code and the
#         ASL (terraform/tests/check_iam.py, with the recording of 6), the plan gate on an update and
#         a replacement plan (terraform/cicd/plan_gate.py); then the same stack switched to
#         workflow_type = "EXPRESS" (a plan that replaces the state machine and nothing else, which
#         the gate stops for, applied and asserted again: type EXPRESS, logging at level ALL without
#         execution data, TimeoutSeconds within Express's 300 s), then terraform destroy;
#      b. a plan of envs/dev.tfvars and of envs/prod.tfvars, each initialised with its
#         envs/<env>.s3.tfbackend against moto's S3, as the pipeline does (terraform/tests/check_plans.py:
#         distinct state keys, prod protected, authorized, paged, without simulated failures), and
#         plans that must be refused: x86_64 packages; prod without an authorizer or subscribers, with
#         simulated failures or deletable tables;
#      c. the deploy role's policy (terraform/cicd/deploy-role-policy.json.tftpl) against every call
#         Terraform made in a and b and every resource it created (terraform/tests/check_deploy_policy.py).
#    The CI/CD root is validated, scanned and checked as files, not applied: moto has no CodeStar
#    connections.
# Every step runs; the script exits non-zero if any failed. A missing tool fails the run when
# CI=true and is otherwise skipped with a message.
set -uo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
# shellcheck source=scripts/tools.sh
. scripts/tools.sh || echo "terraform-test: scripts/tools.sh failed; using tools already on PATH" >&2
set +e

functions=(api_handler validator order_storage fulfill_order dlq_handler)
py="${DOFS_VENV:-$repo/target/tools/venv}/bin/python"
[ -x "$py" ] || py="$(command -v python3)"
work="$(mktemp -d "${TMPDIR:-/tmp}/dofs-terraform-test.XXXXXX")"
failures=()
moto_pid=""

cleanup() {
  if [ -n "$moto_pid" ] && kill -0 "$moto_pid" 2>/dev/null; then
    kill "$moto_pid" 2>/dev/null
    wait "$moto_pid" 2>/dev/null
  fi
  if [ -n "${DOFS_TERRAFORM_TEST_KEEP:-}" ]; then
    echo "terraform-test: kept $work (DOFS_TERRAFORM_TEST_KEEP)"
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT

step() { printf '\n--- terraform-test: %s\n' "$*"; step_started=$SECONDS; }
pass() { printf -- '--- ok (%ss)\n' "$((SECONDS - step_started))"; }
fail() { printf -- '--- FAILED: %s (%ss)\n' "$*" "$((SECONDS - step_started))"; failures+=("$*"); }
missing() {
  if [ "${CI:-}" = "true" ]; then
    fail "$1 not found (required when CI=true)"
  else
    printf -- '--- SKIPPED: %s not found; install it with scripts/tools.sh (this would fail under CI=true)\n' "$1" >&2
  fi
}
have() { command -v "$1" >/dev/null 2>&1; }
has_python_module() { "$py" -c "import $1" >/dev/null 2>&1; }
# A Terraform log with its diagnostics' box drawing and line wrapping undone.
flat() { sed 's/^[│╷╵ ]*//' "$1" | tr '\n' ' ' | tr -s ' '; }

# --- 1. fmt and validate -----------------------------------------------------------
step "terraform fmt -check -recursive"
if ! have terraform; then
  missing terraform
else
  if terraform fmt -check -recursive -diff terraform; then pass; else fail "terraform fmt"; fi

  for root in terraform terraform/cicd; do
    step "terraform validate ($root)"
    data_dir="$work/validate-$(basename "$root")"
    if TF_DATA_DIR="$data_dir" terraform -chdir="$root" init -backend=false -input=false -lockfile=readonly >"$data_dir.log" 2>&1 &&
      TF_DATA_DIR="$data_dir" terraform -chdir="$root" validate -no-color; then
      pass
    else
      cat "$data_dir.log" 2>/dev/null
      fail "terraform validate $root"
    fi
  done
fi

# --- 2. consistency ----------------------------------------------------------------
step "consistency: metrics, alarms, names"
if ! has_python_module hcl2; then
  missing "python-hcl2 (installed with checkov)"
elif "$py" terraform/tests/check_consistency.py "$repo"; then
  pass
else
  fail "consistency"
fi

# --- 3. statelint --------------------------------------------------------------------
step "statelint on the rendered ASL"
if ! have statelint; then
  missing statelint
else
  # Render like templatefile does, with values of the right shape.
  "$py" - "$repo/terraform/order_workflow.asl.json" "$work/order_workflow.json" <<'PY'
import re, sys
values = {
    "validator_function_arn": "arn:aws:lambda:us-east-1:123456789012:function:dofs-dev-validator",
    "order_storage_function_arn": "arn:aws:lambda:us-east-1:123456789012:function:dofs-dev-order_storage",
    "order_queue_url": "https://sqs.us-east-1.amazonaws.com/123456789012/dofs-dev-orders",
    "dead_letter_queue_url": "https://sqs.us-east-1.amazonaws.com/123456789012/dofs-dev-orders-dlq",
}
text = open(sys.argv[1], encoding="utf-8").read()
rendered = re.sub(r"\$\{(\w+)\}", lambda m: values[m.group(1)], text)
open(sys.argv[2], "w", encoding="utf-8").write(rendered)
PY
  if [ $? -eq 0 ] && out="$(statelint "$work/order_workflow.json" 2>&1)" && [ -z "$out" ]; then
    pass
  else
    printf '%s\n' "$out"
    fail "statelint"
  fi
fi

# --- 4. checkov ----------------------------------------------------------------------
step "checkov on terraform/"
if ! have checkov; then
  missing checkov
elif checkov -d terraform --framework terraform --skip-path tests --skip-download --compact --quiet; then
  pass
else
  fail "checkov"
fi

# --- 5. the pipeline as files ---------------------------------------------------------
step "pipeline, envs and README (check_pipeline.py)"
if ! has_python_module hcl2 || ! has_python_module yaml; then
  missing "python-hcl2 and PyYAML (installed with checkov)"
elif "$py" terraform/tests/check_pipeline.py "$repo"; then
  pass
else
  fail "pipeline, envs and README"
fi

# --- 6. each function's AWS requests, recorded ------------------------------------------
step "AWS requests of each bootstrap on moto (cargo test --test it iam::)"
recorded="$work/recorded-calls.json"
if ! have cargo; then
  missing cargo
elif DOFS_IAM_RECORD_OUT="$recorded" cargo test --workspace --locked --quiet --test it -- iam:: >"$work/iam-harness.log" 2>&1 &&
  [ -s "$recorded" ]; then
  pass
else
  tail -40 "$work/iam-harness.log"
  if [ ! -s "$recorded" ] && [ "${CI:-}" != "true" ] && grep -q SKIPPED "$work/iam-harness.log"; then
    printf -- '--- SKIPPED: the harness could not record (see above); the IAM cross-check will be skipped\n' >&2
  else
    fail "recording each bootstrap's AWS requests"
  fi
fi

# --- 7. on moto: apply, IAM, gate, destroy; env plans; deploy policy ---------------------
if ! have terraform; then
  step "terraform on moto"
  missing terraform
elif ! has_python_module moto || ! has_python_module boto3; then
  step "terraform on moto"
  missing "moto[server] and boto3"
else
  step "moto (recording every request)"
  requests="$work/terraform-requests.jsonl"
  "$py" terraform/tests/moto_wrapper.py --record "$requests" "$work/moto.port" >"$work/moto.log" 2>&1 &
  moto_pid=$!
  for _ in $(seq 1 100); do [ -s "$work/moto.port" ] && break; sleep 0.1; done
  port="$(cat "$work/moto.port" 2>/dev/null)"
  if [ -n "$port" ]; then
    echo "terraform-test: moto on 127.0.0.1:$port"
    pass
  else
    cat "$work/moto.log"
    fail "moto did not start"
  fi

  # Packages: the real ones when scripts/package-lambdas.sh built them for arm64, else a
  # placeholder bootstrap (moto stores the zip but never runs it); ARCH says arm64 either way.
  packages="$work/packages"
  mkdir -p "$packages"
  if [ "$(cat target/lambda/ARCH 2>/dev/null)" = "arm64" ]; then
    real_packages=1
  else
    real_packages=0
    echo "terraform-test: no arm64 packages in target/lambda; using placeholders"
  fi
  for fn in "${functions[@]}"; do
    mkdir -p "$packages/$fn"
    if [ "$real_packages" = 1 ] && [ -f "target/lambda/$fn/bootstrap.zip" ]; then
      cp "target/lambda/$fn/bootstrap.zip" "$packages/$fn/"
    else
      "$py" -c '
import sys, zipfile
info = zipfile.ZipInfo("bootstrap")
info.external_attr = 0o755 << 16
with zipfile.ZipFile(sys.argv[1], "w") as z:
    z.writestr(info, "#!/bin/sh\necho placeholder package >&2\nexit 1\n")
' "$packages/$fn/bootstrap.zip"
    fi
  done
  echo arm64 >"$packages/ARCH"

  # A scratch copy of the stack with the moto provider override.
  scratch() { # scratch DIR: terraform/ and dashboards/ copied, provider on moto
    mkdir -p "$1"
    cp -r terraform dashboards "$1/"
    rm -rf "$1/terraform/.terraform" "$1/terraform/terraform.tfstate"*
    sed "s/@PORT@/$port/g" terraform/tests/moto_override.tf.tpl >"$1/terraform/moto_override.tf"
  }

  # --- 7a. apply, assert, IAM, gate, destroy
  step "terraform apply / assert / IAM cross-check / plan gate / destroy on moto"
  if [ -z "$port" ]; then
    fail "apply on moto (no moto)"
  else
    (
      set -e
      stack="$work/stack"
      scratch "$stack"
      cp terraform/tests/local_backend_override.tf "$stack/terraform/"
      cd "$stack/terraform"
      export TF_DATA_DIR="$stack/.terraform"
      vars=(-var-file=tests/moto.tfvars -var "lambda_packages_dir=$packages")
      terraform init -input=false -lockfile=readonly >"$work/init.log" 2>&1 || { cat "$work/init.log"; exit 1; }
      apply_started=$SECONDS
      if ! terraform apply -auto-approve -input=false -no-color "${vars[@]}" >"$work/apply.log" 2>&1; then
        tail -60 "$work/apply.log"
        echo "terraform-test: moto's answers other than 2xx, and the wrapper's notes:"
        grep -v -E '" [23][0-9][0-9] ' "$work/moto.log" | head -40
        exit 1
      fi
      echo "terraform-test: apply took $((SECONDS - apply_started))s ($(grep -c 'Creation complete' "$work/apply.log") resources)"
      terraform output -json >"$work/outputs.json"
      terraform show -json >"$work/state.json"

      checks=0
      "$py" "$repo/terraform/tests/assert_stack.py" "http://127.0.0.1:$port" "$work/outputs.json" "$repo" || checks=1
      if [ -s "$recorded" ]; then
        "$py" "$repo/terraform/tests/check_iam.py" "$work/state.json" "$recorded" "$repo" || checks=1
      elif [ "${CI:-}" = "true" ]; then
        echo "terraform-test: no recording of the functions' requests (step 6); IAM cross-check impossible"
        checks=1
      else
        echo "terraform-test: SKIPPED the IAM cross-check: no recording of the functions' requests (step 6)"
      fi

      # The pipeline's gate (terraform/cicd/plan_gate.py) on plans against this state: an
      # in-place update goes through, a replacement waits for approval (and so does any
      # delete: a replacement is a delete plus a create).
      gate() { # gate NAME EXPECTED terraform-plan-args...
        local name="$1" expected="$2"
        shift 2
        terraform plan -refresh=false -input=false -no-color -out="$name.tfplan" "${vars[@]}" "$@" >"$work/$name.log" 2>&1 || {
          tail -30 "$work/$name.log"
          return 1
        }
        terraform show -json "$name.tfplan" >"$work/$name.json"
        local out
        out="$("$py" "$repo/terraform/cicd/plan_gate.py" "$work/$name.json")" || return 1
        echo "terraform-test: plan gate on the $name plan: $(echo "$out" | tr '\n' ' ')"
        grep -qx "DESTRUCTIVE=$expected" <<<"$out" || {
          echo "terraform-test: the $name plan should give DESTRUCTIVE=$expected"
          return 1
        }
      }
      gate update false -var failure_rate=0.5 || checks=1
      gate replace true -replace='module.orders_table.aws_dynamodb_table.this' || checks=1

      # workflow_type = "EXPRESS" on the same stack: one more apply instead of a
      # second stack. A state machine's type cannot change in place, so the plan
      # must replace the state machine and nothing else (IAM, alarms and
      # outputs do not depend on the type; the in-place updates the plan also
      # lists are moto's usual drift, as in the update plan), the gate must stop
      # for it, and the applied stack must pass the assertions as EXPRESS. The
      # apply plans afresh, refreshing like the first apply: applying the gate's
      # -refresh=false plan trips the provider on moto's alarm drift.
      express=(-var workflow_type=EXPRESS)
      if gate express true "${express[@]}"; then
        replaced="$("$py" -c '
import json, sys
plan = json.load(open(sys.argv[1]))
print(" ".join(sorted(c["address"] for c in plan["resource_changes"] if "delete" in c["change"]["actions"])))
' "$work/express.json")"
        if [ "$replaced" != "aws_sfn_state_machine.order_workflow" ]; then
          echo "terraform-test: switching to EXPRESS should replace the state machine alone, not: $replaced"
          checks=1
        fi
        express_started=$SECONDS
        if terraform apply -auto-approve -input=false -no-color "${vars[@]}" "${express[@]}" >"$work/apply-express.log" 2>&1; then
          echo "terraform-test: EXPRESS apply took $((SECONDS - express_started))s"
          terraform output -json >"$work/outputs-express.json"
          "$py" "$repo/terraform/tests/assert_stack.py" "http://127.0.0.1:$port" "$work/outputs-express.json" "$repo" EXPRESS || checks=1
          if [ -s "$recorded" ]; then
            terraform show -json >"$work/state-express.json"
            "$py" "$repo/terraform/tests/check_iam.py" "$work/state-express.json" "$recorded" "$repo" || checks=1
          fi
        else
          tail -40 "$work/apply-express.log"
          checks=1
        fi
      else
        checks=1
      fi
      vars+=("${express[@]}")

      destroy_started=$SECONDS
      if ! terraform destroy -auto-approve -input=false -no-color "${vars[@]}" >"$work/destroy.log" 2>&1; then
        tail -40 "$work/destroy.log"
        exit 1
      fi
      left="$(terraform state list | wc -l)"
      echo "terraform-test: destroy took $((SECONDS - destroy_started))s, $left resources left in state"
      [ "$left" -eq 0 ] && [ "$checks" -eq 0 ]
    )
    if [ $? -eq 0 ]; then pass; else fail "apply/assert/IAM/gate/destroy on moto (moto log: $(tail -3 "$work/moto.log" 2>/dev/null | tr '\n' ' '))"; fi
  fi

  # --- 7b. the environments' plans, each on its own state key in moto's S3
  step "plans of envs/dev.tfvars and envs/prod.tfvars on their S3 state keys; x86_64 packages refused"
  if [ -z "$port" ]; then
    fail "env plans (no moto)"
  else
    (
      set -e
      plans="$work/plans"
      scratch "$plans"
      sed "s/@PORT@/$port/g" terraform/tests/moto.s3.tfbackend.tpl >"$work/moto.s3.tfbackend"
      "$py" - "http://127.0.0.1:$port" <<'PY'
import sys, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                  aws_access_key_id="harness", aws_secret_access_key="testing")
s3.create_bucket(Bucket="dofs-test-state")
# Versioned, as terraform/README.md bootstraps it: the lock objects each plan takes and
# releases stay listed as versions, which shows which key each plan used.
s3.put_bucket_versioning(Bucket="dofs-test-state", VersioningConfiguration={"Status": "Enabled"})
PY
      cd "$plans/terraform"
      for env in dev prod; do
        export TF_DATA_DIR="$plans/.terraform-$env"
        terraform init -input=false -lockfile=readonly -backend-config="envs/$env.s3.tfbackend" \
          -backend-config="$work/moto.s3.tfbackend" >"$work/init-$env.log" 2>&1 || { cat "$work/init-$env.log"; exit 1; }
        cp "$TF_DATA_DIR/terraform.tfstate" "$work/backend-$env.json"
        if ! terraform plan -input=false -no-color -var-file="envs/$env.tfvars" \
          -var "lambda_packages_dir=$packages" -out="$env.tfplan" >"$work/plan-$env.log" 2>&1; then
          tail -40 "$work/plan-$env.log"
          exit 1
        fi
        terraform show -json "$env.tfplan" >"$work/plan-$env.json"
        echo "terraform-test: $env: $(grep -E '^Plan:' "$work/plan-$env.log")"
      done

      # Packages built for x86_64 (package-lambdas.sh's fallback) never reach a plan.
      x86="$work/packages-x86_64"
      cp -r "$packages" "$x86"
      echo x86_64 >"$x86/ARCH"
      if terraform plan -input=false -no-color -var-file=envs/dev.tfvars -var "lambda_packages_dir=$x86" \
        -target='module.functions["validator"].aws_lambda_function.this' >"$work/plan-x86.log" 2>&1; then
        echo "terraform-test: a plan with x86_64 packages succeeded"
        exit 1
      fi
      flat "$work/plan-x86.log" | grep -qF "was built for x86_64, but the function runs on arm64" || {
        tail -20 "$work/plan-x86.log"
        exit 1
      }
      echo "terraform-test: x86_64 packages refused: $(flat "$work/plan-x86.log" | grep -o 'The package [^:]* runs on arm64')"

      # prod refuses what would make it unsafe, whatever a var file says: one plan with
      # four unsafe overrides must fail with each one's validation message.
      if terraform plan -input=false -no-color -var-file=envs/prod.tfvars -var "lambda_packages_dir=$packages" \
        -var jwt_authorizer=null -var 'alarm_email_endpoints=[]' -var failure_rate=0.3 -var deletion_protection=false \
        >"$work/refused.log" 2>&1; then
        echo "terraform-test: prod accepted no authorizer, no subscribers, simulated failures and deletable tables"
        exit 1
      fi
      for message in "Outside dev the order API must not be public" "A prod stack needs someone to page" \
        "prod must not simulate fulfilment failures" "prod tables keep deletion protection"; do
        flat "$work/refused.log" | grep -qF "$message" || {
          echo "terraform-test: prod was not refused with: $message"
          tail -30 "$work/refused.log"
          exit 1
        }
        echo "terraform-test: prod refused: $message"
      done

      "$py" "$repo/terraform/tests/check_plans.py" "http://127.0.0.1:$port" "$work" "$repo"
    )
    if [ $? -eq 0 ]; then pass; else fail "env plans"; fi
  fi

  # --- 7c. the deploy role's policy against what Terraform did
  step "deploy role policy against Terraform's calls and resources (check_deploy_policy.py)"
  if [ ! -s "$work/state.json" ] || [ ! -s "$requests" ]; then
    fail "deploy policy: no state or no request log from the moto runs"
  elif "$py" terraform/tests/check_deploy_policy.py "$requests" "$work/state.json" "$repo"; then
    pass
  else
    fail "deploy role policy"
  fi

  if [ -n "$moto_pid" ]; then
    kill "$moto_pid" 2>/dev/null
    wait "$moto_pid" 2>/dev/null
    moto_pid=""
  fi
fi

printf '\n'
if [ "${#failures[@]}" -gt 0 ]; then
  printf 'terraform-test: %d step(s) FAILED in %ss:\n' "${#failures[@]}" "$SECONDS"
  printf '  - %s\n' "${failures[@]}"
  exit 1
fi
printf 'terraform-test: all steps passed in %ss\n' "$SECONDS"
