//! Posting frames to WebSocket connections with API Gateway's Management API (`PostToConnection`).

use std::{collections::HashMap, sync::Mutex, time::Duration};

use aws_sdk_apigatewaymanagement::primitives::Blob;

use crate::config::WebSocketConfig;

/// The connection is gone (the Management API answered 410, or kept failing).
#[derive(Debug)]
pub struct Gone;

/// Posts frames with the API Gateway Management API (`PostToConnection`) at the stage's callback
/// URL, or at `WEBSOCKET_MANAGEMENT_ENDPOINT`. A loopback domain is the local adapter, spoken to
/// over plain HTTP with placeholder credentials (it checks none).
pub struct Poster {
    client: aws_sdk_apigatewaymanagement::Client,
}

/// One client per endpoint and instance (building one loads the SDK's configuration).
static CLIENTS: Mutex<Option<HashMap<String, aws_sdk_apigatewaymanagement::Client>>> =
    Mutex::new(None);

impl Poster {
    /// The poster for connections of the API at `domain` and `stage` (an event's request
    /// context).
    pub async fn for_api(
        settings: &WebSocketConfig,
        domain: Option<&str>,
        stage: Option<&str>,
    ) -> Poster {
        let domain = domain.unwrap_or("localhost");
        let host = domain.split(':').next().unwrap_or(domain);
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        let endpoint = match &settings.management_endpoint {
            Some(endpoint) => endpoint.clone(),
            None if loopback => format!("http://{domain}"),
            None => format!("https://{domain}/{}", stage.unwrap_or("")),
        };
        if let Some(client) = CLIENTS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert_with(HashMap::new)
            .get(&endpoint)
        {
            return Poster {
                client: client.clone(),
            };
        }
        let local =
            (loopback || settings.management_endpoint.is_some()) && settings.credentials.is_none();
        let placeholder = ("local".to_string(), "local".to_string(), None);
        let loader = crate::aws::loader(
            settings.region.as_deref().or(local.then_some("us-east-1")),
            settings
                .credentials
                .as_ref()
                .or(local.then_some(&placeholder)),
        );
        let sdk = loader.load().await;
        let client = aws_sdk_apigatewaymanagement::Client::from_conf(
            aws_sdk_apigatewaymanagement::config::Builder::from(&sdk)
                .endpoint_url(&endpoint)
                .build(),
        );
        CLIENTS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert_with(HashMap::new)
            .insert(endpoint, client.clone());
        Poster { client }
    }

    /// Posts one frame; a throttled or failed call is tried once more.
    pub async fn post(&self, connection_id: &str, frame: String) -> Result<(), Gone> {
        let data = Blob::new(frame.into_bytes());
        for attempt in 0..2 {
            let sent = self
                .client
                .post_to_connection()
                .connection_id(connection_id)
                .data(data.clone())
                .send()
                .await;
            match sent {
                Ok(_) => return Ok(()),
                Err(e) if e.as_service_error().is_some_and(|e| e.is_gone_exception()) => {
                    return Err(Gone)
                }
                Err(e) => {
                    tracing::warn!(error = %aws_sdk_apigatewaymanagement::error::DisplayErrorContext(&e), attempt, "PostToConnection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        Err(Gone)
    }
}
