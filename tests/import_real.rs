//! The MovieLens and Online Retail importers: on the real data sets in `../shared/data/`, and on
//! small malformed files written by the tests.

use std::io::Write;
use std::path::{Path, PathBuf};

use recostore::import::{movielens, retail, ImportOptions, ImportSummary};
use recostore::{Error, Store};

fn data_dir(sub: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data")
        .join(sub);
    assert!(
        dir.exists(),
        "real data set missing: {} does not exist. These tests need the shared data \
         (see ../shared/data/README.md); they fail rather than skip so a missing data set is noticed",
        dir.display()
    );
    dir
}

fn lenient() -> ImportOptions {
    ImportOptions::default()
}

fn strict() -> ImportOptions {
    ImportOptions {
        strict: true,
        progress: None,
    }
}

fn tag_weight(tags: &[(String, f32)], name: &str) -> Option<f32> {
    tags.iter().find(|(n, _)| n == name).map(|&(_, w)| w)
}

fn bad_lines(s: &ImportSummary) -> Vec<(&str, u64)> {
    s.bad_rows
        .iter()
        .map(|b| (b.file.as_str(), b.line))
        .collect()
}

#[test]
fn movielens_real_data() {
    let data = data_dir("movielens-small");
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let s = movielens::import(&store, &data, &lenient()).unwrap();
    eprintln!("movielens: {s:?}");
    assert_eq!(s.items, 9742);
    assert_eq!(s.users, 610);
    assert!(s.events > 100_000, "events {}", s.events);
    assert_eq!(s.skipped, 0, "bad rows: {:?}", s.bad_rows);
    let stats = store.stats();
    assert_eq!((stats.items, stats.users), (9742, 610));
    assert_eq!(stats.delta_records, 0, "the import ends with a rebuild");

    let toy = store.get_item("1").expect("Toy Story is item 1");
    assert_eq!(toy.title, "Toy Story (1995)");
    assert_eq!(toy.category, "adventure");
    assert_eq!(tag_weight(&toy.tags, "genre:animation"), Some(1.0));
    assert_eq!(tag_weight(&toy.tags, "decade:1990s"), Some(0.5));
    assert!(
        tag_weight(&toy.tags, "tag:pixar").is_some_and(|w| w > 1.0),
        "{:?}",
        toy.tags
    );

    let user = store.get_user("1").expect("user 1 rated movies");
    assert!(!user.tags.is_empty() && user.tags.len() <= 64);
    let max = user.tags.iter().map(|t| t.1).fold(0.0, f32::max);
    assert!(
        (max - 1.0).abs() < 1e-6,
        "user tags scaled to max 1, got {max}"
    );
    assert_eq!(user.recent_items.len(), 50);

    drop(store);
    let store = Store::open(tmp.path()).unwrap();
    let again = store.stats();
    assert_eq!(
        (again.items, again.users, again.tags),
        (stats.items, stats.users, stats.tags)
    );
    assert_eq!(store.get_item("1").unwrap().tags.len(), toy.tags.len());
}

#[test]
fn retail_real_data() {
    let file = data_dir("online-retail").join("online-retail.csv.gz");
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let s = retail::import(&store, &file, &lenient()).unwrap();
    eprintln!("retail: {s:?}");
    // The README's numbers after dropping cancellations, quantity <= 0 and missing customers.
    // The 3,665 items include the non-product codes POST, DOT, M, C2, PADS and BANK CHARGES.
    assert_eq!(s.users, 4339);
    assert_eq!(s.items, 3665);
    assert_eq!(s.events, 397_924);
    assert_eq!(s.skipped, 0, "bad rows: {:?}", s.bad_rows);
    assert_eq!(s.dropped, 541_909 - 397_924);
    let stats = store.stats();
    assert_eq!((stats.items, stats.users), (3665, 4339));

    let heart = store.get_item("85123A").expect("the best seller");
    assert_eq!(heart.title, "WHITE HANGING HEART T-LIGHT HOLDER");
    assert_eq!(heart.category, "holder");
    assert_eq!(
        heart.created_at, 1_291_191_960,
        "first sold 2010-12-01 08:26"
    );
    for t in ["word:heart", "word:holder", "category:holder", "price:2-5"] {
        assert_eq!(
            tag_weight(&heart.tags, t),
            Some(1.0),
            "{t} in {:?}",
            heart.tags
        );
    }
    let user = store.get_user("17850").expect("customer ids lose their .0");
    assert_eq!(tag_weight(&user.tags, "country:united-kingdom"), Some(1.0));
    assert!(user.tags.len() <= 64);
    assert!(!user.recent_items.is_empty() && user.recent_items.len() <= 50);

    drop(store);
    let store = Store::open(tmp.path()).unwrap();
    let again = store.stats();
    assert_eq!(
        (again.items, again.users, again.tags),
        (stats.items, stats.users, stats.tags)
    );
}

