//! The JSON documents that cross the boundary.

use gateway_core::{ErrorKind, GatewayError};
use serde::{Deserialize, Serialize};

/// A backend as a plugin's factory sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackendConfig {
    /// The backend's id.
    pub id: String,
    /// Its endpoint, when configured.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Its resolved credential, when configured. Crosses the boundary
    /// because the plugin is the one that sends it upstream.
    #[serde(default)]
    pub credential: Option<String>,
    /// The backend's `options` table from config.
    #[serde(default)]
    pub options: serde_json::Map<String, serde_json::Value>,
}

/// An error as it crosses the boundary.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireError {
    /// The HTTP status the error maps to.
    pub status: u16,
    /// The message.
    pub message: String,
    /// Whether a retry may succeed.
    #[serde(default)]
    pub retryable: bool,
}

impl From<&GatewayError> for WireError {
    fn from(err: &GatewayError) -> Self {
        Self {
            status: err.status(),
            message: err.message.clone(),
            retryable: err.retryable,
        }
    }
}

impl WireError {
    /// Back to a [`GatewayError`], naming where it came from.
    pub fn into_gateway_error(self, origin: &str) -> GatewayError {
        let kind = match self.status {
            400 => ErrorKind::InvalidRequest,
            401 => ErrorKind::Unauthenticated,
            403 => ErrorKind::PermissionDenied,
            404 => ErrorKind::NotFound,
            413 => ErrorKind::PayloadTooLarge,
            429 => ErrorKind::RateLimited,
            503 => ErrorKind::Unavailable,
            504 => ErrorKind::Timeout,
            500 => ErrorKind::Internal,
            _ => ErrorKind::Upstream,
        };
        let mut err = GatewayError::new(kind, format!("{origin}: {}", self.message));
        err.retryable = self.retryable;
        err
    }
}
