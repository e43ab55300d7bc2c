//! A moto server for one test, and the DOFS resources inside it.
//!
//! Every test starts its own server on a free port, so tests run in
//! parallel without sharing state, and [`Moto`]'s `Drop` stops it.
//! [`Moto::provision`] creates what Terraform would: the two tables keyed by
//! `order_id`, the order queue with its dead-letter queue, and the state
//! machine from the real ASL file (moto records executions; it does not run
//! them, so tests hand the execution input to the functions themselves).

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use aws_sdk_sqs::types::QueueAttributeName;

use crate::{tools, workspace_root, HarnessError};

pub const REGION: &str = "us-east-1";
pub const ACCOUNT: &str = "123456789012";
pub const ACCESS_KEY: &str = "testing";
pub const SECRET_KEY: &str = "testing";

/// A running moto server.
#[derive(Debug)]
pub struct Moto {
    child: Child,
    pub addr: SocketAddr,
    log: std::path::PathBuf,
}

/// A port that was free a moment ago.
pub fn free_port() -> Result<u16, HarnessError> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(HarnessError::io("binding a probe port"))?;
    let port = listener
        .local_addr()
        .map_err(HarnessError::io("reading the probe port"))?
        .port();
    Ok(port)
}

impl Moto {
    /// Starts moto, or returns `None` after [`tools::require`] reported it
    /// missing.
    pub async fn start_or_skip(test: &str) -> Option<Moto> {
        let binary = tools::require("moto_server", test)?;
        match Moto::start(&binary).await {
            Ok(moto) => Some(moto),
            Err(err) => panic!("{test}: moto_server did not start: {err}"),
        }
    }

    /// [`Moto::start_or_skip`] with a fresh set of resources provisioned;
    /// a failure to provision fails `test`.
    pub async fn provisioned_or_skip(test: &str) -> Option<(Moto, Resources)> {
        let moto = Moto::start_or_skip(test).await?;
        let resources = moto
            .provision()
            .await
            .unwrap_or_else(|e| panic!("{test}: {e}"));
        Some((moto, resources))
    }

    pub async fn start(binary: &Path) -> Result<Moto, HarnessError> {
        let port = free_port()?;
        let log = std::env::temp_dir().join(format!("dofs-moto-{port}.log"));
        let log_file =
            std::fs::File::create(&log).map_err(HarnessError::io("creating the moto log"))?;
        let log_err = log_file
            .try_clone()
            .map_err(HarnessError::io("cloning the moto log"))?;
        let child = Command::new(binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err)
            .spawn()
            .map_err(HarnessError::io(format!("starting {}", binary.display())))?;
        let moto = Moto {
            child,
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            log,
        };
        moto.wait_ready(Duration::from_secs(60)).await?;
        Ok(moto)
    }

    async fn wait_ready(&self, timeout: Duration) -> Result<(), HarnessError> {
        let started = Instant::now();
        let client = reqwest::Client::new();
        let url = format!("{}/moto-api/", self.endpoint());
        while started.elapsed() < timeout {
            if let Ok(response) = client.get(&url).send().await {
                if response.status().is_success() {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        Err(HarnessError::Setup(format!(
            "moto did not answer on {} within {}s; its log:\n{log}",
            self.addr,
            timeout.as_secs()
        )))
    }

    /// `http://127.0.0.1:<port>`, for `AWS_ENDPOINT_URL`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The environment a process needs to talk to this moto.
    pub fn env(&self) -> Vec<(String, String)> {
        client_env(&self.endpoint())
    }

    /// SDK configuration pointing at this moto, with static credentials
    /// (nothing read from the process environment).
    pub async fn sdk_config(&self) -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(self.endpoint())
            .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "moto"))
            .load()
            .await
    }