const MOVIES: &str = "movieId,title,genres
1,Toy Story (1995),Adventure|Animation
2,Jumanji (1995)
,Nameless (2000),Drama
3,\"Heat, the movie (1995)\",Action|Crime
";

const RATINGS: &str = "userId,movieId,rating,timestamp
1,1,4.5,964982703
1,3,five,964982704
2,3,3.0,964982705
2,999,4.0,964982706
3,1,4.0
,1,4.0,964982707
";

const TAGS: &str = "userId,movieId,tag,timestamp
1,1,  Pixar  ,1
2,1,pixar,2
2,3,\"  \",3
2,999,x,4
";

fn movielens_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("movies.csv"), MOVIES).unwrap();
    std::fs::write(dir.path().join("ratings.csv"), RATINGS).unwrap();
    std::fs::write(dir.path().join("tags.csv"), TAGS).unwrap();
    dir
}

#[test]
fn movielens_malformed_rows_are_counted_and_skipped() {
    let data = movielens_dir();
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let s = movielens::import(&store, data.path(), &lenient()).unwrap();
    assert_eq!(s.skipped, 6, "{:?}", s.bad_rows);
    assert_eq!(
        bad_lines(&s),
        [
            ("movies.csv", 3),
            ("movies.csv", 4),
            ("ratings.csv", 3),
            ("ratings.csv", 6),
            ("ratings.csv", 7),
            ("tags.csv", 4)
        ]
    );
    assert!(
        s.bad_rows[0].reason.contains("columns"),
        "{}",
        s.bad_rows[0].reason
    );
    assert!(
        s.bad_rows[2].reason.contains("five"),
        "{}",
        s.bad_rows[2].reason
    );
    assert_eq!(s.dropped, 2, "rating and tag of the unknown movie 999");
    assert_eq!(
        (s.items, s.users, s.events),
        (2, 2, 4),
        "2 ratings and 2 tag applications"
    );

    let toy = store.get_item("1").unwrap();
    assert_eq!(tag_weight(&toy.tags, "genre:animation"), Some(1.0));
    assert_eq!(tag_weight(&toy.tags, "decade:1990s"), Some(0.5));
    let pixar = tag_weight(&toy.tags, "tag:pixar").unwrap();
    assert!(
        (pixar - (1.0 + 2f32.ln())).abs() < 1e-5,
        "two applications: {pixar}"
    );
    assert_eq!(store.get_item("3").unwrap().title, "Heat, the movie (1995)");
    assert!(store.get_item("2").is_none());

    let u1 = store.get_user("1").unwrap();
    assert_eq!(tag_weight(&u1.tags, "genre:adventure"), Some(1.0));
    assert_eq!(tag_weight(&u1.tags, "decade:1990s"), Some(0.5));
    assert_eq!(u1.recent_items, ["1"]);
    let u2 = store.get_user("2").unwrap();
    assert!(u2.tags.is_empty(), "a 3.0 rating says nothing about taste");
    assert_eq!(u2.recent_items, ["3"]);
}

#[test]
fn movielens_strict_stops_at_the_first_bad_row_and_stores_nothing() {
    let data = movielens_dir();
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    match movielens::import(&store, data.path(), &strict()) {
        Err(Error::BadInput {
            source_name, line, ..
        }) => assert_eq!((source_name.as_str(), line), ("movies.csv", 3)),
        other => panic!("expected BadInput, got {other:?}"),
    }
    assert_eq!(store.stats().items, 0);
    assert_eq!(store.stats().users, 0);

    // A bad row in a later file also stops before anything is written.
    std::fs::write(
        data.path().join("movies.csv"),
        "movieId,title,genres\n1,Toy Story (1995),Animation\n",
    )
    .unwrap();
    match movielens::import(&store, data.path(), &strict()) {
        Err(Error::BadInput {
            source_name, line, ..
        }) => assert_eq!((source_name.as_str(), line), ("ratings.csv", 3)),
        other => panic!("expected BadInput, got {other:?}"),
    }
    assert_eq!(store.stats().items, 0);
}

