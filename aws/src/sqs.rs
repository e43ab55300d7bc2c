//! The order queue on SQS.
//!
//! The workflow enqueues orders itself (`sqs:sendMessage` in the ASL); this
//! adapter is for the senders outside it (redrive tools, tests). Like Step
//! Functions, it carries the trace in the `AWSTraceHeader` *system* attribute,
//! which is the one SQS hands to the consumer's event unchanged and X-Ray
//! reads, rather than in a user message attribute.

use async_trait::async_trait;
use aws_sdk_sqs::types::{MessageSystemAttributeNameForSends, MessageSystemAttributeValue};
use aws_sdk_sqs::Client;
use dofs_core::{Order, OrderQueue, PortError};

use crate::error::{corrupt, port_error};

/// [`OrderQueue`] on an SQS queue.
#[derive(Debug, Clone)]
pub struct SqsOrderQueue {
    client: Client,
    queue_url: String,
}

impl SqsOrderQueue {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }
}

#[async_trait]
impl OrderQueue for SqsOrderQueue {
    async fn send(&self, order: &Order, trace_header: Option<&str>) -> Result<String, PortError> {
        let body = serde_json::to_string(order)
            .map_err(|e| corrupt(format!("order {} is not serialisable", order.order_id), e))?;
        let mut request = self
            .client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body);
        if let Some(header) = trace_header {
            let value = MessageSystemAttributeValue::builder()
                .data_type("String")
                .string_value(header)
                .build()
                .map_err(|e| {
                    PortError::invalid_input(format!("trace header {header:?} is unusable"))
                        .with_source(e)
                })?;
            request = request.message_system_attributes(
                MessageSystemAttributeNameForSends::AwsTraceHeader,
                value,
            );
        }
        let output = request.send().await.map_err(|e| {
            port_error(
                format!("sending order {} to {}", order.order_id, self.queue_url),
                e,
            )
        })?;
        output.message_id.ok_or_else(|| {
            PortError::internal(format!(
                "SQS accepted order {} but returned no message id",
                order.order_id
            ))
        })
    }
}
