//! [`StateMachineArn`]: the one AWS resource name that both a function's
//! startup configuration (`dofs-lambda`) and the Step Functions adapter
//! (`dofs-aws`) need.
//!
//! It lives here, a plain parsed string with no SDK type in it, so that the
//! configuration crate compiles without the AWS SDK and the adapter takes
//! the very value the configuration checked. The workflow's execution names
//! are order ids ([`crate::ports::Workflow`]), so deriving an execution ARN
//! needs no lookup.

/// A state machine ARN was not of the form
/// `arn:<partition>:states:<region>:<account>:stateMachine:<name>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a Step Functions state machine ARN (arn:aws:states:<region>:<account>:stateMachine:<name>)")]
pub struct InvalidStateMachineArn(pub String);

/// A state machine ARN, checked once at startup: [`Self::execution_arn`]
/// derives an execution's ARN from it without calling the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateMachineArn {
    arn: String,
    /// Everything before `:stateMachine:`.
    prefix_len: usize,
}

impl StateMachineArn {
    pub fn parse(arn: &str) -> Result<Self, InvalidStateMachineArn> {
        let invalid = || InvalidStateMachineArn(arn.to_owned());
        let parts: Vec<&str> = arn.split(':').collect();
        // arn : partition : states : region : account : stateMachine : name
        match parts.as_slice() {
            ["arn", partition, "states", region, account, "stateMachine", name]
                if !partition.is_empty()
                    && !region.is_empty()
                    && !account.is_empty()
                    && !name.is_empty() =>
            {
                let prefix_len = arn.len() - name.len() - ":stateMachine:".len();
                Ok(Self {
                    arn: arn.to_owned(),
                    prefix_len,
                })
            }
            _ => Err(invalid()),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.arn
    }

    /// The state machine's name.
    pub fn name(&self) -> &str {
        &self.arn[self.prefix_len + ":stateMachine:".len()..]
    }

    /// The ARN of this state machine's execution called `execution_name`:
    /// `arn:...:execution:<state machine name>:<execution name>`.
    pub fn execution_arn(&self, execution_name: &str) -> String {
        format!(
            "{}:execution:{}:{}",
            &self.arn[..self.prefix_len],
            self.name(),
            execution_name
        )
    }
}

impl std::fmt::Display for StateMachineArn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.arn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execution_arn_is_derived_from_the_state_machine_arn() {
        let arn = StateMachineArn::parse(
            "arn:aws:states:eu-west-1:123456789012:stateMachine:dofs-orders",
        )
        .unwrap();
        assert_eq!(arn.name(), "dofs-orders");
        assert_eq!(
            arn.execution_arn("o-1"),
            "arn:aws:states:eu-west-1:123456789012:execution:dofs-orders:o-1"
        );
    }

    #[test]
    fn other_partitions_are_accepted() {
        let arn =
            StateMachineArn::parse("arn:aws-cn:states:cn-north-1:123456789012:stateMachine:m")
                .unwrap();
        assert_eq!(
            arn.execution_arn("x"),
            "arn:aws-cn:states:cn-north-1:123456789012:execution:m:x"
        );
    }

    #[test]
    fn rejects_what_is_not_a_state_machine_arn() {
        for bad in [
            "",
            "dofs-orders",
            "arn:aws:states:eu-west-1:123456789012:activity:x",
            "arn:aws:lambda:eu-west-1:123456789012:function:x",
            "arn:aws:states:eu-west-1:123456789012:stateMachine:",
            "arn:aws:states:eu-west-1:123456789012:execution:m:o-1",
        ] {
            assert!(StateMachineArn::parse(bad).is_err(), "{bad:?}");
        }
    }
}