#[test]
fn movielens_missing_file_and_wrong_header_are_errors() {
    let data = movielens_dir();
    let store_dir = tempfile::tempdir().unwrap();
    let store = Store::open(store_dir.path()).unwrap();
    std::fs::write(
        data.path().join("tags.csv"),
        "movieId,userId,tag,timestamp\n",
    )
    .unwrap();
    match movielens::import(&store, data.path(), &lenient()) {
        Err(Error::BadInput {
            source_name,
            line: 1,
            ..
        }) => assert_eq!(source_name, "tags.csv"),
        other => panic!("expected a header error, got {other:?}"),
    }
    std::fs::remove_file(data.path().join("tags.csv")).unwrap();
    match movielens::import(&store, data.path(), &lenient()) {
        Err(Error::Io { path, .. }) => assert!(path.ends_with("tags.csv")),
        other => panic!("expected an Io error, got {other:?}"),
    }
    assert_eq!(store.stats().items, 0);
}

/// Line 13 has a Latin-1 byte (0xE9, "é") that is not valid UTF-8.
fn retail_bytes() -> Vec<u8> {
    let mut b = b"InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country
536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom
536365,71053,WHITE METAL LANTERN,6,12/1/2010 8:26,3.39,17850,United Kingdom
536366,22633,HAND WARMER UNION JACK,lots,2010-12-01 08:28:00,1.85,17850.0,United Kingdom
C536379,D,Discount,-1,2010-12-01 09:41:00,27.50,14527.0,United Kingdom
536367,84879,ASSORTED COLOUR BIRD ORNAMENT,32,2010-12-01 08:34:00,1.69,,United Kingdom
536368,22960,JAM MAKING SET WITH JARS,6,not a date,4.25,13047.0,United Kingdom
536369,,NO CODE,1,2010-12-01 08:35:00,1.00,13047.0,United Kingdom
536370,22728,ALARM CLOCK BAKELIKE PINK,24,2010-12-01 08:45:00,-3.75,12583.0,France
536371,22728,ALARM CLOCK BAKELIKE PINK,24,2010-12-01 08:45:00,3.75,12583.0,France,extra
536372,22727,ALARM CLOCK BAKELIKE RED ,24,2010-12-01 08:45:00,3.75,12583.0,France
536373,85123A,WHITE HANGING HEART T-LIGHT HOLDER,2,2010-12-02 10:00:00,2.95,12583.0,France
"
    .to_vec();
    b.extend_from_slice(b"536374,21000,CAF\xe9 MUG,1,2010-12-03 10:00:00,0.85,12583,France\n");
    b
}

fn check_retail_summary(s: &ImportSummary, file: &str) {
    assert_eq!(s.skipped, 5, "{:?}", s.bad_rows);
    let want: Vec<(&str, u64)> = [4, 7, 8, 9, 10].into_iter().map(|l| (file, l)).collect();
    assert_eq!(bad_lines(s), want);
    assert_eq!(
        s.dropped, 2,
        "one cancellation, one line without a customer"
    );
    assert_eq!((s.items, s.users, s.events), (4, 2, 5));
}

fn check_retail_store(store: &Store) {
    let heart = store.get_item("85123A").unwrap();
    assert_eq!(heart.price, 2.75, "median of 2.55 and 2.95");
    assert_eq!(heart.category, "holder");
    assert_eq!(heart.created_at, 1_291_191_960);
    assert_eq!(tag_weight(&heart.tags, "price:2-5"), Some(1.0));
    assert_eq!(tag_weight(&heart.tags, "category:holder"), Some(1.0));
    assert_eq!(
        store.get_item("22727").unwrap().title,
        "ALARM CLOCK BAKELIKE RED"
    );
    let cafe = store.get_item("21000").unwrap();
    assert_eq!(
        cafe.title, "CAF\u{fffd} MUG",
        "invalid UTF-8 is replaced, not fatal"
    );
    assert_eq!(tag_weight(&cafe.tags, "price:0-1"), Some(1.0));

    let uk = store.get_user("17850").unwrap();
    assert_eq!(tag_weight(&uk.tags, "country:united-kingdom"), Some(1.0));
    assert_eq!(uk.recent_items, ["85123A", "71053"]);
    let fr = store.get_user("12583").unwrap();
    assert_eq!(tag_weight(&fr.tags, "country:france"), Some(1.0));
    assert_eq!(fr.recent_items, ["22727", "85123A", "21000"]);
    let max = fr
        .tags
        .iter()
        .filter(|t| !t.0.starts_with("country:"))
        .map(|t| t.1)
        .fold(0.0, f32::max);
    assert!((max - 1.0).abs() < 1e-6);
}

