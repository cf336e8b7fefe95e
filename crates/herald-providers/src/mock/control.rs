//! What the mocks share: the request log and the scripted answers.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::{MockRequest, MockResponse};

/// Computes an answer for an accepted request.
pub(crate) type Responder = Arc<dyn Fn(&MockRequest) -> MockResponse + Send + Sync>;

/// A mock's request log and script.
pub(crate) struct Control {
    log: Mutex<Vec<MockRequest>>,
    accepted: AtomicU64,
    /// Benchmarks turn the log off so a million requests do not pile up in memory; the
    /// counter keeps counting.
    recording: AtomicBool,
    queue: Mutex<VecDeque<MockResponse>>,
    responder: Mutex<Option<Responder>>,
}

impl Default for Control {
    fn default() -> Self {
        Self {
            log: Mutex::default(),
            accepted: AtomicU64::new(0),
            recording: AtomicBool::new(true),
            queue: Mutex::default(),
            responder: Mutex::default(),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A test that panicked while holding a lock must not hide the mock from the next test.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Control {
    /// The scripted answer for an accepted request: the next queued one, else the responder's,
    /// else `None` (the mock's default success).
    pub fn scripted(&self, request: &MockRequest) -> Option<MockResponse> {
        if let Some(response) = lock(&self.queue).pop_front() {
            return Some(response);
        }
        // Cloned out so a responder may call back into the mock without deadlocking.
        let responder = lock(&self.responder).clone();
        responder.map(|respond| respond(request))
    }

    /// Logs a request (accepted or rejected) with the status it got.
    pub fn record(&self, mut request: MockRequest, status: u16) {
        request.status = status;
        if request.rejection.is_none() {
            self.accepted.fetch_add(1, Ordering::Relaxed);
        }
        if self.recording.load(Ordering::Relaxed) {
            lock(&self.log).push(request);
        }
    }

    pub fn requests(&self) -> Vec<MockRequest> {
        lock(&self.log).iter().filter(|r| r.rejection.is_none()).cloned().collect()
    }

    pub fn rejected(&self) -> Vec<MockRequest> {
        lock(&self.log).iter().filter(|r| r.rejection.is_some()).cloned().collect()
    }

    pub fn accepted_count(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    pub fn set_recording(&self, on: bool) {
        self.recording.store(on, Ordering::Relaxed);
    }

    pub fn clear(&self) {
        lock(&self.log).clear();
    }

    pub fn push_response(&self, response: MockResponse) {
        lock(&self.queue).push_back(response);
    }

    pub fn set_responder(&self, responder: Option<Responder>) {
        *lock(&self.responder) = responder;
    }
}

/// The inspection and scripting methods both mocks offer, delegating to their `control` field.
macro_rules! control_methods {
    () => {
        /// The mock's base URL, `http://127.0.0.1:<port>`; use it as a channel's `endpoint`.
        pub fn base_url(&self) -> &str {
            &self.base_url
        }

        /// Requests that passed verification, oldest first (while recording is on).
        pub fn requests(&self) -> Vec<$crate::mock::MockRequest> {
            self.control.requests()
        }

        /// Requests the mock refused (bad credentials, missing headers, oversized payload),
        /// each with its `rejection` reason.
        pub fn rejected(&self) -> Vec<$crate::mock::MockRequest> {
            self.control.rejected()
        }

        /// How many requests passed verification, counted even while recording is off.
        pub fn request_count(&self) -> u64 {
            self.control.accepted_count()
        }

        /// Turns the request log on or off (on by default); benchmarks turn it off.
        pub fn set_recording(&self, on: bool) {
            self.control.set_recording(on);
        }

        /// Empties the request log.
        pub fn clear_requests(&self) {
            self.control.clear();
        }

        /// Queues an answer for the next accepted request; queued answers are used before the
        /// responder, one per request.
        pub fn push_response(&self, response: $crate::mock::MockResponse) {
            self.control.push_response(response);
        }

        /// Answers every accepted request (when nothing is queued) with `responder`'s result.
        pub fn set_responder(
            &self,
            responder: impl Fn(&$crate::mock::MockRequest) -> $crate::mock::MockResponse + Send + Sync + 'static,
        ) {
            self.control.set_responder(Some(std::sync::Arc::new(responder)));
        }

        /// Goes back to the service's default success answer.
        pub fn clear_responder(&self) {
            self.control.set_responder(None);
        }
    };
}

pub(crate) use control_methods;
