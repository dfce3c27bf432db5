//! A segment file on disk: atomic publication, validated opening, and deletion once retired.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use memmap2::Mmap;

use super::format::{
    schema_hash, ArchivedSegmentData, Footer, SegmentData, FOOTER_LEN, FORMAT_VERSION, MAGIC,
};
use super::neighbours::Neighbours;
use crate::config::SegmentVerify;
use crate::error::{Error, Result};

/// File name of generation `g` inside the segments directory.
pub fn file_name(generation: u64) -> String {
    format!("{generation:020}.seg")
}

/// Parse a generation back out of a file name made by [`file_name`].
pub fn parse_file_name(name: &str) -> Option<u64> {
    name.strip_suffix(".seg")?.parse().ok()
}

/// fsync a directory so a rename inside it is durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("syncing directory", dir, e))
}

/// What distinguishes one kind of archive file from another: its footer magic, its format
/// version and the hash of its schema string.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FileKind {
    /// Footer magic.
    pub magic: [u8; 8],
    /// Format version this build writes and reads.
    pub version: u32,
    /// xxh3 of the schema string.
    pub schema_hash: u64,
    /// Noun for messages ("segment", "neighbour file").
    pub noun: &'static str,
}

/// The segment file kind.
pub(crate) fn segment_kind() -> FileKind {
    FileKind {
        magic: MAGIC,
        version: FORMAT_VERSION,
        schema_hash: schema_hash(),
        noun: "segment",
    }
}

/// Serialise `data` and publish it as `dir/<generation>.seg`, bound to store `store` (see
/// [`Footer::store`]): write a temporary file, fsync it, rename it into place, fsync the
/// directory. Readers never see a partial file.
///
/// rkyv writes forward only, so the archive streams into the file through a buffer, hashed
/// on the way: a 1M-item segment is 486 MB, and serialising it into memory first cost a
/// fresh zeroed buffer of that size (a tenth of a bulk load in a process whose heap had been
/// through a big rebuild) and a second copy.
pub fn write(dir: &Path, data: &SegmentData, store: u32) -> Result<PathBuf> {
    publish(
        dir,
        &file_name(data.generation),
        segment_kind(),
        store,
        |out| {
            rkyv::api::high::to_bytes_in::<_, rkyv::rancor::Error>(
                data,
                rkyv::ser::writer::IoWriter::new(out),
            )
            .map(|_| ())
            .map_err(|e| e.to_string())
        },
    )
}

/// Publish `payload` plus a footer of `kind` atomically as `dir/name`.
pub(crate) fn write_archive(
    dir: &Path,
    name: &str,
    kind: FileKind,
    payload: &[u8],
    store: u32,
) -> Result<PathBuf> {
    publish(dir, name, kind, store, |out| {
        out.write_all(payload).map_err(|e| e.to_string())
    })
}

