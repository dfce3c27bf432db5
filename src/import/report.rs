//! What every importer reports: counts, and bad rows with their line numbers.

use serde::Serialize;

use crate::error::{Error, Result};

/// How an import behaves.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Abort on the first bad row, before anything is stored, instead of skipping it.
    pub strict: bool,
    /// Told how many bytes of each file have been read (the CLI draws progress bars from it).
    /// `None` (the default): no reports.
    pub progress: Option<crate::progress::Progress>,
}

/// One row that could not be imported.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BadRow {
    /// File the row came from.
    pub file: String,
    /// 1-based line number in that file.
    pub line: u64,
    /// Why it was rejected.
    pub reason: String,
}

/// The summary an import prints (`--json` prints it as one object).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ImportSummary {
    /// Items stored.
    pub items: usize,
    /// Users stored.
    pub users: usize,
    /// Distinct tags across items and users.
    pub tags: usize,
    /// Behaviour rows read (ratings, tag applications, invoice lines).
    pub events: u64,
    /// Behaviour events recorded from those rows (see `Store::record_events`).
    pub recorded: u64,
    /// Malformed rows skipped.
    pub skipped: u64,
    /// Well-formed rows left out by policy (cancellations, no customer, quantity <= 0).
    pub dropped: u64,
    /// Events the store already held before this import began, so not recorded again: a
    /// re-run (or a re-run after an interrupted import) adds only what is missing.
    pub already_stored: u64,
    /// The first bad rows (at most [`MAX_REPORTED`]); `skipped` counts all of them.
    pub bad_rows: Vec<BadRow>,
    /// Wall time in seconds.
    pub seconds: f64,
}

/// How many bad rows are kept in the summary.
pub const MAX_REPORTED: usize = 20;

impl ImportSummary {
    /// Record a bad row: in strict mode this is an error, otherwise it is counted, logged and
    /// (for the first few) kept for the summary.
    pub fn bad_row(
        &mut self,
        opts: &ImportOptions,
        file: &str,
        line: u64,
        reason: impl Into<String>,
    ) -> Result<()> {
        let reason = reason.into();
        if opts.strict {
            return Err(Error::BadInput {
                source_name: file.to_string(),
                line,
                reason,
            });
        }
        tracing::warn!(file, line, %reason, "skipping bad row");
        self.skipped += 1;
        if self.bad_rows.len() < MAX_REPORTED {
            self.bad_rows.push(BadRow {
                file: file.to_string(),
                line,
                reason,
            });
        }
        Ok(())
    }
}
