//! A store's durable key-value pairs as a run of files ("pair files"), the form a published
//! generation ships them in (`crate::replica`; FORMAT.md, "Pair files").
//!
//! Why not sled's own files: sled rewrites them as it goes, so two copies of the same pairs
//! share few bytes, and a replica would download all of them after any change. Pair files are
//! cut where the keys say: after a pair whose key hashes below a threshold proportional to the
//! pair's size. Whether a pair ends a file depends on that pair alone, never on where the file
//! began, so a change to one pair changes only the file that holds it (two, when the change
//! moves a cut), and every other file comes out byte for byte as before and is not uploaded
//! again. Files average [`TARGET_BYTES`]; a pair larger than that always ends its file.
//!
//! A file is [`MAGIC`], then each pair as `key length (u32 LE) · key · value length (u32 LE) ·
//! value`, keys strictly ascending, and nothing after the last pair. Files are named
//! `pairs/<8 digits>` from 0, so their names sort in key order too. Integrity is the
//! manifest's checksum of the whole file; [`parse`] checks the structure, which is input from
//! the network.

use std::io::{BufWriter, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The first bytes of every pair file.
pub const MAGIC: &[u8; 8] = b"RSPAIRS1";

/// The mean size of a pair file, in bytes of pairs.
pub const TARGET_BYTES: u64 = 1 << 20;

/// Pair files one generation may have: their 8-digit names sort in key order up to here.
const MAX_FILES: usize = 100_000_000;

/// The directory of pair files inside a published generation, and the prefix of their paths.
pub const DIR: &str = "pairs";

/// The seed of the cut hash: fixed, since files must cut the same way in every process.
const SEED: u64 = 0x7265_636f_7061_6972;

/// Whether the pair with `key` and a value of `value_len` bytes ends its file: with
/// probability `(key + value + 8) / TARGET_BYTES`, drawn from the key's hash alone.
pub(crate) fn ends_file(key: &[u8], value_len: usize) -> bool {
    let weight = (key.len() + value_len + 8) as u128;
    let threshold = (weight << 64) / u128::from(TARGET_BYTES);
    u128::from(xxhash_rust::xxh3::xxh3_64_with_seed(key, SEED)) < threshold
}

/// Append one pair's encoding to `out`.
pub(crate) fn encode_pair(out: &mut impl Write, key: &[u8], value: &[u8]) -> Result<()> {
    let (Ok(klen), Ok(vlen)) = (u32::try_from(key.len()), u32::try_from(value.len())) else {
        return Err(Error::io(
            "writing pairs",
            Path::new(DIR),
            std::io::Error::other("a key or value of 4 GiB or more"),
        ));
    };
    out.write_all(&klen.to_le_bytes())
        .and_then(|()| out.write_all(key))
        .and_then(|()| out.write_all(&vlen.to_le_bytes()))
        .and_then(|()| out.write_all(value))
        .map_err(|e| Error::io("writing pairs", Path::new(DIR), e))
}

/// Writes pairs, in ascending key order, into pair files under one directory.
pub(crate) struct Writer {
    dir: PathBuf,
    out: Option<BufWriter<std::fs::File>>,
    files: usize,
    pairs: u64,
    bytes: u64,
}

impl Writer {
    /// Pair files go in `root/pairs/`, which this creates.
    pub(crate) fn new(root: &Path) -> Result<Writer> {
        let dir = root.join(DIR);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("creating", &dir, e))?;
        Ok(Writer {
            dir,
            out: None,
            files: 0,
            pairs: 0,
            bytes: 0,
        })
    }

    /// Append one pair; keys must come in ascending order (the caller scans in key order).
    pub(crate) fn push(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        if self.out.is_none() {
            if self.files >= MAX_FILES {
                // Names have 8 digits so that they sort in key order; past them (100 TiB of
                // pairs) they would not.
                return Err(Error::io(
                    "writing pairs to",
                    &self.dir,
                    std::io::Error::other("more than 100,000,000 pair files"),
                ));
            }
            let path = self.dir.join(format!("{:08}", self.files));
            let file = std::fs::File::create(&path).map_err(|e| Error::io("writing", &path, e))?;
            let mut out = BufWriter::with_capacity(1 << 20, file);
            out.write_all(MAGIC)
                .map_err(|e| Error::io("writing", &path, e))?;
            self.out = Some(out);
            self.files += 1;
        }
        if let Some(out) = self.out.as_mut() {
            encode_pair(out, key, value)?;
        }
        self.pairs += 1;
        self.bytes += (key.len() + value.len() + 8) as u64;
        if ends_file(key, value.len()) {
            self.close_file()?;
        }
        Ok(())
    }

    fn close_file(&mut self) -> Result<()> {
        if let Some(out) = self.out.take() {
            // Not synced: pair files are a staging copy that lives until it is uploaded (and
            // checksummed there), and a crash discards it.
            out.into_inner()
                .map_err(|e| Error::io("writing pairs to", &self.dir, e.into_error()))?;
        }
        Ok(())
    }

    /// Close the last file; returns (files, pairs, bytes of pairs).
    pub(crate) fn finish(mut self) -> Result<(usize, u64, u64)> {
        self.close_file()?;
        Ok((self.files, self.pairs, self.bytes))
    }
}

/// Why a pair file is refused.
fn malformed(what: &str, why: String) -> Error {
    Error::BadObject {
        location: what.to_string(),
        reason: why,
        remedy: "The replica keeps serving its last verified generation. The file passed its \
                 checksum, so the leader wrote it this way: report it with the leader's version",
    }
}

