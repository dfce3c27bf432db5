//! The manifest of a published generation (`crate::replica`): what it is made of, and the
//! names things have under a prefix. Apart from the replica module, which needs the object
//! store crate, so the fuzz target decodes manifests without it.
//!
//! Under a prefix `P` of an object store (FORMAT.md, "Published generations"):
//!
//! * `P/objects/<xxh3-128 hex>-<size>`: one file of a store, named by its content. A file is
//!   uploaded once, whichever generation names it, and never changes.
//! * `P/manifests/<generation, 20 digits>.json`: one generation. Written last, with a
//!   conditional put that fails if the name exists, so a manifest only ever names objects that
//!   were whole before it, and two publishers can never both commit one generation.
//!
//! A manifest is two lines: the JSON of [`Manifest`], then `xxh3-128 <32 hex digits>`, the
//! checksum of the first line's bytes. A truncated or altered manifest fails that check.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What a manifest that fails its checks means, for whoever reads it.
pub(crate) const BAD_MANIFEST: &str = "A replica keeps serving its last verified generation \
     until a newer manifest is whole; a leader cannot tell who published it and refuses to \
     publish past it: delete that manifest (no replica can have used it) and publish again";

/// The `format` every manifest this version writes carries. In it, the files under `pairs/`
/// are pair files (FORMAT.md, "Pair files"): the store's durable pairs in key order, which a
/// replica serves its records from, not placed as files.
pub const MANIFEST_FORMAT: &str = "recostore-manifest/2";

/// The first format: every file, sled's included, is placed as it is. Still read, so a
/// replica upgraded before its leader goes on following it.
pub const MANIFEST_FORMAT_V1: &str = "recostore-manifest/1";

/// One published generation of a store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`MANIFEST_FORMAT`].
    pub format: String,
    /// The generation's number under its prefix: one more than the newest before it.
    pub generation: u64,
    /// The id of the store that published it (8 hex digits, as `stats` shows it).
    pub leader: String,
    /// When the publish started: the state it holds is at least this recent (milliseconds
    /// since the Unix epoch, the leader's clock).
    pub published_at_ms: u64,
    /// The leader's segment generation in it.
    pub segment_generation: u64,
    /// Every file of the store directory, in path order.
    pub files: Vec<ManifestFile>,
}

/// One file of a published store directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    /// Its path inside the store directory, `/`-separated and relative.
    pub path: String,
    /// The object holding its bytes, relative to the prefix (`objects/<hash>-<size>`).
    pub object: String,
    /// Its size in bytes.
    pub size: u64,
    /// The xxh3-128 of its bytes, 32 lowercase hex digits.
    pub xxh3_128: String,
}

/// The object name of a file with this checksum and size, relative to the prefix.
pub(crate) fn object_name(xxh3_128: u128, size: u64) -> String {
    format!("objects/{xxh3_128:032x}-{size}")
}

/// The manifest name of `generation`, relative to the prefix. Zero-padded, so the names sort
/// as the numbers do.
pub(crate) fn manifest_name(generation: u64) -> String {
    format!("manifests/{generation:020}.json")
}

