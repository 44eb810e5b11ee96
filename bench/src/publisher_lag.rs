//! The NATS publisher's lag during the sign-in benchmark (issue #22): when the benchmark runs
//! with `GATEHOUSE_NATS_URL` and `GATEHOUSE_METRICS_TOKEN` set (both passed on to the server), a
//! sampler reads `/metrics` every 200 ms during each HTTP phase, and after the last phase the
//! benchmark measures how long the publisher takes to drain what is left.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const EVERY: Duration = Duration::from_millis(200);

/// One reading of the publisher's two lag gauges.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub seconds: f64,
    pub events: f64,
}

/// Reads `/metrics` with the token, when both settings are present.
#[derive(Clone)]
pub struct Probe {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl Probe {
    /// `None` unless the benchmark's environment asks for the publisher.
    pub fn from_env(http: &reqwest::Client, base: &str) -> Option<Self> {
        std::env::var("GATEHOUSE_NATS_URL").ok()?;
        let token = std::env::var("GATEHOUSE_METRICS_TOKEN").ok()?;
        Some(Self {
            http: http.clone(),
            url: format!("{base}/metrics"),
            token,
        })
    }

    async fn sample(&self) -> Option<Sample> {
        let text = self
            .http
            .get(&self.url)
            .bearer_auth(&self.token)
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        parse(&text)
    }

    /// Samples until `stop` turns true.
    pub fn sample_until(&self, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<Vec<Sample>> {
        let probe = self.clone();
        tokio::spawn(async move {
            let mut samples = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let next = Instant::now() + EVERY;
                if let Some(s) = probe.sample().await {
                    samples.push(s);
                }
                tokio::time::sleep_until(next.into()).await;
            }
            samples
        })
    }

    /// How long until no event is left to publish (`None` past `limit`).
    pub async fn drained_within(&self, limit: Duration) -> Option<Duration> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if self.sample().await.is_some_and(|s| s.events == 0.0) {
                return Some(start.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }
}

/// The two gauges from a Prometheus text page.
fn parse(text: &str) -> Option<Sample> {
    let gauge = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    };
    Some(Sample {
        seconds: gauge("gatehouse_nats_publisher_lag_seconds")?,
        events: gauge("gatehouse_nats_publisher_lag_events")?,
    })
}

/// `max lag s, p99 lag s, max events behind` over one phase's samples.
pub fn summary(samples: &[Sample]) -> String {
    if samples.is_empty() {
        return "no samples".to_string();
    }
    let mut seconds: Vec<f64> = samples.iter().map(|s| s.seconds).collect();
    seconds.sort_by(f64::total_cmp);
    let p99 = seconds[((seconds.len() as f64 * 0.99).ceil() as usize).clamp(1, seconds.len()) - 1];
    let max_events = samples.iter().map(|s| s.events).fold(0.0, f64::max);
    format!(
        "{} samples, lag p99 {:.3} s, max {:.3} s, most events behind {max_events:.0}",
        samples.len(),
        p99,
        seconds[seconds.len() - 1]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_both_gauges_are_read_and_a_missing_one_gives_none() {
        let page = "# HELP x\ngatehouse_nats_publisher_lag_events 12\ngatehouse_nats_publisher_lag_seconds 0.250\n";
        assert_eq!(
            parse(page),
            Some(Sample {
                seconds: 0.25,
                events: 12.0
            })
        );
        assert_eq!(parse("gatehouse_nats_publisher_lag_events 1\n"), None);
    }

    #[test]
    fn test_summary_takes_the_top_percentile_and_the_most_events() {
        let samples: Vec<Sample> = (1..=100)
            .map(|i| Sample {
                seconds: f64::from(i) / 100.0,
                events: f64::from(i % 7),
            })
            .collect();
        assert_eq!(
            summary(&samples),
            "100 samples, lag p99 0.990 s, max 1.000 s, most events behind 6"
        );
    }
}
