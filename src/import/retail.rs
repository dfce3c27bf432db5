//! Import the UCI "Online Retail" invoice lines (`.csv`, or `.csv.gz` detected by its magic
//! bytes) with the columns `InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,
//! CustomerID,Country`.
//!
//! The data set has no tags, so they are derived from what a shop would have at hand:
//!
//! # Items (stock codes)
//!
//! * id: the `StockCode`; title: its most frequent `Description` (the same code is sometimes
//!   described in slightly different words); price: the median `UnitPrice` over its lines, which
//!   ignores the odd discount or bulk price; `created_at`: when it was first sold; stock 0.
//! * `word:<w>`, weight 1.0, for every word of the title: lowercase, letters only, at least three
//!   letters, without a few filler words ("and", "the", "with", "set", ...). Descriptions such
//!   as `WHITE HANGING HEART T-LIGHT HOLDER` are the only description of a product there is, and
//!   their words are what similar products share.
//! * `price:<band>`, weight 1.0, with bands `0-1`, `1-2`, `2-5`, `5-10`, `10-20`, `20+`, so that
//!   similar items and users' budgets line up.
//! * category: the last word of the cleaned title (in these descriptions the noun comes last:
//!   "... holder", "... bottle"), also stored as the tag `category:<word>`, weight 1.0.
//!
//! Non-product codes that customers were charged for (`POST`, `DOT`, `M`, `C2`, `PADS`,
//! `BANK CHARGES`) are kept as items: they are real lines of real invoices, and the published
//! count of 3,665 items includes them.
//!
//! # Users (customers)
//!
//! * id: the `CustomerID`, with a trailing `.0` removed (`17850.0` -> `17850`).
//! * `country:<country>` (lowercase, spaces as `-`), weight 1.0, from the country on most of
//!   the customer's lines.
//! * The word and price-band tags of every item bought, each line adding `ln(1 + quantity)` so
//!   that buying 100 of something says more than buying 1 but not a hundred times more; scaled
//!   so the largest is 1.0, the 63 heaviest kept (64 with the country).
//! * recent_items: the last 50 distinct items bought, by invoice time, newest last.
//!
//! # Dropped and bad rows
//!
//! Cancellations (`InvoiceNo` starting with `C`), lines with quantity <= 0 and lines without a
//! customer are dropped by policy and counted in `dropped`; the policy is applied before the
//! remaining fields are checked, so the data set's "Adjust bad debt" lines (negative price, no
//! customer) count as dropped. A wrong column count, an unparsable quantity, price or date, a
//! quantity over [`MAX_QUANTITY`], a date past this machine's clock (by more than
//! `Config::future_tolerance_secs`), an empty stock code or a negative price is a bad row
//! (`skipped`, or an error when strict).
//! Dates are `YYYY-MM-DD HH:MM[:SS]` or `M/D/YYYY H:MM[:SS]` and are read as UTC. Text is decoded
//! leniently, so a Latin-1 file imports (odd characters become U+FFFD) instead of failing.
//! `events` counts the kept invoice lines.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::time::Instant;

use flate2::read::MultiGzDecoder;

use super::common::{
    check_header, check_id, clean_tags, csv_reader, display_name, field, last_distinct, line_of,
    metered, open_file, read_row, record_events, scale_top, show, truncate_utf8, write_records,
    wrong_columns,
};
use super::report::{ImportOptions, ImportSummary};
use crate::error::{Error, Result};
use crate::event::MAX_QUANTITY;
use crate::model::{Item, Tag, User, MAX_TEXT_BYTES};
use crate::{Event, Store};

const HEADER: &[&str] = &[
    "InvoiceNo",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "UnitPrice",
    "CustomerID",
    "Country",
];

/// Words that say nothing about a product.
const STOP_WORDS: &[&str] = &[
    "and", "the", "with", "for", "set", "of", "from", "pack", "assorted",
];