    /// Creates a fresh set of DOFS resources (unique names, so one moto can
    /// hold several sets).
    pub async fn provision(&self) -> Result<Resources, HarnessError> {
        let sdk = self.sdk_config().await;
        let suffix = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
        let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let sfn = aws_sdk_sfn::Client::new(&sdk);

        let orders_table = format!("dofs-orders-{suffix}");
        let failed_orders_table = format!("dofs-failed-orders-{suffix}");
        for table in [&orders_table, &failed_orders_table] {
            create_table(&dynamodb, table).await?;
        }

        let dead_letter_queue_url = create_queue(&sqs, &format!("dofs-dlq-{suffix}"), None).await?;
        let dlq_arn = queue_arn(&sqs, &dead_letter_queue_url).await?;
        let redrive = serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"});
        let order_queue_url = create_queue(
            &sqs,
            &format!("dofs-orders-{suffix}"),
            Some(redrive.to_string()),
        )
        .await?;

        let definition = render_workflow(&[
            ("validator_function_arn", function_arn("validator")),
            ("order_storage_function_arn", function_arn("order_storage")),
            ("order_queue_url", order_queue_url.clone()),
            ("dead_letter_queue_url", dead_letter_queue_url.clone()),
        ])?;
        let state_machine_arn = sfn
            .create_state_machine()
            .name(format!("dofs-order-workflow-{suffix}"))
            .definition(definition)
            .role_arn(format!("arn:aws:iam::{ACCOUNT}:role/dofs-workflow"))
            .send()
            .await
            .map_err(|e| {
                HarnessError::setup(
                    "creating the state machine",
                    aws_sdk_sfn::error::DisplayErrorContext(e),
                )
            })?
            .state_machine_arn;

        Ok(Resources {
            sdk,
            orders_table,
            failed_orders_table,
            order_queue_url,
            dead_letter_queue_url,
            state_machine_arn,
        })
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// The environment of a process whose AWS calls go to `endpoint` (moto, or
/// a proxy in front of it) with moto's region and credentials.
pub fn client_env(endpoint: &str) -> Vec<(String, String)> {
    [
        ("AWS_ENDPOINT_URL", endpoint.to_owned()),
        ("AWS_REGION", REGION.to_owned()),
        ("AWS_DEFAULT_REGION", REGION.to_owned()),
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_owned()),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// A Lambda function ARN in moto's account (only ever a string here).
pub fn function_arn(name: &str) -> String {
    format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}")
}

/// The workflow ASL with its `${...}` placeholders filled, as Terraform's
/// `templatefile` would.
pub fn render_workflow(vars: &[(&str, String)]) -> Result<String, HarnessError> {
    let path = workspace_root().join("terraform/order_workflow.asl.json");
    let mut text = std::fs::read_to_string(&path)
        .map_err(HarnessError::io(format!("reading {}", path.display())))?;
    for (name, value) in vars {
        text = text.replace(&format!("${{{name}}}"), value);
    }
    if let Some(at) = text.find("${") {
        let rest: String = text[at..].chars().take(40).collect();
        return Err(HarnessError::Setup(format!(
            "unfilled placeholder in the workflow: {rest}"
        )));
    }
    Ok(text)
}

async fn create_table(client: &aws_sdk_dynamodb::Client, name: &str) -> Result<(), HarnessError> {
    let key = KeySchemaElement::builder()
        .attribute_name("order_id")
        .key_type(KeyType::Hash)
        .build()
        .map_err(|e| HarnessError::setup("key schema", e))?;
    let attribute = AttributeDefinition::builder()
        .attribute_name("order_id")
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(|e| HarnessError::setup("attribute definition", e))?;
    client
        .create_table()
        .table_name(name)
        .key_schema(key)
        .attribute_definitions(attribute)
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .map_err(|e| {
            HarnessError::setup(
                format!("creating table {name}"),
                aws_sdk_dynamodb::error::DisplayErrorContext(e),
            )
        })?;
    Ok(())
}

async fn create_queue(
    client: &aws_sdk_sqs::Client,
    name: &str,
    redrive_policy: Option<String>,
) -> Result<String, HarnessError> {
    let mut request = client
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::VisibilityTimeout, "180");
    if let Some(policy) = redrive_policy {
        request = request.attributes(QueueAttributeName::RedrivePolicy, policy);
    }
    let output = request.send().await.map_err(|e| {
        HarnessError::setup(
            format!("creating queue {name}"),
            aws_sdk_sqs::error::DisplayErrorContext(e),
        )
    })?;
    output
        .queue_url
        .ok_or_else(|| HarnessError::Setup(format!("queue {name} has no URL")))
}

async fn queue_arn(client: &aws_sdk_sqs::Client, url: &str) -> Result<String, HarnessError> {
    let output = client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| {
            HarnessError::setup(
                format!("reading the ARN of {url}"),
                aws_sdk_sqs::error::DisplayErrorContext(e),
            )
        })?;
    output
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .ok_or_else(|| HarnessError::Setup(format!("queue {url} has no ARN")))
}

/// One set of DOFS resources in moto.
#[derive(Debug, Clone)]
pub struct Resources {
    pub sdk: SdkConfig,
    pub orders_table: String,
    pub failed_orders_table: String,
    pub order_queue_url: String,
    pub dead_letter_queue_url: String,
    pub state_machine_arn: String,
}

impl Resources {
    /// The variables a bootstrap reads, for all five functions.
    pub fn function_env(&self) -> Vec<(String, String)> {
        [
            ("ORDERS_TABLE", self.orders_table.clone()),
            ("FAILED_ORDERS_TABLE", self.failed_orders_table.clone()),
            ("STATE_MACHINE_ARN", self.state_machine_arn.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.sdk)
    }

    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.sdk)
    }

    pub fn sfn(&self) -> aws_sdk_sfn::Client {
        aws_sdk_sfn::Client::new(&self.sdk)
    }
}
