//! Asynchronous jobs (routes with `async`): a request without a client deadline whose
//! upstream has not answered within `sync_wait`, or that says `Prefer: respond-async`, is
//! answered 202 with the `Location` of a job, and its upstream request carries on. The job
//! is polled at `{path}/{job_id}` (200 with its state, then 303 to its result once over) and
//! its result read at `{path}/{job_id}/result`: the upstream's response replayed (with
//! conditional and range requests honoured), or the error the request met.
//!
//! Jobs live in the store, so any node answers for any job. The node running a job renews
//! its lease every second; when a node dies, its jobs fail once their lease is over (any
//! node's sweep marks them), and a SQLite store (one node) fails every unfinished job when
//! Portico starts. The request's body is read whole before anything is sent on (its client
//! may be answered before the upstream reads it), and held until it is sent.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use portico_config::AsyncJobs;
use portico_http::ErrorCode;
use portico_http::conditional::{Conditions, HttpDate};
use portico_policy::secret::push_hex;
use portico_server::client::{Upstream, UpstreamRequest};
use portico_server::{Body, Error, Permits, Request, RequestBody, Reservation, Response};
use portico_store::{JobEnd, JobRecord, JobState, KeptResponse, NewJob, Store, StoreError, new_id};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

use crate::idempotency::{epoch_ms, head_lines, ms, parse_lines};
use crate::represent::{self, Meta, Source};

/// What a job store's operations return; the error text is for logs.
pub type JobFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Where jobs are kept.
pub trait JobStore: Send + Sync + 'static {
    /// Records a job.
    fn create<'a>(&'a self, job: &'a NewJob) -> JobFuture<'a, ()>;
    /// A pending job's request is sent now.
    fn start<'a>(&'a self, id: &'a str, now_ms: i64) -> JobFuture<'a, ()>;
    /// Ends a job that is not over.
    fn finish<'a>(&'a self, id: &'a str, end: &'a JobEnd, now_ms: i64) -> JobFuture<'a, bool>;
    /// A job, with its result's body when `with_body`.
    fn get<'a>(&'a self, id: &'a str, with_body: bool) -> JobFuture<'a, Option<JobRecord>>;
    /// The bytes of the results kept for jobs not expired.
    fn bytes(&self, now_ms: i64) -> JobFuture<'_, u64>;
}

/// Every store keeps jobs.
impl<S: Store + Send + Sync + 'static> JobStore for S {
    fn create<'a>(&'a self, job: &'a NewJob) -> JobFuture<'a, ()> {
        Box::pin(async move { self.create_job(job).await })
    }

    fn start<'a>(&'a self, id: &'a str, now_ms: i64) -> JobFuture<'a, ()> {
        Box::pin(async move { self.start_job(id, now_ms).await })
    }

    fn finish<'a>(&'a self, id: &'a str, end: &'a JobEnd, now_ms: i64) -> JobFuture<'a, bool> {
        Box::pin(async move { self.finish_job(id, end, now_ms).await })
    }

    fn get<'a>(&'a self, id: &'a str, with_body: bool) -> JobFuture<'a, Option<JobRecord>> {
        Box::pin(async move { self.get_job(id, with_body).await })
    }

    fn bytes(&self, now_ms: i64) -> JobFuture<'_, u64> {
        Box::pin(async move { self.job_bytes(now_ms).await })
    }
}

/// Jobs kept in this process (a gateway built without a store: tests, embedders); they end
/// with it, so they need no lease. Forgotten jobs are swept as new ones come.
#[derive(Default)]
pub struct MemoryJobs {
    map: Mutex<HashMap<String, JobRecord>>,
}

impl MemoryJobs {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, JobRecord>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl JobStore for MemoryJobs {
    fn create<'a>(&'a self, job: &'a NewJob) -> JobFuture<'a, ()> {
        let mut map = self.map();
        if map.len() >= 4096 {
            map.retain(|_, j| j.forget_ms > job.now_ms);
        }
        map.insert(
            job.id.clone(),
            JobRecord {
                id: job.id.clone(),
                project: job.project.clone(),
                route: job.route.clone(),
                state: job.state,
                reason: None,
                created_ms: job.now_ms,
                updated_ms: job.now_ms,
                expires_ms: job.expires_ms,
                forget_ms: job.forget_ms,
                result: None,
                etag: None,
            },
        );
        Box::pin(std::future::ready(Ok(())))
    }

