//! Backups and exports under attack: a kill at any moment leaves either a whole backup or none
//! at the target (and a leftover that refuses to open), racing backups to one path cannot mix,
//! a path inside the live store is refused however it is spelled, and an export never writes
//! through a planted symlink.

use std::path::Path;
use std::time::{Duration, Instant};

mod common;

use rand::{Rng, SeedableRng};
use recostore::{Error, Event, Item, Store, User};

/// A store big enough that a backup takes a while: 3,000 items, 300 users, 30,000 events.
fn source(dir: &Path) -> (usize, usize, u64) {
    let store = Store::open(dir).expect("open");
    let items: Vec<Item> = (0..3_000)
        .map(|i| {
            Item::new(
                format!("item-{i}"),
                [
                    (format!("t:{}", i % 97), 1.0),
                    (format!("c:{}", i % 13), 0.5),
                ],
            )
            .title(format!("a title long enough to take some room, number {i}"))
        })
        .collect();
    store.upsert_items(&items).expect("items");
    let users: Vec<User> = (0..300)
        .map(|u| User::new(format!("user-{u}"), [(format!("t:{}", u % 97), 1.0)]))
        .collect();
    store.upsert_users(&users).expect("users");
    let events: Vec<Event> = (0..30_000u64)
        .map(|n| {
            Event::view(
                format!("user-{}", n % 300),
                format!("item-{}", n * 7 % 3_000),
                1_000 + n,
            )
        })
        .collect();
    for chunk in events.chunks(5_000) {
        store.record_events(chunk).expect("events");
    }
    store.rebuild().expect("rebuild");
    let s = store.stats();
    (s.items, s.users, s.events)
}

/// Child entry point; does nothing unless the parent set `RECOSTORE_BACKUP_SRC`.
#[test]
#[ignore = "entry point of the child process of `a_backup_killed_at_any_moment_is_whole_or_absent`"]
fn child_backer() {
    let (Ok(src), Ok(out)) = (
        std::env::var("RECOSTORE_BACKUP_SRC"),
        std::env::var("RECOSTORE_BACKUP_OUT"),
    ) else {
        return;
    };
    let store = Store::open(&src).expect("child opens the store");
    for i in 0.. {
        store
            .backup(Path::new(&out).join(format!("b{i}")))
            .expect("backup");
        println!("ack {i}");
    }
}

#[test]
fn a_backup_killed_at_any_moment_is_whole_or_absent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("store");
    let want = source(&src);
    let mut rng = rand::rngs::StdRng::seed_from_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(7, |d| d.as_nanos() as u64),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let (mut whole, mut leftovers) = (0, 0);
    let mut round = 0;
    while Instant::now() < deadline || round < 4 {
        let out = dir.path().join(format!("round{round}"));
        std::fs::create_dir_all(&out).expect("out");
        let envs = [
            ("RECOSTORE_BACKUP_SRC", src.display().to_string()),
            ("RECOSTORE_BACKUP_OUT", out.display().to_string()),
        ];
        let wait = Duration::from_millis(rng.gen_range(50..1_500));
        let acked = common::run_child_and_kill("child_backer", &envs, wait);
        for entry in std::fs::read_dir(&out).expect("list") {
            let path = entry.expect("entry").path();
            let name = path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .to_string();
            let empty = std::fs::read_dir(&path).expect("dir").next().is_none();
            if empty {
                // Killed between creating the directory and marking it: it holds nothing.
                assert!(name.contains(".partial-"), "round {round}: {name} is empty");
                leftovers += 1;
                continue;
            }
            match Store::open(&path) {
                Ok(copy) => {
                    // A finished backup, or one killed after it was complete and unmarked but
                    // before the rename: whole either way.
                    let s = copy.stats();
                    assert_eq!((s.items, s.users, s.events), want, "round {round}: {name}");
                    whole += 1;
                }
                Err(Error::IncompleteBackup { .. }) => {
                    assert!(name.contains(".partial-"), "round {round}: {name}");
                    leftovers += 1;
                }
                Err(e) => panic!("round {round}: {name}: {e}"),
            }
        }
        for i in acked {
            assert!(
                out.join(format!("b{i}")).exists(),
                "round {round}: acked b{i} missing"
            );
        }
        round += 1;
    }
    eprintln!("{round} rounds: {whole} whole backups, {leftovers} interrupted leftovers");
    assert!(
        whole > 0,
        "no backup finished in any round; the kills came too early"
    );
}

#[test]
fn racing_backups_to_one_path_give_one_whole_backup() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("store");
    let want = source(&src);
    let store = Store::open(&src).expect("open");
    let to = dir.path().join("backup");
    let results: Vec<Result<_, Error>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..6).map(|_| s.spawn(|| store.backup(&to))).collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 1, "{results:?}");
    for e in results.iter().filter_map(|r| r.as_ref().err()) {
        let m = e.to_string();
        assert!(
            m.contains("not empty") || m.contains("reached this path first"),
            "{m}"
        );
    }
    drop(store);
    let copy = Store::open(&to).expect("the winner opens");
    let s = copy.stats();
    assert_eq!((s.items, s.users, s.events), want);
    // Nothing else was left beside it.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().to_string())
        .collect();
    assert!(names.iter().all(|n| !n.contains(".partial-")), "{names:?}");
}

#[test]
fn a_backup_into_the_live_store_is_refused_however_spelled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("store");
    source(&src);
    let store = Store::open(&src).expect("open");
    std::fs::create_dir_all(dir.path().join("other")).expect("other");
    std::os::unix::fs::symlink(&src, dir.path().join("link")).expect("symlink");
    for to in [
        src.join("copy"),
        src.join("db").join("blobs"),
        dir.path().join("other/../store/copy"),
        dir.path().join("link/copy"),
        dir.path().join("link"),
        dir.path().to_path_buf(),
    ] {
        let e = store.backup(&to).expect_err("refused");
        let m = e.to_string();
        assert!(
            m.contains("inside the live store") || m.contains("not empty"),
            "{}: {m}",
            to.display()
        );
    }
    assert_eq!(store.stats().items, 3_000, "the store is untouched");
}

#[test]
fn export_never_writes_through_a_planted_temporary_symlink() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("store");
    source(&src);
    let store = Store::open(&src).expect("open");
    let out = dir.path().join("export");
    std::fs::create_dir_all(&out).expect("out");
    let victim = dir.path().join("victim.txt");
    std::fs::write(&victim, "precious").expect("victim");
    for name in ["items.jsonl", "users.jsonl", "events.jsonl"] {
        for tmp in [
            format!(".{name}.tmp"),
            format!(".{name}.{}.tmp", std::process::id()),
        ] {
            std::os::unix::fs::symlink(&victim, out.join(tmp)).expect("plant");
        }
    }
    store.export_jsonl(&out).expect("export");
    assert_eq!(
        std::fs::read_to_string(&victim).expect("victim"),
        "precious"
    );
    let items = std::fs::read_to_string(out.join("items.jsonl")).expect("items");
    assert_eq!(items.lines().count(), 3_000);
}
