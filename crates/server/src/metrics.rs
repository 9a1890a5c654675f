//! Prometheus metrics at `GET /metrics` (text exposition format). Events are counted where
//! they happen (recorder launches and failures, ready and acknowledgement latencies, upload
//! lag, webhook attempts); levels that the database or the disk knows (recordings by status,
//! the webhook queue, spool bytes, recordings being finished) are read when scraped.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Why a recorder attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct FailureLabels {
    /// `launch` (could not be started), `exited` (before it connected), `lost` (its
    /// connection), `storage` (the spool failed), `killed` (not ready in time, or not wanted).
    pub reason: &'static str,
}

/// A status label.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct StatusLabels {
    /// The status.
    pub status: String,
}

/// How a webhook attempt ended.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `delivered` (2xx) or `failed`.
    pub outcome: &'static str,
}

/// The server's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Recorders started.
    pub recorder_launches: Counter,
    /// Recorder attempts that failed, by reason.
    pub recorder_failures: Family<FailureLabels, Counter>,
    /// From a recorder's launch to its `ready`.
    pub recorder_ready_seconds: Histogram,
    /// From a block's arrival to its acknowledgement (spooled, fsynced, recorded).
    pub fragment_ack_seconds: Histogram,
    /// From a recording's end to its files being in the object store.
    pub upload_lag_seconds: Histogram,
    /// Webhook delivery attempts, by outcome.
    pub webhook_attempts: Family<OutcomeLabels, Counter>,
    /// Bytes durable in the spool but not yet in the object store (the upload backlog).
    pub upload_backlog_bytes: Gauge,
    /// Parts the object store took.
    pub upload_parts: Counter,
    /// Object store requests that failed and will be retried.
    pub upload_failures: Counter,
    /// HTTP connections open.
    pub http_connections: Gauge,
    recordings: Family<StatusLabels, Gauge>,
    webhook_queue: Gauge,
    spool_bytes: Gauge,
    finishing: Gauge,
}

/// The levels read at scrape time.
#[derive(Debug, Default)]
pub struct Levels {
    /// Recordings in the metadata store, by status.
    pub recordings: Vec<(String, i64)>,
    /// Webhook messages waiting.
    pub webhook_queue: i64,
    /// Bytes in the spool.
    pub spool_bytes: u64,
    /// Ended recordings whose files are being stored.
    pub finishing: usize,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric under the `convrec` prefix.
    pub fn new() -> Self {
        let latency = || {
            Histogram::new([
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ])
        };
        let metrics = Self {
            registry: Registry::with_prefix("convrec"),
            recorder_launches: Counter::default(),
            recorder_failures: Family::default(),
            recorder_ready_seconds: latency(),
            fragment_ack_seconds: latency(),
            upload_lag_seconds: Histogram::new([
                0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
            ]),
            webhook_attempts: Family::default(),
            upload_backlog_bytes: Gauge::default(),
            upload_parts: Counter::default(),
            upload_failures: Counter::default(),
            http_connections: Gauge::default(),
            recordings: Family::default(),
            webhook_queue: Gauge::default(),
            spool_bytes: Gauge::default(),
            finishing: Gauge::default(),
        };
        metrics.register_all()
    }

    /// Puts every metric (each a shared handle) into the registry.
    fn register_all(mut self) -> Self {
        let r = &mut self.registry;
        r.register(
            "recorder_launches",
            "Recorders started",
            self.recorder_launches.clone(),
        );
        r.register(
            "recorder_failures",
            "Recorder attempts that failed, by reason",
            self.recorder_failures.clone(),
        );
        r.register(
            "recorder_ready_seconds",
            "From a recorder's launch to its ready message",
            self.recorder_ready_seconds.clone(),
        );
        r.register(
            "fragment_ack_seconds",
            "From a block's arrival to its acknowledgement (durable in the spool)",
            self.fragment_ack_seconds.clone(),
        );
        r.register(
            "upload_lag_seconds",
            "From a recording's end to its files being in the object store",
            self.upload_lag_seconds.clone(),
        );
        r.register(
            "webhook_attempts",
            "Webhook delivery attempts, by outcome",
            self.webhook_attempts.clone(),
        );
        r.register(
            "upload_backlog_bytes",
            "Bytes durable in the spool but not yet in the object store",
            self.upload_backlog_bytes.clone(),
        );
        r.register(
            "upload_parts",
            "Parts of recording files the object store took",
            self.upload_parts.clone(),
        );
        r.register(
            "upload_failures",
            "Object store requests that failed and are retried",
            self.upload_failures.clone(),
        );
        r.register(
            "http_connections",
            "HTTP connections open (at most limits.max_connections)",
            self.http_connections.clone(),
        );
        r.register(
            "recordings",
            "Recordings in the metadata store, by status",
            self.recordings.clone(),
        );
        r.register(
            "webhook_queue_depth",
            "Webhook messages waiting to be delivered",
            self.webhook_queue.clone(),
        );
        r.register(
            "spool_bytes",
            "Bytes in the spool (recordings being written or not yet stored)",
            self.spool_bytes.clone(),
        );
        r.register(
            "recordings_finishing",
            "Ended recordings whose files are being stored",
            self.finishing.clone(),
        );
        self
    }

    /// The text exposition of every metric, with the scrape-time `levels`.
    pub fn render(&self, levels: &Levels) -> String {
        self.recordings.clear();
        for (status, n) in &levels.recordings {
            self.recordings
                .get_or_create(&StatusLabels {
                    status: status.clone(),
                })
                .set(*n);
        }
        self.webhook_queue.set(levels.webhook_queue);
        self.spool_bytes
            .set(i64::try_from(levels.spool_bytes).unwrap_or(i64::MAX));
        self.finishing
            .set(i64::try_from(levels.finishing).unwrap_or(i64::MAX));
        let mut text = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!(error = %e, "cannot encode the metrics");
        }
        text
    }

    /// Counts a failed recorder attempt.
    pub fn recorder_failed(&self, reason: &'static str) {
        self.recorder_failures
            .get_or_create(&FailureLabels { reason })
            .inc();
    }
}