/// Tags kept per user, the country included.
const USER_TAGS: usize = 64;
/// Recent items kept per user.
const RECENT: usize = 50;

#[derive(Default)]
struct ItemAcc {
    id: String,
    /// Distinct descriptions with their line counts, in order of first appearance.
    descriptions: Vec<(String, u32)>,
    prices: Vec<f64>,
    first_seen: u64,
}

#[derive(Default)]
struct CustomerAcc {
    id: String,
    /// Distinct countries with their line counts, in order of first appearance.
    countries: Vec<(String, u32)>,
}

struct Line {
    /// The invoice: one basket.
    invoice: String,
    /// Unit price on this line.
    price: f64,
    item: u32,
    customer: u32,
    time: u64,
    quantity: f64,
}

/// Import the Online Retail invoice lines in `file` (plain or gzip-compressed CSV) into `store`:
/// stock codes become items, customers become users (see the module docs for the tags).
///
/// Everything is parsed and checked first and only then written, in batches, so with
/// [`ImportOptions::strict`] the first bad row returns [`Error::BadInput`] and nothing is stored.
/// Ends with [`Store::rebuild`], so the store is compact when this returns.
pub fn import(store: &Store, file: &Path, opts: &ImportOptions) -> Result<ImportSummary> {
    let latest = crate::event::latest_event_time(store.config().future_tolerance_secs);
    let start = Instant::now();
    let mut summary = ImportSummary::default();
    let name = display_name(file);
    let (handle, len) = open_file(file)?;
    let (reader, meter) = metered(opts, &name, len, handle);
    let mut buffered = BufReader::with_capacity(1 << 16, reader);
    let head = buffered
        .fill_buf()
        .map_err(|e| Error::io("reading", file, e))?;
    let reader: Box<dyn Read> = if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(MultiGzDecoder::new(buffered))
    } else {
        Box::new(buffered)
    };
    let mut rdr = csv_reader(reader);
    check_header(&mut rdr, file, &name, HEADER)?;

    let mut items: Vec<ItemAcc> = Vec::new();
    let mut item_index: HashMap<String, u32> = HashMap::new();
    let mut customers: Vec<CustomerAcc> = Vec::new();
    let mut customer_index: HashMap<String, u32> = HashMap::new();
    let mut lines: Vec<Line> = Vec::new();
    let mut rec = csv::ByteRecord::new();
    while read_row(&mut rdr, &mut rec, file)? {
        let line = line_of(&rec);
        if rec.len() != HEADER.len() {
            summary.bad_row(opts, &name, line, wrong_columns(HEADER.len(), rec.len()))?;
            continue;
        }
        let quantity = match parse_quantity(&field(&rec, 3)) {
            Ok(q) => q,
            Err(reason) => {
                summary.bad_row(opts, &name, line, reason)?;
                continue;
            }
        };
        let invoice = field(&rec, 0);
        let customer_field = field(&rec, 6);
        let customer = normalise_customer(&customer_field);
        if invoice.starts_with(['C', 'c']) || quantity <= 0.0 || customer.is_empty() {
            summary.dropped += 1;
            continue;
        }
        let stock_code = field(&rec, 1);
        let checked = check_id("StockCode", &stock_code)
            .and_then(|()| check_id("CustomerID", customer))
            .and_then(|()| parse_price(&field(&rec, 5)))
            .and_then(|p| {
                parse_datetime(&field(&rec, 4))
                    .and_then(|t| super::common::not_future(t, latest))
                    .map(|t| (p, t))
            });
        let (price, time) = match checked {
            Ok(v) => v,
            Err(reason) => {
                summary.bad_row(opts, &name, line, reason)?;
                continue;
            }
        };

        let item = match item_index.get(stock_code.as_ref()) {
            Some(&i) => i,
            None => {
                let i = crate::narrow::u32_from(items.len());
                item_index.insert(stock_code.to_string(), i);
                items.push(ItemAcc {
                    id: stock_code.to_string(),
                    first_seen: time,
                    ..ItemAcc::default()
                });
                i
            }
        };
        let acc = &mut items[item as usize];
        acc.prices.push(price);
        acc.first_seen = acc.first_seen.min(time);
        count(&mut acc.descriptions, &field(&rec, 2));

        let cust = match customer_index.get(customer) {
            Some(&c) => c,
            None => {
                let c = crate::narrow::u32_from(customers.len());
                customer_index.insert(customer.to_string(), c);
                customers.push(CustomerAcc {
                    id: customer.to_string(),
                    ..CustomerAcc::default()
                });
                c
            }
        };
        count(
            &mut customers[cust as usize].countries,
            &country_slug(&field(&rec, 7)),
        );

        lines.push(Line {
            invoice: invoice.to_string(),
            price,
            item,
            customer: cust,
            time,
            quantity,
        });
        summary.events += 1;
    }
    meter.finish();

    let max_tags = store.config().max_tags_per_record;
    let derived: Vec<DerivedItem> = items
        .into_iter()
        .map(|a| derive_item(a, max_tags))
        .collect();
    let users = derive_users(&customers, &derived, &lines, max_tags);
    let items: Vec<Item> = derived.into_iter().map(|d| d.item).collect();
    write_records(store, &items, &users, &mut summary)?;
    let events: Vec<Event> = lines
        .iter()
        .map(|l| {
            #[expect(
                clippy::cast_possible_truncation,
                reason = "a whole number in 1..=MAX_QUANTITY (parse_quantity refused more)"
            )]
            let qty = l.quantity as u32;
            Event::purchase(
                customers[l.customer as usize].id.clone(),
                items[l.item as usize].id.clone(),
                // Within 1..=MAX_QUANTITY: parse_quantity refused more, the policy dropped <= 0.
                qty,
                crate::narrow::f32_from(l.price),
                l.time,
            )
            .session(l.invoice.clone())
        })
        .collect();
    record_events(store, events, &mut summary)?;
    summary.seconds = start.elapsed().as_secs_f64();
    Ok(summary)
}

