//! Completion of a group-commit batch, shared by every put in it, and the shard's flush-timeout
//! watchdog (ARCHITECTURE.md decision 14).
//!
//! One `BatchDone` per batch replaces a reply channel and a timer per put: a put joins the
//! batch's done (one slot in a vector the batch keeps from cycle to cycle), then waits on it;
//! the flusher marks it written (puts that did not ask for durability resolve), then durable
//! or failed (everyone resolves). Cost per put: one `Rc` clone, one slot, one waker clone.
//!
//! Timeouts (`syncFlushTimeout`): a put that is not durable by its deadline answers
//! FLUSH_DISK_TIMEOUT, as before. Deadlines grow in put order and batches are flushed in order,
//! so the earliest deadline still pending is always the first unexpired slot of the oldest
//! pending batch. The watchdog task sleeps until that one instant (no timer per put, no tick
//! while the shard is idle), wakes the slots whose deadline passed and sleeps again.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use super::StoreError;

/// Where a batch is.
#[derive(Debug, Clone)]
enum State {
    /// Queued or being written.
    Pending,
    /// Written (not yet fdatasync'ed): puts that did not ask for durability are done.
    Written,
    /// Durable per the flush mode (and visible).
    Durable,
    /// The batch's I/O failed, or the store went away before it was flushed.
    Failed(StoreError),
}

#[derive(Debug)]
struct Slot {
    deadline: Instant,
    /// false = resolve once written (the WAIT=false property).
    durable: bool,
    waker: Option<Waker>,
}

/// The completion shared by the puts of one batch (see the module doc).
#[derive(Debug)]
pub(crate) struct BatchDone {
    state: RefCell<State>,
    slots: RefCell<Vec<Slot>>,
    /// `slots[..fired]` reached their deadline and were woken by the watchdog.
    fired: Cell<usize>,
}

impl Default for BatchDone {
    fn default() -> Self {
        BatchDone {
            state: RefCell::new(State::Pending),
            slots: RefCell::new(Vec::new()),
            fired: Cell::new(0),
        }
    }
}

/// What a put learns from its batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PutOutcome {
    /// Done as asked (written, or durable).
    Done,
    /// Not done by the deadline; the batch goes on and may still become durable.
    TimedOut,
}

impl BatchDone {
    /// A put joins the batch; the returned future resolves as described in the module doc.
    pub(crate) fn join(self: &Rc<Self>, deadline: Instant, durable: bool) -> PutWait {
        let mut slots = self.slots.borrow_mut();
        slots.push(Slot {
            deadline,
            durable,
            waker: None,
        });
        PutWait {
            done: self.clone(),
            slot: slots.len() - 1,
        }
    }

    /// Ready for a new batch when no put holds it any more (keeps the slot vector's capacity).
    pub(crate) fn reset_if_unshared(this: &mut Rc<Self>) {
        match Rc::get_mut(this) {
            Some(d) => {
                *d.state.get_mut() = State::Pending;
                d.slots.get_mut().clear();
                d.fired.set(0);
            }
            None => *this = Rc::new(BatchDone::default()),
        }
    }

    /// The batch is written: puts that did not ask for durability are done.
    pub(crate) fn written(&self) {
        {
            let mut st = self.state.borrow_mut();
            if !matches!(*st, State::Pending) {
                return;
            }
            *st = State::Written;
        }
        let wakers: Vec<Waker> = self
            .slots
            .borrow_mut()
            .iter_mut()
            .filter(|s| !s.durable)
            .filter_map(|s| s.waker.take())
            .collect();
        wakers.into_iter().for_each(Waker::wake);
    }

    /// The batch is durable: every put is done.
    pub(crate) fn durable(&self) {
        if matches!(*self.state.borrow(), State::Failed(_)) {
            return;
        }
        self.finish(State::Durable);
    }

    /// The batch failed (or will never be flushed): every put not yet done gets `e`.
    pub(crate) fn fail(&self, e: StoreError) {
        if matches!(*self.state.borrow(), State::Durable | State::Failed(_)) {
            return;
        }
        self.finish(State::Failed(e));
    }

    fn finish(&self, st: State) {
        *self.state.borrow_mut() = st;
        // Wake outside the borrow: a waker may run code that polls this batch again.
        let wakers: Vec<Waker> = self
            .slots
            .borrow_mut()
            .iter_mut()
            .filter_map(|s| s.waker.take())
            .collect();
        wakers.into_iter().for_each(Waker::wake);
    }

    /// The earliest deadline of a put still waiting here, if any.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        if matches!(*self.state.borrow(), State::Durable | State::Failed(_)) {
            return None;
        }
        self.slots
            .borrow()
            .get(self.fired.get())
            .map(|s| s.deadline)
    }

    /// Wakes the puts whose deadline is at or before `now` (they then answer a timeout).
    pub(crate) fn fire_expired(&self, now: Instant) {
        let wakers: Vec<Waker> = {
            let mut slots = self.slots.borrow_mut();
            let from = self.fired.get();
            let n = slots[from..].partition_point(|s| s.deadline <= now);
            self.fired.set(from + n);
            slots[from..from + n]
                .iter_mut()
                .filter_map(|s| s.waker.take())
                .collect()
        };
        wakers.into_iter().for_each(Waker::wake);
    }
}

