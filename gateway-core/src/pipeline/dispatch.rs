//! Sends one request to its targets: breaker check, backend slot, attempt
//! under the first-byte timeout, retries with backoff (honouring
//! `Retry-After`), then the next target of a fallback chain.
//!
//! An attempt ends when the upstream's first output is in hand (a stream's
//! first event, a pass-through answer's headers and first chunk, a whole
//! non-streamed answer). Nothing has reached the client by then, so every
//! retry here is safe; once an attempt returns, the answer is the client's
//! and is never retried.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use super::alarm::{Alarm, Within};
use super::breaker::{Breaker, Ticket};
use super::slots::{BackendSlot, BackendSlots};
use super::watchdog::{DeadlineReason, StreamLimits};
use crate::config::Reliability;
use crate::error::{ErrorKind, ErrorOrigin, GatewayError};
use crate::router::{Route, Targets};

/// A backend's reliability state.
#[derive(Debug)]
pub(crate) struct BackendPipeline {
    pub(crate) reliability: Reliability,
    pub(crate) breaker: Breaker,
    pub(crate) slots: BackendSlots,
}

impl BackendPipeline {
    /// The state of backend `backend`, which starts healthy and idle.
    pub(crate) fn new(backend: &str, reliability: Reliability) -> Self {
        Self {
            breaker: Breaker::new(reliability.breaker_failures, reliability.breaker_cooldown),
            slots: BackendSlots::new(
                backend,
                reliability.max_concurrent,
                reliability.max_queue,
                reliability.queue_timeout,
            ),
            reliability,
        }
    }
}

/// A failed attempt. `answer` is an upstream answer that may be returned to
/// the client as it is when no retry is left (pass-through keeps upstream
/// error answers untouched).
#[derive(Debug)]
pub struct AttemptError<T> {
    /// What went wrong; `retryable` and `retry_after` steer the retry.
    pub error: GatewayError,
    /// The upstream's own answer, if it sent one.
    pub answer: Option<T>,
}

impl<T> From<GatewayError> for AttemptError<T> {
    fn from(error: GatewayError) -> Self {
        Self {
            error,
            answer: None,
        }
    }
}

/// What a dispatch produced: the answer, the route that produced it, the
/// backend slot to hold while the answer streams, and the limits the rest
/// of the answer must keep.
#[derive(Debug)]
pub struct Dispatched<'t, T> {
    /// The answer.
    pub value: T,
    /// The target that answered.
    pub route: &'t Route,
    /// The backend slot; hold it until the answer is fully sent.
    pub slot: BackendSlot,
    /// Idle and total limits for the rest of the answer.
    pub limits: StreamLimits,
    /// Upstream attempts made, this one included.
    pub attempts: u32,
}

/// Whether a failure says the backend is unhealthy (it counts towards its
/// breaker): 5xx answers, broken or unusable answers, connect failures and
/// timeouts. Refusals (4xx, including 429) say the backend is up.
fn counts_against_backend(err: &GatewayError) -> bool {
    err.origin == ErrorOrigin::Upstream
        && matches!(err.kind, ErrorKind::Upstream | ErrorKind::Timeout)
        && !err
            .upstream_status
            .is_some_and(|status| (400..500).contains(&status))
}

fn settle(ticket: Ticket<'_>, err: &GatewayError) {
    if counts_against_backend(err) {
        ticket.failed();
    } else if err.origin == ErrorOrigin::Upstream {
        // The backend answered; it is up even if it refused.
        ticket.succeeded();
    }
    // Anything else (the gateway's own failure) says nothing; dropping the
    // ticket frees a half-open probe.
}

fn breaker_open(backend: &str, breaker: &Breaker, wait: Duration) -> GatewayError {
    let mut err = GatewayError::new(
        ErrorKind::Unavailable,
        format!(
            "backend '{backend}' is unavailable: its circuit breaker is open after {} \
             consecutive failures; retry in {} s",
            breaker.failures(),
            wait.as_secs().max(1)
        ),
    )
    .with_backend(backend);
    err.retryable = true;
    err.retry_after = Some(wait);
    err
}

/// The delay before retry number `retry` (1-based): exponential with full
/// jitter.
fn backoff(reliability: &Reliability, retry: u32) -> Duration {
    let exponential = reliability
        .backoff_base
        .saturating_mul(1u32 << retry.saturating_sub(1).min(16));
    let ceiling = exponential.min(reliability.backoff_max);
    let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(fastrand::u64(0..=millis))
}