    fn start<'a>(&'a self, id: &'a str, now_ms: i64) -> JobFuture<'a, ()> {
        if let Some(j) = self.map().get_mut(id)
            && j.state == JobState::Pending
        {
            j.state = JobState::Running;
            j.updated_ms = now_ms;
        }
        Box::pin(std::future::ready(Ok(())))
    }

    fn finish<'a>(&'a self, id: &'a str, end: &'a JobEnd, now_ms: i64) -> JobFuture<'a, bool> {
        let mut map = self.map();
        let done = match map.get_mut(id) {
            Some(j) if !j.state.is_finished() => {
                j.updated_ms = now_ms;
                match end {
                    JobEnd::Succeeded { response, etag } => {
                        j.state = JobState::Succeeded;
                        j.result = Some(response.clone());
                        j.etag = Some(etag.clone());
                    }
                    JobEnd::Failed(reason) => {
                        j.state = JobState::Failed;
                        j.reason = Some(reason.clone());
                    }
                }
                true
            }
            _ => false,
        };
        Box::pin(std::future::ready(Ok(done)))
    }

    fn get<'a>(&'a self, id: &'a str, with_body: bool) -> JobFuture<'a, Option<JobRecord>> {
        let mut job = self.map().get(id).cloned();
        if let Some(r) = job.as_mut().and_then(|j| j.result.as_mut())
            && !with_body
        {
            r.body = None;
        }
        Box::pin(std::future::ready(Ok(job)))
    }

    fn bytes(&self, now_ms: i64) -> JobFuture<'_, u64> {
        let total = self
            .map()
            .values()
            .filter(|j| j.expires_ms > now_ms)
            .filter_map(|j| j.result.as_ref()?.body.as_ref())
            .map(|b| b.len() as u64)
            .sum();
        Box::pin(std::future::ready(Ok(total)))
    }
}

/// Where this gateway keeps jobs, and what it may keep.
pub struct Jobs {
    store: Arc<dyn JobStore>,
    /// Where jobs and their store calls are counted, once the process has metrics.
    metrics: std::sync::OnceLock<Arc<portico_telemetry::Metrics>>,
    /// This process, as the jobs it runs name it.
    node: Arc<str>,
    /// `limits.job_results_bytes`.
    budget: u64,
}

impl Jobs {
    /// Jobs kept in `store`, run by the node `node`.
    pub fn new(store: Arc<dyn JobStore>, node: impl Into<Arc<str>>, budget: u64) -> Jobs {
        Jobs {
            store,
            metrics: std::sync::OnceLock::new(),
            node: node.into(),
            budget,
        }
    }

    /// Counts jobs in `metrics` from now on (the first registry given stays).
    pub fn set_metrics(&self, metrics: &Arc<portico_telemetry::Metrics>) {
        let _ = self.metrics.set(metrics.clone());
    }

    /// Records a job that reached `state`.
    fn count(&self, state: JobState) {
        if let Some(m) = self.metrics.get() {
            m.job(state.as_str());
        }
    }

    /// Creates a job in the store, timed and counted.
    async fn create(&self, job: &NewJob) -> Result<(), StoreError> {
        let created = crate::timed(
            self.metrics.get().map(|m| &**m),
            "job_create",
            self.store.create(job),
        )
        .await;
        if created.is_ok() {
            self.count(job.state);
        }
        created
    }

    /// Jobs kept in this process.
    pub fn in_memory(budget: u64) -> Jobs {
        Jobs::new(Arc::new(MemoryJobs::default()), new_id(), budget)
    }
}

/// A request on an async route, ready to be sent whatever happens to its client.
pub(crate) struct Outgoing {
    pub(crate) upstream: Arc<Upstream>,
    /// What is sent.
    pub(crate) request: UpstreamRequest,
    pub(crate) body: Bytes,
    /// The buffer budget the body takes, given back once it is sent.
    pub(crate) reservation: Option<Reservation>,
    /// The route's name.
    pub(crate) route: Arc<str>,
    /// The project the job belongs to.
    pub(crate) project: String,
    /// The request's places under `max_in_flight` (route and upstream), held until the
    /// upstream has answered: a job is a request in progress, even after its 202.
    pub(crate) permits: Permits,
}

