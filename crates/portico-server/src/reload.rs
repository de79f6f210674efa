//! A service that can be replaced while it serves: a configuration reload.
//!
//! Each request takes the service that is current when it begins and keeps it until it ends,
//! so a reload never cuts a request short: requests in flight finish with the old routes,
//! pools and limits, and the old service is dropped when the last of them is done. New
//! connections take their settings from the new service.

use std::future::Future;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::body::RequestBody;
use crate::error::Error;
use crate::response::Response;
use crate::service::{Exchange, Request, Service};
use crate::settings::ConnSettings;

/// A service that [`Reloadable::replace`] switches atomically.
pub struct Reloadable<S> {
    current: ArcSwap<S>,
}

impl<S: Service> Reloadable<S> {
    /// Starts with `svc`.
    pub fn new(svc: S) -> Reloadable<S> {
        Reloadable {
            current: ArcSwap::from_pointee(svc),
        }
    }

    /// The service requests beginning now get.
    pub fn current(&self) -> Arc<S> {
        self.current.load_full()
    }

    /// Makes `svc` the service of every request that begins from now on.
    pub fn replace(&self, svc: S) {
        self.current.store(Arc::new(svc));
    }
}

impl<S: Service> Service for Reloadable<S> {
    fn settings(&self) -> Arc<ConnSettings> {
        self.current.load().settings()
    }

    fn call(
        &self,
        req: &mut Request,
        body: &mut RequestBody<'_>,
    ) -> impl Future<Output = Result<Response, Error>> + Send {
        let svc = self.current.load_full();
        async move { svc.call(req, body).await }
    }

    fn log(&self, exchange: &Exchange<'_>) {
        self.current.load().log(exchange);
    }
}