/// The order targets are tried in: a fallback chain as configured; one
/// weighted pick (among targets whose breaker lets requests through, when
/// any does); a single route. A slice of the plan, so nothing is
/// allocated per request.
fn order<'a, 'p>(
    targets: &'a Targets,
    breaker_of: &dyn Fn(&Route) -> Option<&'p Breaker>,
) -> &'a [Route] {
    match targets {
        Targets::One(route) => std::slice::from_ref(route),
        Targets::Fallback(routes) => routes,
        Targets::Weighted(weighted) => {
            let healthy: Vec<&(Route, u32)> = weighted
                .iter()
                .filter(|(route, _)| {
                    breaker_of(route)
                        .is_none_or(|breaker| breaker.state() != super::BreakerState::Open)
                })
                .collect();
            let pool: Vec<&(Route, u32)> = if healthy.is_empty() {
                weighted.iter().collect()
            } else {
                healthy
            };
            let total: u64 = pool.iter().map(|(_, weight)| u64::from(*weight)).sum();
            let mut pick = fastrand::u64(0..total.max(1));
            for (route, weight) in &pool {
                if pick < u64::from(*weight) {
                    return std::slice::from_ref(route);
                }
                pick -= u64::from(*weight);
            }
            pool.first()
                .map_or(&[], |(route, _)| std::slice::from_ref(route))
        }
    }
}

/// Runs `attempt` against `targets` until one answers, the failures are not
/// retryable, or attempts and targets run out. `pipeline_of` gives each
/// route's backend state; `max_stream` is the caller-side stream limit;
/// the first-byte deadlines are waited for on `alarm`.
pub(crate) async fn dispatch<'p, 't, T, F, Fut>(
    targets: &'t Targets,
    pipeline_of: impl Fn(&Route) -> Result<&'p BackendPipeline, GatewayError>,
    max_stream: Option<Duration>,
    alarm: &mut Alarm<'_>,
    mut attempt: F,
) -> Result<Dispatched<'t, T>, GatewayError>
where
    F: FnMut(&'t Route) -> Fut,
    Fut: Future<Output = Result<T, AttemptError<T>>>,
{
    // When the first attempt starts (total_timeout_ms counts from there):
    // its clock read serves its first-byte budget too.
    let mut first_attempt: Option<Instant> = None;
    let breaker_of = |route: &Route| pipeline_of(route).ok().map(|pipeline| &pipeline.breaker);
    let order = order(targets, &breaker_of);
    // Boxed: only a failed attempt sets it, and unboxed its few hundred
    // bytes would be part of every state of this future, which each
    // request's future carries (and moves) whole.
    let mut last: Option<Box<(AttemptError<T>, &Route)>> = None;
    let mut attempts = 0;
    'targets: for route in order {
        let pipeline = pipeline_of(route)?;
        let reliability = &pipeline.reliability;
        for try_number in 1..=reliability.max_attempts.max(1) {
            let ticket = match pipeline.breaker.try_pass() {
                Ok(ticket) => ticket,
                Err(wait) => {
                    last = Some(Box::new((
                        breaker_open(&route.backend, &pipeline.breaker, wait).into(),
                        route,
                    )));
                    continue 'targets;
                }
            };
            let slot = match pipeline.slots.acquire().await {
                Ok(slot) => slot,
                Err(err) => {
                    last = Some(Box::new((err.with_backend(&route.backend).into(), route)));
                    continue 'targets;
                }
            };
            attempts += 1;
            // One clock read for the budget, its deadline and (the first
            // time) the start.
            let now = Instant::now();
            let started = *first_attempt.get_or_insert(now);
            let deadline = started + reliability.total_timeout;
            let budget = reliability
                .first_byte_timeout
                .min(deadline.saturating_duration_since(now));
            // In a block: the attempt's outcome and failure (hundreds of
            // bytes each) end before the backoff's await, so the future
            // does not keep room for them while it sleeps.
            let delay = {
                let outcome = match Within::new(attempt(route), alarm, now + budget).await {
                    Some(outcome) => outcome,
                    None => Err(GatewayError::timeout(format!(
                        "backend '{}' sent no answer within {} ms (first_byte_timeout_ms / \
                         total_timeout_ms)",
                        route.backend,
                        budget.as_millis()
                    ))
                    .into()),
                };
                let failure = match outcome {
                    Ok(value) => {
                        ticket.succeeded();
                        let (deadline, deadline_reason) = match max_stream {
                            Some(limit) if started + limit < deadline => {
                                (started + limit, DeadlineReason::MaxStreamDuration(limit))
                            }
                            _ => (
                                deadline,
                                DeadlineReason::TotalTimeout {
                                    backend: slot.backend().clone(),
                                    limit: reliability.total_timeout,
                                },
                            ),
                        };
                        return Ok(Dispatched {
                            value,
                            route,
                            slot,
                            limits: StreamLimits {
                                idle: reliability.idle_timeout,
                                deadline,
                                deadline_reason,
                            },
                            attempts,
                        });
                    }
                    Err(mut failure) => {
                        failure.error = failure.error.with_backend(&route.backend);
                        failure
                    }
                };
                settle(ticket, &failure.error);
                drop(slot);
                if !failure.error.retryable {
                    return finish(failure, attempts, route, pipeline, started, max_stream);
                }
                tracing::debug!(
                    backend = %route.backend,
                    attempt = try_number,
                    status = failure.error.status(),
                    "attempt failed: {}",
                    failure.error
                );
                let retry_after = failure.error.retry_after;
                last = Some(Box::new((failure, route)));
                match retry_after {
                    // Longer than we wait: the client gets it (or the next
                    // target is tried).
                    Some(wait) if wait > reliability.max_retry_after => continue 'targets,
                    Some(wait) => wait,
                    None => backoff(reliability, try_number),
                }
            };
            if try_number == reliability.max_attempts || Instant::now() + delay >= deadline {
                continue 'targets;
            }
            tokio::time::sleep(delay).await;
        }
    }
    match last.map(|last| *last) {
        Some((failure, route)) => finish(
            failure,
            attempts,
            route,
            pipeline_of(route)?,
            first_attempt.unwrap_or_else(Instant::now),
            max_stream,
        ),
        None => Err(GatewayError::internal("no target to send the request to")),
    }
}