/// The generation a manifest's file name stands for (`None`: not a manifest name).
pub(crate) fn generation_of(file_name: &str) -> Option<u64> {
    let digits = file_name.strip_suffix(".json")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

impl Manifest {
    /// The manifest's bytes as published: the JSON line, then its checksum line.
    pub(crate) fn encode(&self) -> Result<Vec<u8>> {
        let body = serde_json::to_string(self).map_err(|e| Error::BadObject {
            location: manifest_name(self.generation),
            reason: format!("could not be encoded: {e}"),
            remedy: "Nothing was published; report this as a bug",
        })?;
        let sum = xxhash_rust::xxh3::xxh3_128(body.as_bytes());
        Ok(format!("{body}\nxxh3-128 {sum:032x}\n").into_bytes())
    }

    /// Read and check a manifest published as `location`: its checksum, its format, that it
    /// is the generation its name says, and that every file's path stays inside a store
    /// directory and names the object its size and checksum call for. A manifest that fails
    /// any of these is refused whole.
    pub(crate) fn decode(location: &str, bytes: &[u8], generation: u64) -> Result<Manifest> {
        let bad = |reason: String| Error::BadObject {
            location: location.to_string(),
            reason,
            remedy: BAD_MANIFEST,
        };
        let text = std::str::from_utf8(bytes).map_err(|_| bad("it is not UTF-8 text".into()))?;
        let mut lines = text.strip_suffix('\n').unwrap_or(text).split('\n');
        let (Some(body), Some(sum_line), None) = (lines.next(), lines.next(), lines.next()) else {
            return Err(bad(
                "it is not two lines (the JSON, then its checksum); it may be truncated".into(),
            ));
        };
        let want = format!(
            "xxh3-128 {:032x}",
            xxhash_rust::xxh3::xxh3_128(body.as_bytes())
        );
        if sum_line != want {
            return Err(bad(format!(
                "its checksum line is `{}`, its body's is `{want}`",
                crate::error::display_id(sum_line)
            )));
        }
        let m: Manifest =
            serde_json::from_str(body).map_err(|e| bad(format!("its JSON is invalid: {e}")))?;
        if m.format != MANIFEST_FORMAT && m.format != MANIFEST_FORMAT_V1 {
            return Err(bad(format!(
                "its format is `{}`; this version reads `{MANIFEST_FORMAT}` and `{MANIFEST_FORMAT_V1}`. Upgrade recostore on this replica",
                crate::error::display_id(&m.format)
            )));
        }
        if m.generation != generation {
            return Err(bad(format!(
                "it says generation {} under the name of generation {generation}",
                m.generation
            )));
        }
        let mut last: Option<&str> = None;
        for f in &m.files {
            if !safe_relative(&f.path) {
                return Err(bad(format!(
                    "file path `{}` is not a plain relative path inside a store directory",
                    crate::error::display_id(&f.path)
                )));
            }
            if last.is_some_and(|l| l >= f.path.as_str()) {
                return Err(bad(format!(
                    "file paths are not in strictly increasing order at `{}`",
                    crate::error::display_id(&f.path)
                )));
            }
            last = Some(&f.path);
            let sum = u128::from_str_radix(&f.xxh3_128, 16)
                .ok()
                .filter(|_| f.xxh3_128.len() == 32);
            match sum {
                Some(sum) if f.object == object_name(sum, f.size) => {}
                _ => {
                    return Err(bad(format!(
                        "file `{}` names object `{}`, which is not the object its size and checksum call for",
                        crate::error::display_id(&f.path),
                        crate::error::display_id(&f.object)
                    )))
                }
            }
        }
        Ok(m)
    }

    /// Whether `file` is a pair file, to be imported rather than placed.
    pub fn is_pairs(&self, file: &ManifestFile) -> bool {
        self.format == MANIFEST_FORMAT
            && file
                .path
                .strip_prefix(crate::pairs::DIR)
                .is_some_and(|rest| rest.starts_with('/'))
    }

    /// Bytes of every file it names.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// A path that, joined to a directory, stays inside it: relative, `/`-separated, no empty,
/// `.` or `..` part, no NUL or backslash. A manifest is input from the network; this is what
/// keeps a hostile one from writing outside the replica's directory.
fn safe_relative(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= 4096
        && !path.starts_with('/')
        && path.split('/').all(|part| {
            !part.is_empty() && part != "." && part != ".." && !part.contains(['\0', '\\'])
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            format: MANIFEST_FORMAT.into(),
            generation: 7,
            leader: "0000abcd".into(),
            published_at_ms: 1,
            segment_generation: 3,
            files: vec![
                ManifestFile {
                    path: "db".into(),
                    object: object_name(5, 10),
                    size: 10,
                    xxh3_128: format!("{:032x}", 5u128),
                },
                ManifestFile {
                    path: "segments/3.seg".into(),
                    object: object_name(6, 11),
                    size: 11,
                    xxh3_128: format!("{:032x}", 6u128),
                },
            ],
        }
    }

    #[test]
    fn a_manifest_reads_back_as_written() {
        let m = sample();
        let bytes = m.encode().unwrap();
        assert_eq!(Manifest::decode("m", &bytes, 7).unwrap(), m);
        assert_eq!(generation_of("00000000000000000007.json"), Some(7));
        assert_eq!(manifest_name(7), "manifests/00000000000000000007.json");
        assert_eq!(generation_of("7.json"), None);
        assert_eq!(generation_of("0000000000000000000x.json"), None);
    }

    #[test]
    fn truncated_altered_or_hostile_manifests_are_refused() {
        let bytes = sample().encode().unwrap();
        for cut in [0, 1, bytes.len() / 2, bytes.len() - 2] {
            assert!(
                Manifest::decode("m", &bytes[..cut], 7).is_err(),
                "cut {cut}"
            );
        }
        let mut flipped = bytes.clone();
        flipped[10] ^= 1;
        assert!(Manifest::decode("m", &flipped, 7).is_err());
        assert!(
            Manifest::decode("m", &bytes, 8).is_err(),
            "another generation's name"
        );
        for path in ["../x", "/etc/passwd", "a//b", "a/./b", "", "a\\..\\b"] {
            let mut m = sample();
            m.files[0].path = path.into();
            let err = Manifest::decode("m", &m.encode().unwrap(), 7).unwrap_err();
            assert!(
                err.to_string().contains("plain relative path"),
                "{path}: {err}"
            );
        }
        let mut m = sample();
        m.files[1].size = 12;
        assert!(Manifest::decode("m", &m.encode().unwrap(), 7).is_err());
        let mut m = sample();
        m.files.swap(0, 1);
        assert!(Manifest::decode("m", &m.encode().unwrap(), 7).is_err());
        let mut m = sample();
        m.format = "recostore-manifest/3".into();
        let err = Manifest::decode("m", &m.encode().unwrap(), 7).unwrap_err();
        assert!(err.to_string().contains("Upgrade"), "{err}");
    }
}