/// Sends the request and answers its client: with the upstream's response if its head
/// comes within `sync_wait` (streamed, as any proxied response), else (or at once, with
/// `Prefer: respond-async`) 202 and a job.
pub(crate) async fn run(
    jobs: &Arc<Jobs>,
    settings: &AsyncJobs,
    out: Outgoing,
    respond_async: bool,
) -> Result<Response, Error> {
    let (head_tx, mut head_rx) = oneshot::channel();
    let (job_tx, job_rx) = oneshot::channel::<String>();
    let location_base = jobs_base(&settings.path, &out.project);
    let now = epoch_ms(SystemTime::now());
    let (project, route) = (out.project.clone(), out.route.to_string());
    let record = |state| NewJob {
        id: new_id(),
        project: project.clone(),
        route: route.clone(),
        node: jobs.node.to_string(),
        state,
        now_ms: now,
        lease_ms: ms(settings.lease),
        expires_ms: now.saturating_add(ms(settings.retention)),
        // Remembered for another retention after it expires, to answer 410 rather than 404.
        forget_ms: now.saturating_add(ms(settings.retention).saturating_mul(2)),
    };
    let max_result = usize::try_from(settings.max_result_bytes).unwrap_or(usize::MAX);
    if respond_async {
        // Recorded before anything is sent: a store that fails refuses the request whole.
        let job = record(JobState::Pending);
        jobs.create(&job).await.map_err(unavailable)?;
        let _ = job_tx.send(job.id.clone());
        tokio::spawn(carry_on(jobs.clone(), out, head_tx, job_rx, max_result));
        return Ok(accepted(&location_base, &job));
    }
    tokio::spawn(carry_on(jobs.clone(), out, head_tx, job_rx, max_result));
    if let Ok(answer) = tokio::time::timeout(settings.sync_wait, &mut head_rx).await {
        return answer.unwrap_or_else(|_| Err(Error::new(ErrorCode::Internal)));
    }
    // The answer is late: the request becomes a job. When the job cannot be recorded, the
    // client waits for the answer as on any route (nothing is lost, only the 202).
    let job = record(JobState::Running);
    if let Err(e) = jobs.create(&job).await {
        tracing::warn!(error = %e, "a job could not be recorded; answering synchronously");
        return head_rx
            .await
            .unwrap_or_else(|_| Err(Error::new(ErrorCode::Internal)));
    }
    head_rx.close();
    match head_rx.try_recv() {
        // It came while the job was recorded: the job ends with it at once.
        Ok(answer) => {
            tokio::spawn(finish(
                jobs.clone(),
                job.id.clone(),
                answer,
                max_result,
                Permits::default(),
            ));
        }
        Err(_) => {
            let _ = job_tx.send(job.id.clone());
        }
    }
    Ok(accepted(&location_base, &job))
}

/// The task that sends a job's request and, if its client is no longer waiting, keeps the
/// answer as the job's result.
async fn carry_on(
    jobs: Arc<Jobs>,
    out: Outgoing,
    head_tx: oneshot::Sender<Result<Response, Error>>,
    mut job_rx: oneshot::Receiver<String>,
    max_result: usize,
) {
    let known = job_rx.try_recv().ok();
    if let Some(id) = &known
        && let Err(e) = jobs.store.start(id, epoch_ms(SystemTime::now())).await
    {
        tracing::warn!(error = %e, job = %id, "a job's start could not be recorded");
    }
    let Outgoing {
        upstream,
        request,
        body,
        reservation,
        permits,
        ..
    } = out;
    let method = request.method;
    let mut body = RequestBody::detached(body);
    let answer = upstream
        .send(request, &mut body)
        .await
        .map(|a| crate::proxy::relayed(a, method));
    drop(body);
    drop(reservation);
    let (id, answer) = match known {
        Some(id) => (id, answer),
        None => match head_tx.send(answer) {
            // The client was still waiting: it has the answer.
            Ok(()) => return,
            Err(answer) => match job_rx.await {
                Ok(id) => (id, answer),
                // Its client went away before it became a job: nobody asks for it.
                Err(_) => return,
            },
        },
    };
    finish(jobs, id, answer, max_result, permits).await;
}

