# Sourced (not run) by the plan and apply buildspecs:
#   . terraform/cicd/assume-deploy-role.sh plan|apply
# Exports temporary credentials of $DEPLOY_ROLE_ARN, which only these two
# projects' role may assume; terraform and the AWS CLI pick them up from the
# environment. Prints nothing secret.
_dofs_creds="$(aws sts assume-role --role-arn "$DEPLOY_ROLE_ARN" \
  --role-session-name "dofs-${1:-deploy}-${CODEBUILD_BUILD_NUMBER:-0}" --duration-seconds 3600 \
  --query 'Credentials.[AccessKeyId,SecretAccessKey,SessionToken]' --output text)"
read -r AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN <<<"$_dofs_creds"
unset _dofs_creds
export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN
aws sts get-caller-identity --query Arn --output text