struct DerivedItem {
    item: Item,
    /// The tags a purchase passes on to the buyer: words and the price band.
    user_tags: Vec<String>,
}

fn derive_item(acc: ItemAcc, max_tags: usize) -> DerivedItem {
    let title = most_frequent(&acc.descriptions).unwrap_or("").to_string();
    let price = crate::narrow::f32_from(median(acc.prices));
    let words = description_words(&title);
    let category = words.last().cloned().unwrap_or_default();
    let mut tags: Vec<Tag> = words.iter().map(|w| (format!("word:{w}"), 1.0)).collect();
    tags.push((crate::model::price_band(price).to_string(), 1.0));
    if !category.is_empty() {
        tags.push((format!("category:{category}"), 1.0));
    }
    let tags = clean_tags(tags, max_tags);
    // The buyer inherits the item's (possibly cut) word and price tags, not its category.
    let user_tags = tags
        .iter()
        .filter(|(n, _)| !n.starts_with("category:"))
        .map(|(n, _)| n.clone())
        .collect();
    DerivedItem {
        item: Item {
            id: acc.id,
            tags,
            title: truncate_utf8(title, MAX_TEXT_BYTES),
            category: truncate_utf8(category, MAX_TEXT_BYTES),
            price,
            stock: 0,
            members_only: false,
            created_at: acc.first_seen,
        },
        user_tags,
    }
}