/// A put waiting for its batch.
#[derive(Debug)]
pub(crate) struct PutWait {
    done: Rc<BatchDone>,
    slot: usize,
}

impl Future for PutWait {
    type Output = Result<PutOutcome, StoreError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let done = &self.done;
        let mut slots = done.slots.borrow_mut();
        let slot = &mut slots[self.slot];
        match &*done.state.borrow() {
            State::Durable => return Poll::Ready(Ok(PutOutcome::Done)),
            State::Written if !slot.durable => return Poll::Ready(Ok(PutOutcome::Done)),
            State::Failed(e) => return Poll::Ready(Err(e.clone())),
            State::Pending | State::Written => {}
        }
        // The watchdog fires a slot once its deadline passed: no clock read per poll.
        if self.slot < done.fired.get() {
            return Poll::Ready(Ok(PutOutcome::TimedOut));
        }
        match &mut slot.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            w => *w = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;
    use std::time::Duration;

    use super::*;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn poll(w: &mut PutWait, waker: &Waker) -> Poll<Result<PutOutcome, StoreError>> {
        Pin::new(w).poll(&mut Context::from_waker(waker))
    }

    fn counter() -> (Arc<Count>, Waker) {
        let c = Arc::new(Count(AtomicUsize::new(0)));
        let w = Waker::from(c.clone());
        (c, w)
    }

    #[test]
    fn written_resolves_only_non_durable_puts() {
        let done = Rc::new(BatchDone::default());
        let far = Instant::now() + Duration::from_secs(60);
        let mut durable = done.join(far, true);
        let mut quick = done.join(far, false);
        let (c, w) = counter();
        assert!(poll(&mut durable, &w).is_pending());
        assert!(poll(&mut quick, &w).is_pending());
        done.written();
        assert_eq!(
            c.0.load(Ordering::SeqCst),
            1,
            "only the non-durable put woke"
        );
        assert!(matches!(
            poll(&mut quick, &w),
            Poll::Ready(Ok(PutOutcome::Done))
        ));
        assert!(poll(&mut durable, &w).is_pending());
        done.durable();
        assert_eq!(c.0.load(Ordering::SeqCst), 2);
        assert!(matches!(
            poll(&mut durable, &w),
            Poll::Ready(Ok(PutOutcome::Done))
        ));
    }

    #[test]
    fn failure_reaches_every_waiting_put_and_is_final() {
        let done = Rc::new(BatchDone::default());
        let far = Instant::now() + Duration::from_secs(60);
        let mut a = done.join(far, true);
        let mut b = done.join(far, false);
        let (c, w) = counter();
        assert!(poll(&mut a, &w).is_pending());
        done.fail(StoreError::ShutDown);
        assert_eq!(c.0.load(Ordering::SeqCst), 1);
        // After a failure nothing turns it into a success, nor changes the error.
        done.durable();
        done.fail(StoreError::NotWritable("later".into()));
        for p in [&mut a, &mut b] {
            assert!(matches!(
                poll(p, &w),
                Poll::Ready(Err(StoreError::ShutDown))
            ));
        }
    }

    #[test]
    fn a_durable_batch_ignores_a_late_failure() {
        let done = Rc::new(BatchDone::default());
        let mut a = done.join(Instant::now() + Duration::from_secs(60), true);
        done.durable();
        done.fail(StoreError::ShutDown);
        let (_c, w) = counter();
        assert!(matches!(
            poll(&mut a, &w),
            Poll::Ready(Ok(PutOutcome::Done))
        ));
    }

    #[test]
    fn watchdog_fires_expired_slots_in_deadline_order() {
        let done = Rc::new(BatchDone::default());
        let t0 = Instant::now();
        let mut early = done.join(t0, true);
        let mut late = done.join(t0 + Duration::from_secs(60), true);
        let (c, w) = counter();
        assert!(
            poll(&mut early, &w).is_pending(),
            "the first poll registers"
        );
        assert!(poll(&mut late, &w).is_pending());
        assert_eq!(done.next_deadline(), Some(t0));
        done.fire_expired(Instant::now());
        assert_eq!(c.0.load(Ordering::SeqCst), 1, "only the expired put woke");
        assert_eq!(done.next_deadline(), Some(t0 + Duration::from_secs(60)));
        assert!(matches!(
            poll(&mut early, &w),
            Poll::Ready(Ok(PutOutcome::TimedOut))
        ));
        assert!(poll(&mut late, &w).is_pending());
        done.durable();
        assert_eq!(done.next_deadline(), None);
        assert!(matches!(
            poll(&mut late, &w),
            Poll::Ready(Ok(PutOutcome::Done))
        ));
    }

    #[test]
    fn reset_reuses_an_unshared_done_only() {
        let mut done = Rc::new(BatchDone::default());
        let wait = done.join(Instant::now(), true);
        done.durable();
        let before = Rc::as_ptr(&done);
        BatchDone::reset_if_unshared(&mut done);
        assert_ne!(Rc::as_ptr(&done), before, "a put still holds it: fresh one");
        drop(wait);
        let before = Rc::as_ptr(&done);
        BatchDone::reset_if_unshared(&mut done);
        assert_eq!(Rc::as_ptr(&done), before, "nobody holds it: reused");
        assert_eq!(done.next_deadline(), None, "reset: no slots");
        assert!(matches!(*done.state.borrow(), State::Pending));
    }
}