/// Keeps a job's answer as its result (or its error as its end); the request's places under
/// `max_in_flight` are given back once the upstream's answer has been read.
async fn finish(
    jobs: Arc<Jobs>,
    id: String,
    answer: Result<Response, Error>,
    max: usize,
    permits: Permits,
) {
    let end = match answer {
        Ok(resp) => keep(&jobs, resp, max).await,
        Err(e) => JobEnd::Failed(e.code().as_str().to_string()),
    };
    drop(permits);
    // A store that fails now is asked again, once a second for a minute: the job must not
    // stay running (its node keeps renewing it) for want of one write.
    for attempt in 0..60 {
        let now = epoch_ms(SystemTime::now());
        let finished = jobs.store.finish(&id, &end, now);
        match crate::timed(jobs.metrics.get().map(|m| &**m), "job_finish", finished).await {
            Ok(true) => {
                jobs.count(match end {
                    JobEnd::Succeeded { .. } => JobState::Succeeded,
                    JobEnd::Failed(_) => JobState::Failed,
                });
                return;
            }
            Ok(false) => {
                tracing::warn!(job = %id, "a job ended after it was marked failed");
                return;
            }
            Err(e) if attempt == 0 => {
                tracing::warn!(error = %e, job = %id, "a job's end could not be recorded; retrying");
            }
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    tracing::error!(job = %id, "a job's end could not be recorded");
}

/// The response as a job's result: its whole body (within `max` and the results' budget).
async fn keep(jobs: &Jobs, mut resp: Response, max: usize) -> JobEnd {
    let too_large = || JobEnd::Failed(ErrorCode::JobResultTooLarge.as_str().to_string());
    let body = match &mut resp.body {
        Body::Upstream(ub) => match ub.read_up_to(max).await {
            Ok(Some(all)) => all,
            Ok(None) => return too_large(),
            Err(e) => return JobEnd::Failed(e.code().as_str().to_string()),
        },
        Body::Full(b) => b.clone(),
        _ => Bytes::new(),
    };
    match jobs.store.bytes(epoch_ms(SystemTime::now())).await {
        Ok(held) if held.saturating_add(body.len() as u64) > jobs.budget => return too_large(),
        Ok(_) => {}
        Err(e) => return JobEnd::Failed(interrupted(e)),
    }
    let etag = resp
        .header_value("etag")
        .and_then(|v| std::str::from_utf8(v).ok())
        .map_or_else(|| strong_etag(&body), str::to_string);
    JobEnd::Succeeded {
        response: KeptResponse {
            status: resp.status,
            head: head_lines(&resp.headers),
            body: Some(body.to_vec()),
        },
        etag,
    }
}

fn interrupted(e: StoreError) -> String {
    tracing::warn!(error = %e, "a job's result could not be checked against the budget");
    ErrorCode::JobInterrupted.as_str().to_string()
}

/// A strong tag for bytes that have none: the first 128 bits of their SHA-256.
fn strong_etag(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    let mut tag = String::from("\"");
    push_hex(&mut tag, &digest[..16]);
    tag.push('"');
    tag
}

fn unavailable(e: StoreError) -> Error {
    Error::new(ErrorCode::JobsUnavailable)
        .with_header("Retry-After", "1")
        .with_cause(e)
}

/// The jobs path of a project: `/v1/{project_id}/jobs` → `/v1/p1/jobs`.
fn jobs_base(template: &str, project: &str) -> String {
    template.replace("{project_id}", project)
}

/// 202 with the job's `Location` and its state.
fn accepted(base: &str, job: &NewJob) -> Response {
    let location = format!("{base}/{}", job.id);
    let state = serde_json::json!({
        "id": job.id,
        "state": job.state.as_str(),
        "created_at": timestamp(job.now_ms),
        "updated_at": timestamp(job.now_ms),
        "expires_at": timestamp(job.expires_ms),
        "location": location,
    });
    Response::new(202)
        .header("Location", location)
        .header("Content-Type", "application/json")
        .body(state.to_string())
}

fn timestamp(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    crate::access_log::rfc3339_millis(t)
}

/// Whether `id` can be a job id (32 lowercase hexadecimal digits); anything else is not
/// looked up.
fn plausible(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `GET {path}/{job_id}` and `GET {path}/{job_id}/result`, for the project of the URL (whose
/// caller the access phase checked): another project's job, or none, is 404; a finished
/// job is 303 to its result; its result after retention is 410.
pub(crate) async fn answer(
    jobs: &Jobs,
    base_template: &str,
    project: &str,
    id: &str,
    result: bool,
    req: &Request,
) -> Result<Response, Error> {
    let not_found = || Error::new(ErrorCode::JobNotFound);
    if !plausible(id) {
        return Err(not_found());
    }
    let job = jobs
        .store
        .get(id, result)
        .await
        .map_err(unavailable)?
        .filter(|j| j.project == project)
        .ok_or_else(not_found)?;
    let now = epoch_ms(SystemTime::now());
    if now >= job.forget_ms {
        return Err(not_found());
    }
    let base = jobs_base(base_template, project);
    let result_location = format!("{base}/{id}/result");
    if job.state.is_finished() && now >= job.expires_ms {
        return Err(Error::new(ErrorCode::JobExpired));
    }
    if !result {
        let mut state = serde_json::json!({
            "id": job.id,
            "state": job.state.as_str(),
            "created_at": timestamp(job.created_ms),
            "updated_at": timestamp(job.updated_ms),
            "expires_at": timestamp(job.expires_ms),
        });
        if let Some(code) = &job.reason {
            state["error_code"] = serde_json::json!(code);
        }
        if !job.state.is_finished() {
            return Ok(Response::new(200)
                .header("Content-Type", "application/json")
                .header("Cache-Control", "no-store")
                .body(state.to_string()));
        }
        state["result"] = serde_json::json!(result_location);
        return Ok(Response::new(303)
            .header("Location", result_location)
            .header("Content-Type", "application/json")
            .body(state.to_string()));
    }
    match (job.state, job.result) {
        (JobState::Succeeded, Some(kept)) => replay(kept, job.etag, job.updated_ms, req),
        (JobState::Failed, _) => Err(failure(job.reason.as_deref())),
        _ => Err(Error::new(ErrorCode::JobResultNotReady).with_header("Retry-After", "1")),
    }
}

/// The error a failed job met, as it would have been answered.
fn failure(reason: Option<&str>) -> Error {
    let code = reason
        .and_then(|r| ErrorCode::ALL.iter().copied().find(|c| c.as_str() == r))
        .unwrap_or(ErrorCode::JobInterrupted);
    Error::new(code)
}

/// A kept result: a 200 through the semantics core (304, 412, 206, 416 as the request asks);
/// any other status as it was.
fn replay(
    kept: KeptResponse,
    etag: Option<String>,
    finished_ms: i64,
    req: &Request,
) -> Result<Response, Error> {
    let body = Bytes::from(kept.body.unwrap_or_default());
    let mut fields = parse_lines(&kept.head);
    if kept.status != 200 {
        return Ok(Response {
            status: kept.status,
            reason: None,
            headers: fields,
            body: Body::Full(body),
            close: false,
            error: None,
        });
    }
    let content_type = take(&mut fields, "content-type")
        .unwrap_or_else(|| Bytes::from_static(b"application/octet-stream"));
    let etag = etag
        .or_else(|| take(&mut fields, "etag").and_then(|v| String::from_utf8(v.to_vec()).ok()))
        .unwrap_or_else(|| strong_etag(&body));
    // The representation's own validators and framing come from here; the rest as kept.
    for name in [
        "etag",
        "last-modified",
        "accept-ranges",
        "content-range",
        "content-length",
        "cache-control",
        "vary",
        "content-encoding",
    ] {
        take(&mut fields, name);
    }
    let finished = UNIX_EPOCH + Duration::from_millis(u64::try_from(finished_ms).unwrap_or(0));
    let meta = Meta {
        content_type: Some(content_type),
        etag: Some(etag),
        last_modified: Some(HttpDate::from_system_time(finished.min(SystemTime::now()))),
        length: body.len() as u64,
        cache_control: None,
        vary: None,
        content_encoding: None,
        fields,
    };
    let conditions = Conditions::from_fields(req.head.fields());
    represent::respond(req.head.method(), &conditions, &meta, Source::Memory(body))
}

/// Removes the fields named `name`; the first one's value.
fn take(fields: &mut Vec<(Bytes, Bytes)>, name: &str) -> Option<Bytes> {
    let first = fields
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
        .map(|(_, v)| v.clone());
    fields.retain(|(n, _)| !n.eq_ignore_ascii_case(name.as_bytes()));
    first
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_are_looked_up_only_when_they_can_be_ids() {
        assert!(plausible(&new_id()));
        for bad in [
            "",
            "abc",
            "../../etc/passwd",
            &"A".repeat(32),
            &"g".repeat(32),
        ] {
            assert!(!plausible(bad), "{bad}");
        }
    }

    #[test]
    fn the_jobs_path_is_the_projects() {
        assert_eq!(jobs_base("/v1/{project_id}/jobs", "p1"), "/v1/p1/jobs");
    }

    #[test]
    fn a_result_without_a_tag_gets_a_strong_one_from_its_bytes() {
        let tag = strong_etag(b"hello");
        assert_eq!(tag.len(), 34);
        assert!(tag.starts_with('"') && tag.ends_with('"'));
        assert_eq!(tag, strong_etag(b"hello"));
        assert_ne!(tag, strong_etag(b"hello!"));
    }
}
