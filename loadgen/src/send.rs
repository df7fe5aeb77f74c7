//! Sending SDK batches to the collector over a pool of keep-alive
//! connections: `connections` tasks each take the next batch from one
//! queue, post it, and report the outcome with its latency measured from
//! the batch's *intended* send time (open loop: time spent queued here
//! because the server is slow counts against the server).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER, USER_AGENT};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::{Deserialize, Serialize};

use qoe_schema::beacon::{Event, WireEvent};

/// One SDK batch on its way.
#[derive(Debug, Clone)]
pub struct Job {
    /// The viewer sending it (index), or a marker's number.
    pub viewer: u32,
    /// When the SDK meant to send it, ms since the epoch.
    pub intended_ms: i64,
    /// Its events (the ground truth keeps the accepted ones).
    pub events: Vec<Event>,
    /// The JSON body.
    pub body: Bytes,
    /// `X-Forwarded-For` and `User-Agent`.
    pub client: (HeaderValue, HeaderValue),
    /// Sends so far (retries after 429/503 or a failure).
    pub attempt: u32,
    /// Whether this is a write-latency marker.
    pub marker: bool,
}

/// How the collector answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// 202: these indexes were accepted; `rejected` carries the others'
    /// reason codes.
    Accepted { rejected: Vec<(usize, String)> },
    /// 429 or 503: shed, retry after the given seconds.
    Shed { status: u16, retry_after_s: u64 },
    /// Any other status: the batch was refused (a bug in the model or the
    /// collector).
    Refused { status: u16, body: String },
    /// No answer (connection error or timeout): outcome unknown.
    Failed(String),
}

/// A finished attempt.
pub struct Done {
    pub job: Job,
    pub outcome: Outcome,
    /// From the intended send time to the answer, ms.
    pub latency_ms: f64,
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    rejected: Vec<RejectedEvent>,
}

#[derive(Deserialize)]
struct RejectedEvent {
    index: usize,
    reason: String,
}

/// The sending side: queue batches with [`Pool::send`], read outcomes from
/// [`Pool::done`].
pub struct Pool {
    jobs: flume::Sender<Job>,
    queue: flume::Receiver<Job>,
    /// Finished attempts.
    pub done: flume::Receiver<Done>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Pool {
    /// `connections` senders posting to `url` (the collector's beacon
    /// route for the property key), each request bounded by `timeout`.
    pub fn start(url: String, connections: usize, timeout: Duration) -> Pool {
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(connections)
            .build_http();
        // Unbounded on purpose: the scheduler must never wait for the
        // server (open loop); the queue's depth is reported instead.
        let (jobs, queue) = flume::unbounded::<Job>();
        let (done_tx, done) = flume::unbounded();
        let url: Arc<str> = url.into();
        let tasks = (0..connections.max(1))
            .map(|_| {
                let (client, queue, done_tx, url) =
                    (client.clone(), queue.clone(), done_tx.clone(), url.clone());
                tokio::spawn(async move {
                    while let Ok(job) = queue.recv_async().await {
                        let outcome = post(&client, &url, &job, timeout).await;
                        let latency_ms = (now_ms_f64() - job.intended_ms as f64).max(0.0);
                        if done_tx
                            .send(Done {
                                job,
                                outcome,
                                latency_ms,
                            })
                            .is_err()
                        {
                            return;
                        }
                    }
                })
            })
            .collect();
        Pool {
            jobs,
            queue,
            done,
            tasks,
        }
    }

    /// Queues a batch.
    pub fn send(&self, job: Job) {
        let _ = self.jobs.send(job);
    }

    /// Batches waiting for a connection.
    pub fn queued(&self) -> usize {
        self.jobs.len()
    }

    /// Takes back every batch not sent yet (the run is over: they never
    /// reached the server, so they are simply not acknowledged).
    pub fn unqueue(&self) -> usize {
        self.queue.drain().count()
    }

    /// Stops the senders (queued batches are dropped).
    pub fn stop(self) {
        for task in self.tasks {
            task.abort();
        }
    }
}

async fn post(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    url: &str,
    job: &Job,
    timeout: Duration,
) -> Outcome {
    let request = Request::builder()
        .method(Method::POST)
        .uri(url)
        .header(CONTENT_TYPE, "application/json")
        .header("x-forwarded-for", job.client.0.clone())
        .header(USER_AGENT, job.client.1.clone())
        .body(Full::new(job.body.clone()));
    let request = match request {
        Ok(r) => r,
        Err(e) => return Outcome::Failed(format!("bad request: {e}")),
    };
    let exchange = async {
        let response = client.request(request).await.map_err(|e| e.to_string())?;
        let (parts, body) = response.into_parts();
        // Answers are small; a huge one is a bug, not something to buffer.
        let body = Limited::new(body, 1 << 20)
            .collect()
            .await
            .map_err(|e| format!("reading the answer: {e}"))?
            .to_bytes();
        Ok::<_, String>((parts, body))
    };
    let (parts, body) = match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(e)) => return Outcome::Failed(e),
        Err(_) => return Outcome::Failed(format!("no answer within {timeout:?}")),
    };
    match parts.status {
        StatusCode::ACCEPTED => {
            let answer: Answer = serde_json::from_slice(&body).unwrap_or(Answer {
                rejected: Vec::new(),
            });
            Outcome::Accepted {
                rejected: answer
                    .rejected
                    .into_iter()
                    .map(|r| (r.index, r.reason))
                    .collect(),
            }
        }
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => Outcome::Shed {
            status: parts.status.as_u16(),
            retry_after_s: parts
                .headers
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .unwrap_or(1),
        },
        status => Outcome::Refused {
            status: status.as_u16(),
            body: String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned(),
        },
    }
}

/// The body an SDK posts for `events`: `{"events": [...]}`.
pub fn body(events: &[Event]) -> Bytes {
    #[derive(Serialize)]
    struct Batch<'a> {
        events: Vec<WireEvent<'a>>,
    }
    let batch = Batch {
        events: events.iter().map(WireEvent::from).collect(),
    };
    Bytes::from(serde_json::to_vec(&batch).unwrap_or_default())
}

fn now_ms_f64() -> f64 {
    qoe_common::clock::since_epoch().as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use qoe_schema::validate::{decode, Checks};

    #[test]
    fn the_body_decodes_to_the_same_events() {
        let mut a = qoe_schema::sample::event("v-1", 1);
        a.startup_time_ms = None;
        let mut b = qoe_schema::sample::event("v-1", 2);
        b.error_fatal = true;
        b.error_code = "E1".into();
        let events = vec![a, b];
        let out = decode(&body(&events), &Checks::at(qoe_schema::sample::NOW_MS)).unwrap();
        assert!(out.rejected.is_empty(), "{:?}", out.rejected);
        assert_eq!(out.accepted, events);
    }
}
