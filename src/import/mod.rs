//! Importers for real public data sets, turning raw files into items and users with tags.
//!
//! * [`movielens`] — MovieLens (`movies.csv`, `ratings.csv`, `tags.csv`).
//! * [`retail`] — UCI Online Retail invoice lines (`.csv` or `.csv.gz`).
//! * [`jsonl`] — your own items, users and events as JSON lines (the export format).
//! * [`report`] — the shared summary and bad-row accounting.

mod common;
pub mod jsonl;
pub mod movielens;
pub mod report;
pub mod retail;

pub use report::{BadRow, ImportOptions, ImportSummary};