/// Parse the pair file `bytes` (named `what` in errors) and hand each pair to `each` as the
/// ranges of its key and value in `bytes`, in order. Checks the magic, every length against
/// what is left, and that each key is above the one before it, starting from `after` (the
/// previous file's last key, so the order holds across files). Returns the number of pairs
/// and the range of the last key. Allocates nothing.
pub(crate) fn parse(
    what: &str,
    bytes: &[u8],
    after: Option<&[u8]>,
    mut each: impl FnMut(Range<usize>, Range<usize>) -> Result<()>,
) -> Result<(u64, Range<usize>)> {
    if bytes.len() < MAGIC.len() {
        return Err(malformed(
            what,
            format!("it is {} bytes, shorter than its magic", bytes.len()),
        ));
    }
    if &bytes[..MAGIC.len()] != MAGIC {
        return Err(malformed(what, "it does not start with `RSPAIRS1`".into()));
    }
    if bytes.len() == MAGIC.len() {
        return Err(malformed(what, "it holds no pair".into()));
    }
    let field = |at: usize, name: &str| -> Result<Range<usize>> {
        let left = bytes.len() - at;
        let Some(n) = bytes.get(at..at + 4) else {
            return Err(malformed(
                what,
                format!("it ends inside a {name} length, {left} bytes before its end"),
            ));
        };
        let n = u32::from_le_bytes([n[0], n[1], n[2], n[3]]) as usize;
        if n > left - 4 {
            return Err(malformed(
                what,
                format!(
                    "a {name} of {n} bytes runs past its end ({} bytes left)",
                    left - 4
                ),
            ));
        }
        Ok(at + 4..at + 4 + n)
    };
    let mut at = MAGIC.len();
    let mut pairs = 0u64;
    let mut last: Option<Range<usize>> = None;
    while at < bytes.len() {
        let key = field(at, "key")?;
        let value = field(key.end, "value")?;
        at = value.end;
        let before = match &last {
            Some(l) => Some(&bytes[l.clone()]),
            None => after,
        };
        if before.is_some_and(|b| b >= &bytes[key.clone()]) {
            return Err(malformed(
                what,
                format!("its pair {pairs} is not above the pair before it in key order"),
            ));
        }
        last = Some(key.clone());
        each(key, value)?;
        pairs += 1;
    }
    Ok((pairs, last.unwrap_or(0..0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs_of(dir: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out = Vec::new();
        let mut last: Option<Vec<u8>> = None;
        let mut names: Vec<_> = std::fs::read_dir(dir.join(DIR))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        for path in names {
            let bytes = std::fs::read(&path).unwrap();
            let (_, k) = parse("t", &bytes, last.as_deref(), |k, v| {
                out.push((bytes[k].to_vec(), bytes[v].to_vec()));
                Ok(())
            })
            .unwrap();
            last = Some(bytes[k].to_vec());
        }
        out
    }

    fn write(dir: &Path, pairs: &[(Vec<u8>, Vec<u8>)]) -> usize {
        let mut w = Writer::new(dir).unwrap();
        for (k, v) in pairs {
            w.push(k, v).unwrap();
        }
        w.finish().unwrap().0
    }

    fn files(dir: &Path) -> std::collections::BTreeSet<Vec<u8>> {
        std::fs::read_dir(dir.join(DIR))
            .unwrap()
            .map(|e| std::fs::read(e.unwrap().path()).unwrap())
            .collect()
    }

    fn sample(n: u32) -> Vec<(Vec<u8>, Vec<u8>)> {
        (0..n)
            .map(|i| {
                let k = format!("I{i:08}").into_bytes();
                let v = vec![(i % 251) as u8; 40 + (i as usize * 7919) % 3000];
                (k, v)
            })
            .collect()
    }

    #[test]
    fn pairs_read_back_in_order_across_files() {
        let dir = tempfile::tempdir().unwrap();
        let pairs = sample(5000);
        let n = write(dir.path(), &pairs);
        assert!(n > 3, "{n} files for ~7.5 MB");
        assert_eq!(pairs_of(dir.path()), pairs);
    }

    #[test]
    fn one_changed_pair_changes_one_or_two_files() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let pairs = sample(20_000);
        write(a.path(), &pairs);
        for (at, grow) in [(17usize, 1usize), (9_999, 5000), (19_999, 0)] {
            let mut changed = pairs.clone();
            changed[at].1 = vec![7; changed[at].1.len() + grow];
            let _ = std::fs::remove_dir_all(b.path().join(DIR));
            write(b.path(), &changed);
            let (before, after) = (files(a.path()), files(b.path()));
            let new = after.difference(&before).count();
            assert!((1..=2).contains(&new), "pair {at}: {new} new files");
        }
        // A pair inserted: also local.
        let mut more = pairs.clone();
        more.insert(500, (b"I00000499x".to_vec(), vec![1; 100]));
        let _ = std::fs::remove_dir_all(b.path().join(DIR));
        write(b.path(), &more);
        let new = files(b.path()).difference(&files(a.path())).count();
        assert!((1..=2).contains(&new), "{new} new files");
    }

    #[test]
    fn malformed_files_are_refused_without_panic() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &sample(10));
        let good = std::fs::read(dir.path().join(DIR).join("00000000")).unwrap();
        let check =
            |bytes: &[u8], last: Option<Vec<u8>>| parse("t", bytes, last.as_deref(), |_, _| Ok(()));
        assert!(check(&good, None).is_ok());
        for cut in [0, 4, 8, 11, 13, good.len() - 1] {
            assert!(check(&good[..cut], None).is_err(), "cut at {cut}");
        }
        let mut huge = good.clone();
        huge[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(check(&huge, None).is_err());
        let mut magic = good.clone();
        magic[0] = b'X';
        assert!(check(&magic, None).is_err());
        // Keys must climb across files too.
        assert!(check(&good, Some(b"J".to_vec())).is_err());
    }
}
