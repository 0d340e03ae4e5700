//! Notices when the relay has gone quiet, counting its WebSocket pings as signs of life.
//!
//! The transport's `FrameReader::recv` answers pings internally and only returns on frames, so
//! a plain timeout around it would call an idle but healthy connection dead. Instead the read
//! future is wrapped so that every wake-up of it (the socket became readable: a frame, a ping or
//! a close arrived) is recorded, and the connection is dead only after `limit` without any.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use tokio::time::Instant;

/// The last time anything arrived on one connection.
#[derive(Clone)]
pub struct Activity(Arc<Mutex<Instant>>);

impl Activity {
    /// Starts counting from now.
    pub fn new() -> Self {
        Self(Arc::new(Mutex::new(Instant::now())))
    }

    fn touch(&self) {
        *self.0.lock().expect("activity lock") = Instant::now();
    }

    fn last(&self) -> Instant {
        *self.0.lock().expect("activity lock")
    }

    /// `read`, with every wake-up of it recorded as activity.
    pub fn watch<F: Future>(&self, read: F) -> Watched<F> {
        Watched {
            read: Box::pin(read),
            activity: self.clone(),
        }
    }

    /// Completes once nothing has arrived for `limit`.
    pub async fn silent_for(&self, limit: Duration) {
        loop {
            let deadline = self.last() + limit;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// A read future whose wake-ups count as activity.
pub struct Watched<F> {
    read: Pin<Box<F>>,
    activity: Activity,
}

struct NotingWaker {
    inner: Waker,
    activity: Activity,
}

impl Wake for NotingWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.activity.touch();
        self.inner.wake_by_ref();
    }
}

impl<F: Future> Future for Watched<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let waker = Waker::from(Arc::new(NotingWaker {
            inner: cx.waker().clone(),
            activity: self.activity.clone(),
        }));
        let result = self.read.as_mut().poll(&mut Context::from_waker(&waker));
        if result.is_ready() {
            self.activity.touch();
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::mpsc;

    use super::*;

    const LIMIT: Duration = Duration::from_secs(90);

    #[tokio::test(start_paused = true)]
    async fn wake_ups_of_the_read_count_and_other_wake_ups_do_not() {
        let activity = Activity::new();
        let start = Instant::now();
        let (tx, mut rx) = mpsc::channel::<u8>(1);
        // Stands in for a ping at 60 s: the read is woken but keeps waiting for a frame.
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(60)).await;
            tx.send(1).await.unwrap();
            std::future::pending::<()>().await
        });
        let mut read =
            std::pin::pin!(activity.watch(async move { while rx.recv().await.is_some() {} }));
        // Like the session's heartbeat: wakes the task (and re-polls the read) every 30 s.
        let mut tick = tokio::time::interval(Duration::from_secs(30));
        loop {
            tokio::select! {
                _ = &mut read => unreachable!("the read never completes"),
                _ = tick.tick() => {}
                _ = activity.silent_for(LIMIT) => break,
            }
        }
        assert_eq!(start.elapsed(), Duration::from_secs(60) + LIMIT);
    }

    #[tokio::test(start_paused = true)]
    async fn silence_ends_after_the_limit() {
        let activity = Activity::new();
        let start = Instant::now();
        activity.silent_for(LIMIT).await;
        assert_eq!(start.elapsed(), LIMIT);
    }
}