fn derive_users(
    customers: &[CustomerAcc],
    items: &[DerivedItem],
    lines: &[Line],
    max_tags: usize,
) -> Vec<User> {
    let mut per_customer: Vec<Vec<&Line>> = customers.iter().map(|_| Vec::new()).collect();
    for l in lines {
        per_customer[l.customer as usize].push(l);
    }
    let keep = USER_TAGS.min(max_tags);
    customers
        .iter()
        .zip(per_customer)
        .map(|(c, mut ls)| {
            let mut weights: HashMap<&str, f32> = HashMap::new();
            for l in &ls {
                let w = crate::narrow::f32_from(l.quantity.ln_1p());
                for t in &items[l.item as usize].user_tags {
                    *weights.entry(t.as_str()).or_insert(0.0) += w;
                }
            }
            let country = most_frequent(&c.countries).filter(|s| !s.is_empty());
            let mut tags = scale_top(
                weights,
                if country.is_some() {
                    keep.saturating_sub(1)
                } else {
                    keep
                },
            );
            if let Some(country) = country {
                if keep > 0 {
                    tags.insert(0, (format!("country:{country}"), 1.0));
                }
            }
            ls.sort_by_key(|l| l.time); // stable: lines of one invoice keep file order
            let recent = last_distinct(
                ls.iter().map(|l| items[l.item as usize].item.id.as_str()),
                RECENT,
            );
            User {
                id: c.id.clone(),
                tags: clean_tags(tags, keep),
                recent_items: recent,
            }
        })
        .collect()
}

/// Add one occurrence of `value` (ignored when empty) to a small ordered counter.
fn count(counter: &mut Vec<(String, u32)>, value: &str) {
    if value.is_empty() {
        return;
    }
    match counter.iter_mut().find(|(v, _)| v == value) {
        Some((_, n)) => *n += 1,
        None => counter.push((value.to_string(), 1)),
    }
}

/// The value with the highest count; ties go to the one seen first.
fn most_frequent(counter: &[(String, u32)]) -> Option<&str> {
    let mut best: Option<&(String, u32)> = None;
    for e in counter {
        if best.is_none_or(|b| e.1 > b.1) {
            best = Some(e);
        }
    }
    best.map(|(v, _)| v.as_str())
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// The meaningful words of a description: lowercase, letters only, three letters or more, no
/// stop words, each once, in order.
fn description_words(description: &str) -> Vec<String> {
    let lower = description.to_lowercase();
    let mut words: Vec<String> = Vec::new();
    for w in lower.split(|c: char| !c.is_alphabetic()) {
        if w.chars().count() >= 3 && !STOP_WORDS.contains(&w) {
            words.retain(|x| x != w); // a repeated word moves to its last place
            words.push(w.to_string());
        }
    }
    words
}

/// `United Kingdom` -> `united-kingdom`.
fn country_slug(country: &str) -> String {
    country
        .split_whitespace()
        .collect::<Vec<_>>()
        .join("-")
        .to_lowercase()
}

/// `17850.0` -> `17850`; anything else is kept as it is.
fn normalise_customer(raw: &str) -> &str {
    match raw.split_once('.') {
        Some((int, frac))
            if !int.is_empty()
                && int.bytes().all(|b| b.is_ascii_digit())
                && frac.bytes().all(|b| b == b'0') =>
        {
            int
        }
        _ => raw,
    }
}

fn parse_quantity(s: &str) -> std::result::Result<f64, String> {
    let bad = || format!("quantity `{}` is not a whole number", show(s));
    let q = match s.parse::<i64>() {
        Ok(q) => q as f64,
        Err(_) => match s.parse::<f64>() {
            Ok(q) if q.is_finite() && q.fract() == 0.0 => q,
            _ => return Err(bad()),
        },
    };
    if q > f64::from(MAX_QUANTITY) {
        return Err(format!(
            "quantity {} is over the {MAX_QUANTITY} units one line may hold; fix the row or \
             drop it (it would count as that much spend)",
            show(s)
        ));
    }
    Ok(q)
}

fn parse_price(s: &str) -> std::result::Result<f64, String> {
    match s.parse::<f64>() {
        Ok(p) if p.is_finite() && p >= 0.0 => Ok(p),
        Ok(p) => Err(format!("unit price {p} must be a finite number >= 0")),
        Err(_) => Err(format!("unit price `{}` is not a number", show(s))),
    }
}

/// Seconds since the Unix epoch for `YYYY-MM-DD HH:MM[:SS]` or `M/D/YYYY H:MM[:SS]`, read as
/// UTC.
fn parse_datetime(s: &str) -> std::result::Result<u64, String> {
    let bad = |why: &str| format!("invoice date `{}` {why}", show(s));
    let (date, time) = s.split_once([' ', 'T']).ok_or_else(|| bad("has no time"))?;
    let num = |p: &str| -> Option<u32> {
        (!p.is_empty() && p.len() <= 4 && p.bytes().all(|b| b.is_ascii_digit()))
            .then(|| p.parse().ok())
            .flatten()
    };
    let parts: Vec<&str> = if date.contains('-') {
        date.split('-').collect()
    } else {
        date.split('/').collect()
    };
    let (y, m, d) = match (date.contains('-'), parts.as_slice()) {
        (true, [y, m, d]) => (num(y), num(m), num(d)),
        (false, [m, d, y]) => (num(y), num(m), num(d)),
        _ => return Err(bad("is not YYYY-MM-DD or M/D/YYYY")),
    };
    let (Some(y), Some(m), Some(d)) = (y, m, d) else {
        return Err(bad("is not YYYY-MM-DD or M/D/YYYY"));
    };
    let hms: Vec<Option<u32>> = time.trim().split(':').map(num).collect();
    let (h, mi, sec) = match hms.as_slice() {
        [Some(h), Some(mi)] => (*h, *mi, 0),
        [Some(h), Some(mi), Some(sec)] => (*h, *mi, *sec),
        _ => return Err(bad("has no H:MM time")),
    };
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return Err(bad("is not a valid date from 1970 on"));
    }
    if h > 23 || mi > 59 || sec > 59 {
        return Err(bad("is not a valid time of day"));
    }
    let days = days_from_civil(i64::from(y), m, d);
    Ok((days * 86_400) as u64 + u64::from(h * 3600 + mi * 60 + sec))
}

