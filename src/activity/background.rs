//! Running the checkpoint that the event count calls for on its own thread, so the write call
//! that crossed the threshold does not wait for it (see [`super::checkpoint`]).

use crate::durable::Batch;

use super::checkpoint::{self, Touched, Unsaved};
use super::Activity;
use crate::error::Result;

/// The checkpoint that the event count triggered, written on its own thread so the write call
/// that crossed the threshold does not wait for it. At most one runs; the writer settles it
/// before any checkpoint of its own (a forced one must not land before an older one) and
/// before a backup reads sled. It keeps a copy of the ids it writes, to hand back on failure.
#[derive(Debug, Default)]
pub(crate) struct Background(Option<(std::thread::JoinHandle<Result<()>>, Unsaved)>);

impl Background {
    /// Whether one is still running.
    pub fn busy(&self) -> bool {
        self.0.as_ref().is_some_and(|(h, _)| !h.is_finished())
    }

    /// Write `unsaved` from `act` on a new thread. Journal batches may go on meanwhile: they
    /// touch only log and journal keys, and the checkpoint removes only its own entries.
    /// Hands `unsaved` back if no thread could be started.
    pub fn start(
        &mut self,
        tree: crate::durable::Db,
        act: Activity,
        mut unsaved: Unsaved,
    ) -> Option<Unsaved> {
        // One that finished since the writer last looked: if it failed, this one writes its
        // ids (from the newer state) and removes its journal entries too.
        self.settle(&mut unsaved);
        tracing::debug!(
            events = unsaved.events,
            batches = unsaved.journal.len(),
            users = unsaved.touched.users.len(),
            items = unsaved.touched.items.len(),
            "checkpoint started in the background"
        );
        let copy = unsaved.clone();
        let run = move || -> Result<()> {
            let mut batch = Batch::default();
            checkpoint::write(&act, &Touched::default(), &unsaved, &mut batch)?;
            tree.apply_batch(batch)
        };
        match std::thread::Builder::new()
            .name("recostore-checkpoint".into())
            .spawn(run)
        {
            Ok(h) => {
                self.0 = Some((h, copy));
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not start a checkpoint thread; retrying later");
                Some(copy)
            }
        }
    }

    /// Wait for the running checkpoint, if any. If it failed (or panicked), it wrote nothing
    /// (one atomic batch), so its ids and journal entries go back into `into` for the next one.
    pub fn settle(&mut self, into: &mut Unsaved) {
        let Some((h, copy)) = self.0.take() else {
            return;
        };
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::warn!(%error, "background checkpoint failed; the next one writes its state");
                into.absorb(copy);
            }
            Err(_) => {
                tracing::error!("background checkpoint panicked; the next one writes its state");
                into.absorb(copy);
            }
        }
    }

    /// Collect a finished checkpoint without waiting.
    pub fn reap(&mut self, into: &mut Unsaved) {
        if self.0.as_ref().is_some_and(|(h, _)| h.is_finished()) {
            self.settle(into);
        }
    }
}
