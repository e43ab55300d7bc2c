//! Who is who in the local stand-ins: the account, region and stack every
//! local ARN and URL uses, and the names of the queues, the state machine,
//! the functions, the API and the on-call topic. Everything that names a
//! local resource takes the name from here, so renaming one is one edit.

use std::fmt;
use std::str::FromStr;

/// The account id every local ARN and URL uses.
pub const ACCOUNT_ID: &str = "000000000000";
/// The region every local ARN uses.
pub const REGION: &str = "local";
/// The stack name, Terraform's `local.name` (alarm names, the topic).
pub const STACK: &str = "dofs";
/// The HTTP API's id (`ApiId` of the API Gateway metrics, `apiId` in
/// events), and the `domainPrefix` of every gateway event: API Gateway
/// sends the first label of the domain name, which on an API's default
/// endpoint, `{api-id}.execute-api.{region}.amazonaws.com`, is its id
/// (payload format 2.0,
/// <https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-integrations-lambda.html>).
pub const API_ID: &str = "local";

/// The order queue.
pub const ORDER_QUEUE: &str = "dofs-order-queue";
/// The order queue's dead-letter queue.
pub const DEAD_LETTER_QUEUE: &str = "dofs-order-dlq";

/// The state machine's name in ARNs.
pub const STATE_MACHINE_NAME: &str = "dofs-order-workflow";

/// The `component` of spans the gateway opens (not a function).
pub const GATEWAY_COMPONENT: &str = "api_gateway";
/// The `component` of spans the Step Functions stand-in opens.
pub const STATES_COMPONENT: &str = "step_functions";

/// `arn:aws:states:local:000000000000:stateMachine:dofs-order-workflow`.
pub fn state_machine_arn() -> String {
    format!("arn:aws:states:{REGION}:{ACCOUNT_ID}:stateMachine:{STATE_MACHINE_NAME}")
}

/// The ARN of the execution called `name`.
pub fn execution_arn(name: &str) -> String {
    format!("arn:aws:states:{REGION}:{ACCOUNT_ID}:execution:{STATE_MACHINE_NAME}:{name}")
}

/// The URL of the queue called `name`, `{base}/000000000000/{name}` as SQS
/// shapes it (`base` is where `dofs serve` listens).
pub fn queue_url(base_url: &str, name: &str) -> String {
    format!("{}/{ACCOUNT_ID}/{name}", base_url.trim_end_matches('/'))
}

/// The ARN of the queue called `name`.
pub fn queue_arn(name: &str) -> String {
    format!("arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{name}")
}

/// The SNS topic alarms notify (Terraform's `<stack>-on-call`).
pub fn on_call_topic_arn() -> String {
    format!("arn:aws:sns:{REGION}:{ACCOUNT_ID}:{STACK}-on-call")
}

/// The ARN of the CloudWatch alarm called `name`.
pub fn alarm_arn(name: &str) -> String {
    format!("arn:aws:cloudwatch:{REGION}:{ACCOUNT_ID}:alarm:{name}")
}

/// The functions of DOFS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FunctionName {
    ApiHandler,
    Validator,
    OrderStorage,
    FulfillOrder,
    DlqHandler,
}

impl FunctionName {
    pub const ALL: [FunctionName; 5] = [
        FunctionName::ApiHandler,
        FunctionName::Validator,
        FunctionName::OrderStorage,
        FunctionName::FulfillOrder,
        FunctionName::DlqHandler,
    ];

    /// The function's name, which is also its crate's name.
    pub fn as_str(self) -> &'static str {
        match self {
            FunctionName::ApiHandler => "api_handler",
            FunctionName::Validator => "validator",
            FunctionName::OrderStorage => "order_storage",
            FunctionName::FulfillOrder => "fulfill_order",
            FunctionName::DlqHandler => "dlq_handler",
        }
    }

    /// The deployed function name, `dofs-<fn>`.
    pub fn deployed_name(self) -> String {
        format!("dofs-{}", self.as_str())
    }

    /// `arn:aws:lambda:local:000000000000:function:dofs-<fn>`.
    pub fn arn(self) -> String {
        format!(
            "arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{}",
            self.deployed_name()
        )
    }

    /// Accepts what `FunctionName` may be in a `lambda:invoke` task: a
    /// function ARN (optionally with a `:$LATEST`/alias qualifier), a
    /// deployed name or a bare name.
    pub fn resolve(text: &str) -> Option<Self> {
        let name = match text.split_once(":function:") {
            Some((_, rest)) => rest.split(':').next().unwrap_or(rest),
            None => text,
        };
        let name = name.strip_prefix("dofs-").unwrap_or(name);
        Self::ALL
            .into_iter()
            .find(|f| f.as_str() == name || f.as_str().replace('_', "-") == name)
    }
}

impl fmt::Display for FunctionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FunctionName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::resolve(s).ok_or_else(|| format!("unknown function {s:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_every_way_a_task_names_a_function() {
        for f in FunctionName::ALL {
            assert_eq!(FunctionName::resolve(f.as_str()), Some(f));
            assert_eq!(FunctionName::resolve(&f.deployed_name()), Some(f));
            assert_eq!(FunctionName::resolve(&f.arn()), Some(f));
            assert_eq!(
                FunctionName::resolve(&format!("{}:$LATEST", f.arn())),
                Some(f)
            );
        }
        assert_eq!(FunctionName::resolve("nope"), None);
    }
}