/// The end of a dispatch that produced no good answer: the upstream's own
/// answer when there is one (pass-through), else the error.
fn finish<'t, T>(
    failure: AttemptError<T>,
    attempts: u32,
    route: &'t Route,
    pipeline: &BackendPipeline,
    started: Instant,
    max_stream: Option<Duration>,
) -> Result<Dispatched<'t, T>, GatewayError> {
    let Some(answer) = failure.answer else {
        return Err(failure.error);
    };
    // The answer's body still streams from the upstream: hold a slot for it
    // (without queueing: if none is free, the error is answered instead).
    let Ok(slot) = pipeline.slots.acquire_now() else {
        return Err(failure.error);
    };
    let reliability = &pipeline.reliability;
    let limit = max_stream
        .unwrap_or(reliability.total_timeout)
        .min(reliability.total_timeout);
    Ok(Dispatched {
        value: answer,
        route,
        slot,
        limits: StreamLimits {
            idle: reliability.idle_timeout,
            deadline: started + limit,
            deadline_reason: DeadlineReason::Named("total_timeout_ms"),
        },
        attempts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_stays_under_the_ceiling() {
        let reliability = crate::config::ReliabilityConfig::default().resolve(None);
        for retry in 1..12 {
            let delay = backoff(&reliability, retry);
            let ceiling =
                (reliability.backoff_base * (1 << (retry - 1))).min(reliability.backoff_max);
            assert!(delay <= ceiling, "retry {retry}: {delay:?} > {ceiling:?}");
        }
    }

    #[test]
    fn health_counts_only_backend_failures() {
        let cases = [
            (GatewayError::from_upstream_status(503, "x", ""), true),
            (GatewayError::from_upstream_status(429, "x", ""), false),
            (GatewayError::from_upstream_status(401, "x", ""), false),
            (GatewayError::connect("refused"), true),
            (GatewayError::timeout("slow"), true),
            (GatewayError::upstream("bad json"), true),
            (GatewayError::invalid_request("bad"), false),
        ];
        for (err, counts) in cases {
            assert_eq!(counts_against_backend(&err), counts, "{err}");
        }
    }
}