fn days_in_month(y: u32, m: u32) -> u32 {
    match m {
        2 if (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(parse_datetime("1970-01-01 00:00"), Ok(0));
        assert_eq!(parse_datetime("2010-12-01 08:26:00"), Ok(1_291_191_960));
        assert_eq!(parse_datetime("12/1/2010 8:26"), Ok(1_291_191_960));
        assert_eq!(parse_datetime("2000-03-01 00:00"), Ok(951_868_800));
        assert_eq!(parse_datetime("2024-02-29 23:59:59"), Ok(1_709_251_199));
        assert!(parse_datetime("2023-02-29 10:00").is_err());
        assert!(parse_datetime("13/1/2010 8:26").is_err());
        assert!(parse_datetime("yesterday").is_err());
        assert!(parse_datetime("2010-12-01").is_err());
        assert!(parse_datetime("2010-12-01 24:00").is_err());
    }

    #[test]
    fn words_category_and_ids() {
        let w = description_words("WHITE HANGING HEART T-LIGHT HOLDER");
        assert_eq!(w, ["white", "hanging", "heart", "light", "holder"]);
        assert_eq!(description_words("SET OF 3 CAKE TINS"), ["cake", "tins"]);
        assert_eq!(normalise_customer("17850.0"), "17850");
        assert_eq!(normalise_customer("17850"), "17850");
        assert_eq!(normalise_customer("A.0"), "A.0");
        assert_eq!(country_slug("United  Kingdom"), "united-kingdom");
        assert_eq!(crate::model::price_band(0.99), "price:0-1");
        assert_eq!(crate::model::price_band(20.0), "price:20-50");
        assert_eq!(median(vec![3.0, 1.0, 2.0, 10.0]), 2.5);
    }
}
