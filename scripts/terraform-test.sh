#!/usr/bin/env bash
# The Terraform checks, with no AWS account:
#   1. terraform fmt -check -recursive, init -backend=false and validate (stack and CI/CD roots)
#   2. consistency of metrics, alarms, function/queue/table names (terraform/tests/check_consistency.py)
#   3. statelint on the rendered workflow ASL
#   4. checkov on terraform/ (zero failed checks; skips are justified inline)
#   5. terraform apply of the whole stack against moto (terraform/tests/moto_wrapper.py on a free
#      127.0.0.1 port, test-only provider override), boto3 assertions (terraform/tests/assert_stack.py),
#      then terraform destroy. The CI/CD root is validated and scanned, not applied: moto has no
#      CodeStar connections.
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
  rm -rf "$work"
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

# --- 5. apply on moto ----------------------------------------------------------------
step "terraform apply / assert / destroy on moto"
if ! have terraform; then
  missing terraform
elif ! has_python_module moto || ! has_python_module boto3; then
  missing "moto[server] and boto3"
else
  (
    set -e
    stack="$work/stack"
    mkdir -p "$stack/packages"
    cp -r terraform dashboards "$stack/"
    rm -rf "$stack/terraform/.terraform" "$stack/terraform/terraform.tfstate"*

    # Real packages when scripts/package-lambdas.sh has built them, else a placeholder
    # bootstrap: moto stores the zip but never runs it.
    for fn in "${functions[@]}"; do
      mkdir -p "$stack/packages/$fn"
      if [ -f "target/lambda/$fn/bootstrap.zip" ]; then
        cp "target/lambda/$fn/bootstrap.zip" "$stack/packages/$fn/"
      else
        "$py" -c '
import sys, zipfile
info = zipfile.ZipInfo("bootstrap")
info.external_attr = 0o755 << 16
with zipfile.ZipFile(sys.argv[1], "w") as z:
    z.writestr(info, "#!/bin/sh\necho placeholder package >&2\nexit 1\n")
' "$stack/packages/$fn/bootstrap.zip"
        echo "terraform-test: target/lambda/$fn/bootstrap.zip not built; using a placeholder"
      fi
    done

    "$py" terraform/tests/moto_wrapper.py "$work/moto.port" >"$work/moto.log" 2>&1 &
    echo $! >"$work/moto.pid"
    for _ in $(seq 1 100); do [ -s "$work/moto.port" ] && break; sleep 0.1; done
    port="$(cat "$work/moto.port")"
    echo "terraform-test: moto on 127.0.0.1:$port"
    sed "s/@PORT@/$port/g" terraform/tests/moto_override.tf.tpl >"$stack/terraform/moto_override.tf"

    cd "$stack/terraform"
    export TF_DATA_DIR="$stack/.terraform"
    terraform init -input=false -lockfile=readonly >"$work/init.log" 2>&1 || { cat "$work/init.log"; exit 1; }
    apply_started=$SECONDS
    if ! terraform apply -auto-approve -input=false -no-color -var-file=tests/moto.tfvars \
      -var "lambda_packages_dir=$stack/packages" >"$work/apply.log" 2>&1; then
      tail -60 "$work/apply.log"
      exit 1
    fi
    echo "terraform-test: apply took $((SECONDS - apply_started))s ($(grep -c 'Creation complete' "$work/apply.log") resources)"
    terraform output -json >"$work/outputs.json"

    asserts=0
    "$py" "$repo/terraform/tests/assert_stack.py" "http://127.0.0.1:$port" "$work/outputs.json" "$repo" || asserts=1

    destroy_started=$SECONDS
    if ! terraform destroy -auto-approve -input=false -no-color -var-file=tests/moto.tfvars \
      -var "lambda_packages_dir=$stack/packages" >"$work/destroy.log" 2>&1; then
      tail -40 "$work/destroy.log"
      exit 1
    fi
    left="$(terraform state list | wc -l)"
    echo "terraform-test: destroy took $((SECONDS - destroy_started))s, $left resources left in state"
    [ "$left" -eq 0 ] && [ "$asserts" -eq 0 ]
  )
  status=$?
  [ -s "$work/moto.pid" ] && moto_pid="$(cat "$work/moto.pid")"
  if [ -n "$moto_pid" ]; then
    kill "$moto_pid" 2>/dev/null
    wait "$moto_pid" 2>/dev/null
    moto_pid=""
  fi
  if [ "$status" -eq 0 ]; then pass; else fail "apply/assert/destroy on moto (moto log: $(tail -3 "$work/moto.log" 2>/dev/null | tr '\n' ' '))"; fi
fi

printf '\n'
if [ "${#failures[@]}" -gt 0 ]; then
  printf 'terraform-test: %d step(s) FAILED in %ss:\n' "${#failures[@]}" "$SECONDS"
  printf '  - %s\n' "${failures[@]}"
  exit 1
fi
printf 'terraform-test: all steps passed in %ss\n' "$SECONDS"
