//! The immutable read side: one rkyv archive per generation, memory-mapped and read zero-copy.
//!
//! * `format` — the archived types and the footer (the byte layout is in `FORMAT.md`).
//! * [`builder`] — records in, columns out.
//! * [`read`] — checked accessors over archived columns.
//! * [`postings`] — the tag → item inverted index with per-block maxima.
//! * [`neighbours`] — the sidecar file of precomputed similar-item lists.
//! * `file` — atomic publication and validated opening of segment files.

pub mod builder;
pub mod file;
pub mod format;
pub mod neighbours;
pub mod postings;
pub mod read;

pub use builder::SegmentBuilder;
pub use file::Segment;
pub use format::SegmentData;
pub use neighbours::Neighbours;
