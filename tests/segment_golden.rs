//! The segment's bytes, pinned. A small segment built from fixed records must serialise to
//! exactly the checked-in `tests/fixtures/segment-v<format>-<schema hash>.seg`. So the archived
//! types cannot change while `FORMAT_VERSION` and `SCHEMA` stay the same (a file of the old
//! layout would then be misread instead of refused), and every checked-in fixture of the
//! current version still opens.
//!
//! After a deliberate change of the archived types: bump `FORMAT_VERSION` or edit `SCHEMA`,
//! run `RECOSTORE_WRITE_FIXTURES=1 cargo test --test segment_golden`, and check in the new
//! fixture beside the old ones (an older fixture must then be refused, which this test checks).

use std::path::{Path, PathBuf};

use recostore::internals::codec::{StoredItem, StoredUser};
use recostore::internals::segment::format::{schema_hash, FORMAT_VERSION};
use recostore::internals::segment::{Segment, SegmentBuilder};
use recostore::{Error, SegmentVerify};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn current_name() -> String {
    format!("segment-v{FORMAT_VERSION}-{:016x}.seg", schema_hash())
}

/// Three items (one deleted), two users, four tags: every column non-empty.
fn build(dir: &Path) -> Vec<u8> {
    let mut b = SegmentBuilder::new();
    for (id, name) in ["colour:red", "colour:blue", "category:mugs", "tier:prime"]
        .iter()
        .enumerate()
    {
        b.push_tag(id as u32, name);
    }
    let item = |name: &str, tags: Vec<(u32, f32)>, price: f32| StoredItem {
        name: name.into(),
        tags,
        title: format!("{name} title"),
        category: "kitchen/mugs".into(),
        price,
        stock: 3,
        members_only: name == "mug-blue",
        created_at: 1_700_000_000,
    };
    b.push_item(0, Some(&item("mug-red", vec![(0, 1.0), (2, 0.5)], 12.0)));
    b.push_item(1, None);
    b.push_item(2, Some(&item("mug-blue", vec![(1, 0.8), (2, 0.5)], 9.5)));
    let user = |name: &str, tags: Vec<(u32, f32)>, recent: Vec<u32>| StoredUser {
        name: name.into(),
        tags,
        recent,
    };
    b.push_user(0, Some(&user("u1", vec![(0, 2.0), (3, 1.0)], vec![0, 2])));
    b.push_user(1, Some(&user("u2", vec![(1, 1.0)], vec![])));
    let data = b.finish(7, 42, 1_700_000_100);
    let path =
        recostore::internals::segment::file::write(dir, &data, 0x5eed_0001).expect("write segment");
    std::fs::read(path).expect("read segment back")
}

#[test]
fn the_archived_layout_cannot_change_without_a_version_bump() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let bytes = build(tmp.path());
    let fixture = fixtures().join(current_name());
    if std::env::var_os("RECOSTORE_WRITE_FIXTURES").is_some() && !fixture.exists() {
        std::fs::write(&fixture, &bytes).expect("write fixture");
    }
    let pinned = std::fs::read(&fixture).unwrap_or_else(|_| {
        panic!(
            "no fixture {} for segment format {FORMAT_VERSION} with this SCHEMA: if the archived \
             types changed on purpose, write it (see this file's header) and check it in",
            fixture.display()
        )
    });
    assert!(
        bytes == pinned,
        "the segment bytes differ from {} although FORMAT_VERSION ({FORMAT_VERSION}) and SCHEMA \
         are unchanged: the archived types changed. Bump FORMAT_VERSION or edit SCHEMA with them",
        fixture.display()
    );
}

#[test]
fn fixtures_of_this_version_open_and_older_ones_are_refused() {
    let mut seen = 0;
    for e in std::fs::read_dir(fixtures()).expect("fixtures dir") {
        let path = e.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if !(name.starts_with("segment-v") && name.ends_with(".seg")) {
            continue;
        }
        seen += 1;
        let opened = Segment::open(&path, SegmentVerify::Checksum);
        if name == current_name() {
            let seg = opened.unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(seg.generation(), 7);
            assert_eq!(seg.store_tag(), 0x5eed_0001);
        } else {
            assert!(
                matches!(opened, Err(Error::CorruptSegment { .. })),
                "{name}: a fixture of another format or schema must be refused, not read"
            );
        }
    }
    assert!(seen >= 1, "no segment fixtures found");
}
