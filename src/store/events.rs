//! The behaviour write API on [`Store`]: recording events (the staging is in `behaviour` and
//! `activity`), de-duplicated runs, and the event log read back.

use super::Store;
use crate::behaviour::{self, DedupRun};
use crate::error::Result;
use crate::event::Event;

impl Store {
    /// Record one event. See [`Store::record_events`].
    pub fn record_event(&self, event: &Event) -> Result<()> {
        self.record_events(std::slice::from_ref(event)).map(|_| ())
    }

    /// Record a batch of events atomically: all or none. Users new to the store are created;
    /// items must exist. The batch is durable under the store's [`crate::Durability`] like
    /// any write (group commit: after the next flush). Returns how many were recorded.
    ///
    /// Batches are much faster than single events: each user's and item's state is copied
    /// once per batch, and a batch of 2,048 events or more applies its item statistics and
    /// co-occurrence on a second thread.
    ///
    /// Under an events-per-second quota ([`crate::Quota::events_per_sec`]) a call that finds
    /// too little room is refused whole with [`crate::Error::QuotaExceeded`].
    pub fn record_events(&self, events: &[Event]) -> Result<usize> {
        self.validate_events(events)?;
        self.admit_events(events.len())?;
        let recorded = self.record_admitted(events);
        if recorded.is_err() {
            // Nothing was stored: the call used none of the quota.
            self.refund_events(events.len());
        }
        recorded
    }

    fn validate_events(&self, events: &[Event]) -> Result<()> {
        let latest = crate::event::latest_event_time(self.config().future_tolerance_secs);
        for (i, e) in events.iter().enumerate() {
            e.validate(i, latest)?;
        }
        Ok(())
    }

    /// Record validated events the events quota has admitted (or that it does not count).
    pub(super) fn record_admitted(&self, events: &[Event]) -> Result<usize> {
        if events.is_empty() {
            return Ok(0);
        }
        self.write(|p| p.record_all(events))?;
        self.plugins().attribute(events);
        Ok(events.len())
    }

    /// Start a de-duplicated run of [`Store::record_events_once`] calls (one import).
    pub fn dedup_run(&self) -> DedupRun {
        DedupRun::new(self.snapshot().activity.totals().event_seq)
    }

    /// Like [`Store::record_events`], but skips events the log already held when `run`
    /// began: the k-th copy of an event in the run is recorded only if the log held fewer than
    /// k identical events (same user, time, kind, item, session and values) before the run.
    /// So re-running an import records nothing, and identical events within one run are all
    /// kept, wherever the batches split them. Returns `(recorded, skipped)`. (Two runs of the
    /// same events at the same moment can still both record them.) Where a user's log has
    /// been pruned ([`Store::prune_event_log`]), their events at or before the newest time
    /// pruned are skipped too: they cannot be told from events already recorded.
    pub fn record_events_once(
        &self,
        events: &[Event],
        run: &mut DedupRun,
    ) -> Result<(usize, usize)> {
        let fresh = behaviour::unlogged(self.tree(), &self.snapshot(), events, run)?;
        let skipped = events.len() - fresh.len();
        Ok((self.record_events(&fresh)?, skipped))
    }

    /// [`Store::record_events_once`] that waits for the events quota instead of failing,
    /// in calls of at most one second's worth: how imports keep to it.
    pub(crate) fn record_events_once_paced(
        &self,
        events: &[Event],
        run: &mut DedupRun,
    ) -> Result<(usize, usize)> {
        let Some(burst) = self.events_burst() else {
            return self.record_events_once(events, run);
        };
        let (mut recorded, mut skipped) = (0, 0);
        for part in events.chunks(burst.max(1)) {
            self.validate_events(part)?;
            let fresh = behaviour::unlogged(self.tree(), &self.snapshot(), part, run)?;
            skipped += part.len() - fresh.len();
            self.pace_events(fresh.len());
            recorded += self.record_admitted(&fresh)?;
        }
        Ok((recorded, skipped))
    }

    /// Take the events older than `keep_secs` seconds of store time (before the newest event
    /// time less `keep_secs`) out of the event log now; [`Config::event_log_retention_secs`]
    /// does this in the background. What those events did to behaviour state stays, and
    /// recommendations do not change; a user's history, export and evaluation see only the
    /// events kept. Each user's count of pruned events is kept, so [`Store::verify_deep`]
    /// still reconciles the log with the state. Queries go on throughout; writes wait only
    /// while each group of log entries is taken out. Events of batches not yet checkpointed
    /// stay until a later prune ([`crate::PruneReport::journaled_chunks`]).
    ///
    /// [`Config::event_log_retention_secs`]: crate::Config::event_log_retention_secs
    pub fn prune_event_log(&self, keep_secs: u64) -> Result<crate::PruneReport> {
        self.inner.prune_event_log(keep_secs)
    }

    /// User `id`'s recorded events, oldest first (impression items that no longer exist are
    /// left out). `NotFound` if the user does not exist.
    pub fn user_events(&self, id: &str) -> Result<Vec<Event>> {
        behaviour::user_events(&self.snapshot(), self.tree(), id)
    }

    /// What behaviour says about user `id`, or `None` if the user does not exist. See
    /// [`crate::View::user_activity`].
    pub fn user_activity(&self, id: &str) -> Option<behaviour::UserActivity> {
        self.view().user_activity(id)
    }

    /// What behaviour says about item `id`, or `None` if the item does not exist. See
    /// [`crate::View::item_activity`].
    pub fn item_activity(&self, id: &str) -> Option<behaviour::ItemActivity> {
        self.view().item_activity(id)
    }

    /// The users in the named segment. See [`crate::View::segment_users`].
    pub fn segment_users(&self, name: &str) -> Result<Vec<String>> {
        self.view().segment_users(name)
    }
}
