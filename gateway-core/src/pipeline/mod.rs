//! The stages between router and adapter (DESIGN §2): who is calling and
//! what they may do (keys, allowlists, rate, token and concurrency limits,
//! output caps), and what happens when providers fail (retries, breakers,
//! timeouts, backend concurrency, fallback and weighted targets).
//!
//! * [`keys`]: app tokens and model allowlists.
//! * [`limits`]: the per-key limiter store trait and its in-memory store.
//! * [`breaker`]: one circuit breaker per backend.
//! * [`slots`]: per-backend concurrency with a bounded queue.
//! * [`dispatch`]: retries, fallback and timeouts around each attempt.
//! * [`alarm`]: the caller's one timer, lent to the attempts for their
//!   first-byte deadlines.
//! * [`watchdog`]: idle and total limits on an answer's stream, and the
//!   slots it holds.

pub mod alarm;
pub mod breaker;
pub mod dispatch;
pub mod keys;
pub mod limits;
pub mod slots;
pub mod watchdog;

use std::sync::Arc;
use std::time::Duration;

pub use alarm::Alarm;
pub use breaker::BreakerState;
pub use dispatch::{AttemptError, Dispatched};
pub use keys::{KeyPolicy, KeyRing};
pub use limits::{LimitStore, MemoryLimits, SlotGuard};
pub use slots::{BackendSlot, SlotCounts};
pub use watchdog::{DeadlineReason, StreamLimits, Watchdog};

use crate::error::{ErrorKind, GatewayError};
use crate::router::Targets;
use crate::types::Usage;

/// A request let in past its caller's limits. Hold it until the answer is
/// fully sent: it owns the caller's concurrency slot.
pub struct Admission {
    /// The caller's key, when keys are configured.
    pub key: Option<Arc<KeyPolicy>>,
    slot: Option<SlotGuard>,
    meter: Option<UsageMeter>,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("key", &self.key.as_ref().map(|key| &key.id))
            .field("holds_slot", &self.slot.is_some())
            .finish()
    }
}

impl Admission {
    /// An admission with no caller limits (library use, or no keys).
    pub fn open() -> Self {
        Self {
            key: None,
            slot: None,
            meter: None,
        }
    }

    /// Where to report the answer's token usage, when the caller has a
    /// tokens-per-minute limit (`None` means nobody needs it).
    pub fn meter(&self) -> Option<UsageMeter> {
        self.meter.clone()
    }
}

/// Charges token usage to a key's tokens-per-minute budget.
#[derive(Clone)]
pub struct UsageMeter {
    store: Arc<dyn LimitStore>,
    key: Arc<str>,
    tpm: u64,
}

impl std::fmt::Debug for UsageMeter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsageMeter")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl UsageMeter {
    /// Charges the input and output tokens of `usage`.
    pub fn record(&self, usage: &Usage) {
        self.store
            .record_tokens(&self.key, self.tpm, usage.input + usage.output);
    }
}

/// A 429 from one of the caller's own limits.
fn limited(key: &str, what: &str, wait: Duration) -> GatewayError {
    let seconds = wait.as_secs_f64().ceil().max(1.0);
    let mut err = GatewayError::new(
        ErrorKind::RateLimited,
        format!("key '{key}' is over its {what}; retry in {seconds:.0} s"),
    )
    .with_origin(crate::ErrorOrigin::Client);
    err.retry_after = Some(Duration::from_secs_f64(seconds));
    err
}

/// Checks the caller's limits for one request and takes what it needs:
/// token budget checked (charged later, from real usage), a concurrency
/// slot, then one request from the per-minute budget.
pub(crate) async fn admit(
    store: &Arc<dyn LimitStore>,
    key: Option<Arc<KeyPolicy>>,
    requested: &str,
    targets: &Targets,
) -> Result<Admission, GatewayError> {
    let Some(policy) = key else {
        return Ok(Admission::open());
    };
    policy.check_model(requested, targets)?;
    if let Some(tpm) = policy.tpm {
        store.check_tokens(&policy.id, tpm).await.map_err(|wait| {
            limited(
                &policy.id,
                &format!("limit of {tpm} tokens per minute"),
                wait,
            )
        })?;
    }
    let slot = match policy.max_concurrent {
        Some(max) => Some(store.acquire(&policy.id, max).await.ok_or_else(|| {
            let mut err = limited(
                &policy.id,
                &format!("limit of {max} concurrent requests"),
                Duration::from_secs(1),
            );
            err.message = format!(
                "key '{}' already has {max} requests in flight (its max_concurrent); retry \
                 when one finishes",
                policy.id
            );
            err
        })?),
        None => None,
    };
    if let Some(rpm) = policy.rpm {
        store.take_request(&policy.id, rpm).await.map_err(|wait| {
            limited(
                &policy.id,
                &format!("limit of {rpm} requests per minute"),
                wait,
            )
        })?;
    }
    let meter = policy.tpm.map(|tpm| UsageMeter {
        store: store.clone(),
        key: policy.id.clone(),
        tpm,
    });
    Ok(Admission {
        key: Some(policy),
        slot,
        meter,
    })
}