/// Publish a payload that `fill` writes (in as many pieces as it likes) plus a footer of
/// `kind` atomically as `dir/name`.
pub(crate) fn write_parts(
    dir: &Path,
    name: &str,
    kind: FileKind,
    store: u32,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<PathBuf> {
    publish(dir, name, kind, store, |out| {
        fill(out).map_err(|e| e.to_string())
    })
}

/// The bytes of a payload on their way to the file: counted and hashed for the footer.
struct Hashing<W> {
    inner: W,
    hasher: xxhash_rust::xxh3::Xxh3,
    len: u64,
    /// The first I/O error, kept whole for the caller (rkyv passes on only its text).
    error: Option<std::io::Error>,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.inner.write(buf) {
            Ok(n) => {
                let done = buf.get(..n).unwrap_or(buf);
                self.hasher.update(done);
                self.len += done.len() as u64;
                Ok(n)
            }
            // `write_all` retries an interrupted write: not the cause of any failure.
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                let kind = e.kind();
                let text = e.to_string();
                self.error.get_or_insert(e);
                Err(std::io::Error::new(kind, text))
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Write a payload with `fill` into a temporary file, then the footer of `kind` (length and
/// xxh3 of what `fill` wrote), fsync, rename to `dir/name`, fsync the directory.
fn publish(
    dir: &Path,
    name: &str,
    kind: FileKind,
    store: u32,
    fill: impl FnOnce(&mut Hashing<std::io::BufWriter<File>>) -> std::result::Result<(), String>,
) -> Result<PathBuf> {
    let path = dir.join(name);
    let tmp = dir.join(format!("{name}.tmp"));
    let res = (|| -> Result<()> {
        let file = File::create(&tmp).map_err(|e| Error::io("writing segment", &tmp, e))?;
        let mut out = Hashing {
            inner: std::io::BufWriter::with_capacity(1 << 20, file),
            hasher: xxhash_rust::xxh3::Xxh3::new(),
            len: 0,
            error: None,
        };
        if let Err(reason) = fill(&mut out) {
            return Err(match out.error.take() {
                Some(e) => Error::io("writing segment", &tmp, e),
                None => Error::CorruptSegment {
                    path: dir.to_path_buf(),
                    reason: format!("could not serialise segment: {reason}"),
                },
            });
        }
        let footer = Footer {
            store,
            version: kind.version,
            schema_hash: kind.schema_hash,
            payload_len: out.len,
            payload_xxh3: out.hasher.digest(),
        };
        let mut file = out
            .inner
            .into_inner()
            .map_err(|e| Error::io("writing segment", &tmp, e.into_error()))?;
        file.write_all(&footer.to_bytes(kind.magic))
            .and_then(|()| file.sync_all())
            .map_err(|e| Error::io("writing segment", &tmp, e))
    })();
    if let Err(e) = res {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, &path).map_err(|e| Error::io("publishing segment", &path, e))?;
    sync_dir(dir)?;
    Ok(path)
}

/// A read-only mapping of an archive file whose footer has been checked. Deletes its file on
/// drop once retired.
pub(crate) struct Mapped {
    map: Mmap,
    payload_len: usize,
    path: PathBuf,
    kind: FileKind,
    store: u32,
    retired: AtomicBool,
}

impl Mapped {
    /// Map `path` and check its footer (and the payload checksum under
    /// [`SegmentVerify::Checksum`]). The caller validates the archive structure.
    pub(crate) fn open(path: &Path, kind: FileKind, verify: SegmentVerify) -> Result<Mapped> {
        let bad = |reason: String| Error::CorruptSegment {
            path: path.to_path_buf(),
            reason,
        };
        let file = File::open(path).map_err(|e| Error::io("opening segment", path, e))?;
        let len = file
            .metadata()
            .map_err(|e| Error::io("reading segment size", path, e))?
            .len();
        let len = crate::narrow::usize_from(len);
        if len < FOOTER_LEN {
            return Err(bad(format!(
                "file is {len} bytes, shorter than the {FOOTER_LEN}-byte footer (truncated)"
            )));
        }
        // SAFETY: archive files are immutable once published (written to a temporary name and
        // renamed), and the store never opens one for writing again. The mapping is read-only,
        // so the only way its contents change under us is another process writing into our
        // store directory, which is outside the contract documented in FORMAT.md.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io("mapping segment", path, e))?;
        let footer = Footer::parse(&map[len - FOOTER_LEN..], kind.magic).map_err(bad)?;
        if footer.version != kind.version {
            return Err(bad(format!(
                "{} format version {} but this build reads {}",
                kind.noun, footer.version, kind.version
            )));
        }
        if footer.schema_hash != kind.schema_hash {
            return Err(bad(format!(
                "schema hash differs: {} written by a build with other types",
                kind.noun
            )));
        }
        let payload_len = len - FOOTER_LEN;
        if footer.payload_len != payload_len as u64 {
            return Err(bad(format!(
                "footer says {} payload bytes, file has {payload_len} (truncated or appended to)",
                footer.payload_len
            )));
        }
        let mapped = Mapped {
            map,
            payload_len,
            path: path.to_path_buf(),
            kind,
            store: footer.store,
            retired: AtomicBool::new(false),
        };
        if verify == SegmentVerify::Checksum {
            mapped.verify_checksum()?;
        }
        Ok(mapped)
    }

    /// The store the file says it belongs to ([`Footer::store`]; 0: written before stores
    /// had ids).
    pub(crate) fn store(&self) -> u32 {
        self.store
    }

    /// The archive bytes (everything before the footer).
    pub(crate) fn payload(&self) -> &[u8] {
        &self.map[..self.payload_len]
    }

    /// Size of the file in bytes.
    pub(crate) fn file_len(&self) -> usize {
        self.map.len()
    }

    /// Path of the file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Recompute the payload checksum and compare it with the footer's.
    pub(crate) fn verify_checksum(&self) -> Result<()> {
        let bad = |reason: String| Error::CorruptSegment {
            path: self.path.clone(),
            reason,
        };
        let footer = Footer::parse(&self.map[self.payload_len..], self.kind.magic).map_err(bad)?;
        let f = File::open(&self.path).map_err(|e| Error::io("opening segment", &self.path, e))?;
        let sum = checksum_by_reading(&f, self.payload_len)
            .map_err(|e| Error::io("checksumming segment", &self.path, e))?;
        if sum != footer.payload_xxh3 {
            return Err(bad(format!(
                "{} payload checksum mismatch (bytes changed on disk)",
                self.kind.noun
            )));
        }
        Ok(())
    }

    /// Mark for deletion once dropped.
    pub(crate) fn retire(&self) {
        self.retired.store(true, Ordering::Release);
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        if self.retired.load(Ordering::Acquire) {
            if let Err(e) = fs::remove_file(&self.path) {
                tracing::warn!(path = %self.path.display(), error = %e, "could not delete retired file");
            } else {
                tracing::debug!(path = %self.path.display(), "deleted retired file");
            }
        }
    }
}

/// An open, validated, memory-mapped segment, with the neighbour lists built for it if they
/// exist. Shared between readers through `Arc`; when the store has moved on to a newer
/// generation it is *retired*, and its files are deleted when the last reader drops it (the
/// mappings go with them).
pub struct Segment {
    file: Mapped,
    generation: u64,
    neighbours: Option<Neighbours>,
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("path", &self.file.path)
            .field("generation", &self.generation)
            .field("bytes", &self.file.file_len())
            .field("neighbours", &self.neighbours.is_some())
            .finish()
    }
}

impl Segment {
    /// Map and validate `path`. Any failure is [`Error::CorruptSegment`] (or `Io` when the file
    /// cannot be read at all); nothing here panics on hostile bytes. Neighbour lists are not
    /// loaded; see [`Segment::with_neighbours`].
    pub fn open(path: &Path, verify: SegmentVerify) -> Result<Segment> {
        let file = Mapped::open(path, segment_kind(), verify)?;
        let data = rkyv::access::<ArchivedSegmentData, rkyv::rancor::Error>(file.payload())
            .map_err(|e| Error::CorruptSegment {
                path: path.to_path_buf(),
                reason: format!("structure invalid: {e}"),
            })?;
        let generation = data.generation.to_native();
        let named = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(parse_file_name);
        if named.is_some_and(|g| g != generation) {
            return Err(Error::CorruptSegment {
                path: path.to_path_buf(),
                reason: format!("file name says generation {named:?}, contents say {generation}"),
            });
        }
        Ok(Segment {
            file,
            generation,
            neighbours: None,
        })
    }

    /// Attach neighbour lists built for this generation (before the segment is shared).
    pub fn with_neighbours(mut self, n: Neighbours) -> Segment {
        self.neighbours = Some(n);
        self
    }

    /// The archived root. Zero-copy: this is a view into the mapping.
    pub fn data(&self) -> &ArchivedSegmentData {
        // SAFETY: `open` ran `rkyv::access` (full bytecheck validation) on exactly these bytes,
        // and the mapping is immutable and lives as long as `self`, so the root is valid.
        unsafe { rkyv::access_unchecked::<ArchivedSegmentData>(self.file.payload()) }
    }

    /// The precomputed neighbour lists, if this generation has them.
    pub fn neighbours(&self) -> Option<&Neighbours> {
        self.neighbours.as_ref()
    }

    /// The store the file says it belongs to ([`Footer::store`]; 0: written before stores
    /// had ids).
    pub fn store_tag(&self) -> u32 {
        self.file.store()
    }

    /// Generation number.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Path of the file.
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// Size of the segment file in bytes (neighbour file not included).
    pub fn file_len(&self) -> usize {
        self.file.file_len()
    }

    /// Recompute the full payload checksum (used by `Store::verify`), of the neighbour file too.
    pub fn verify_checksum(&self) -> Result<()> {
        self.file.verify_checksum()?;
        if let Some(n) = &self.neighbours {
            n.verify_checksum()?;
        }
        Ok(())
    }

    /// Mark for deletion once the last reader lets go.
    pub(crate) fn retire(&self) {
        self.file.retire();
        if let Some(n) = &self.neighbours {
            n.retire();
        }
    }
}

/// Hash the payload through `read(2)` rather than the mapping: the page cache is used, but the
/// pages never enter this process's RSS, so opening stays cheap in memory.
fn checksum_by_reading(file: &File, payload_len: usize) -> std::io::Result<u64> {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut left = payload_len;
    let mut r = file;
    use std::io::Seek;
    r.seek(std::io::SeekFrom::Start(0))?;
    while left > 0 {
        let want = left.min(buf.len());
        let n = r.read(&mut buf[..want])?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "segment shorter than its footer says",
            ));
        }
        h.update(&buf[..n]);
        left -= n;
    }
    Ok(h.digest())
}