#[test]
fn retail_malformed_rows_plain_csv() {
    let data = tempfile::tempdir().unwrap();
    let file = data.path().join("tiny.csv");
    std::fs::write(&file, retail_bytes()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let s = retail::import(&store, &file, &lenient()).unwrap();
    check_retail_summary(&s, "tiny.csv");
    check_retail_store(&store);
}

#[test]
fn retail_malformed_rows_gzip() {
    let data = tempfile::tempdir().unwrap();
    // Detected by the magic bytes, not by the name.
    let file = data.path().join("tiny-compressed.csv");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&retail_bytes()).unwrap();
    std::fs::write(&file, gz.finish().unwrap()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    // With progress reports: every compressed byte of the file is reported, and the end.
    let reports = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = reports.clone();
    let opts = ImportOptions {
        strict: false,
        progress: Some(recostore::Progress::new(move |u| {
            log.lock()
                .unwrap()
                .push((u.stage.to_string(), u.done, u.total, u.finished))
        })),
    };
    let s = retail::import(&store, &file, &opts).unwrap();
    check_retail_summary(&s, "tiny-compressed.csv");
    check_retail_store(&store);
    let reports = reports.lock().unwrap();
    let len = std::fs::metadata(&file).unwrap().len();
    assert_eq!(
        reports.last(),
        Some(&("tiny-compressed.csv".to_string(), len, len, true)),
        "{reports:?}"
    );
}

#[test]
fn retail_strict_stops_at_the_first_bad_row_and_stores_nothing() {
    let data = tempfile::tempdir().unwrap();
    let plain = data.path().join("tiny.csv");
    std::fs::write(&plain, retail_bytes()).unwrap();
    let gzipped = data.path().join("tiny.csv.gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&retail_bytes()).unwrap();
    std::fs::write(&gzipped, gz.finish().unwrap()).unwrap();

    for file in [plain, gzipped] {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        match retail::import(&store, &file, &strict()) {
            Err(Error::BadInput { line, reason, .. }) => assert_eq!(line, 4, "{reason}"),
            other => panic!("expected BadInput, got {other:?}"),
        }
        assert_eq!(store.stats().items, 0);
        assert_eq!(store.stats().users, 0);
    }
}

#[test]
fn retail_truncated_gzip_is_an_io_error() {
    let data = tempfile::tempdir().unwrap();
    let file = data.path().join("cut.csv.gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&retail_bytes().repeat(50)).unwrap();
    let bytes = gz.finish().unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    match retail::import(&store, &file, &lenient()) {
        Err(Error::Io { path, .. }) => assert_eq!(path, file),
        other => panic!("expected an Io error, got {other:?}"),
    }
    assert_eq!(store.stats().items, 0);
}

/// Running `import retail` or `import movielens` again on the same store changes nothing: no
/// event is recorded twice (issue 22), the records are the same, and the second summary says so.
#[test]
fn importing_the_same_files_again_changes_nothing() {
    let data = tempfile::tempdir().unwrap();
    let file = data.path().join("tiny.csv");
    std::fs::write(&file, retail_bytes()).unwrap();
    let ml = movielens_dir();
    for kind in ["retail", "movielens"] {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let run = || match kind {
            "retail" => retail::import(&store, &file, &lenient()).unwrap(),
            _ => movielens::import(&store, ml.path(), &lenient()).unwrap(),
        };
        let first = run();
        let before = store.stats();
        assert!(first.recorded > 0, "{kind}: {first:?}");
        let second = run();
        let after = store.stats();
        assert_eq!(second.recorded, 0, "{kind}: {second:?}");
        assert_eq!(second.already_stored, first.recorded, "{kind}");
        assert_eq!(
            (after.items, after.users, after.tags, after.events),
            (before.items, before.users, before.tags, before.events),
            "{kind}"
        );
    }
}
