//! Import the MovieLens "latest-small" data set (`movies.csv`, `ratings.csv`, `tags.csv`).
//!
//! # Items (movies)
//!
//! * id: the `movieId` string as written in the file; title: the title column.
//! * `genre:<genre>` (lowercased), weight 1.0, for every genre except `(no genres listed)`. The
//!   genres are the curated, always-present description of a movie, so they carry full weight.
//! * `decade:<NNNN>s`, weight 0.5, from the last `(YYYY` year in the title. Era is a real taste
//!   signal but a weaker one than genre, so it weighs half.
//! * `tag:<text>` for every free-text tag users applied in `tags.csv`, normalised (lowercase,
//!   trimmed, inner whitespace collapsed to one space) so "Pixar" and " pixar" are one tag.
//!   Weight `1 + ln(applications)`: a tag many people applied says more about the movie than one
//!   person's note, but with diminishing returns so a popular tag does not drown the genres.
//! * category: the first genre, lowercased (empty when there is none).
//!
//! # Users
//!
//! Every `userId` with at least one kept rating becomes a user. Liking is what describes taste,
//! so only ratings of 4.0 and up count: each adds `rating - 3` to every genre tag of the movie and
//! half of that to its decade tag. The weights are then scaled so the largest is 1.0 (users who
//! rate a lot are not "stronger" than others) and the 64 heaviest are kept. `recent_items` are the
//! user's rated movies ordered by rating time, the newest 50, newest last.
//!
//! # Bad and dropped rows
//!
//! A row with the wrong number of columns, an empty id, an unparsable or out-of-range rating or
//! timestamp, an empty tag, or a repeated `movieId` in `movies.csv` is *bad*: it is counted in
//! `skipped` (with its 1-based line) or, with [`ImportOptions::strict`], aborts the import before
//! anything is stored. Ratings and tags of movies that `movies.csv` does not list are well formed
//! but unusable, so they are counted in `dropped`. `events` counts the rating and tag rows that
//! were used.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use super::common::{
    check_header, check_id, clean_tags, csv_reader, display_name, field, last_distinct, line_of,
    metered, open_file, read_row, record_events, scale_top, show, truncate_utf8, write_records,
    wrong_columns,
};
use super::report::{ImportOptions, ImportSummary};
use crate::error::Result;
use crate::model::{Item, Tag, User, MAX_TAG_BYTES, MAX_TEXT_BYTES};
use crate::{Event, Store};

/// Tags kept per user.
const USER_TAGS: usize = 64;
/// Recent items kept per user.
const RECENT: usize = 50;

const MOVIES_HEADER: &[&str] = &["movieId", "title", "genres"];
const RATINGS_HEADER: &[&str] = &["userId", "movieId", "rating", "timestamp"];
const TAGS_HEADER: &[&str] = &["userId", "movieId", "tag", "timestamp"];

struct Movie {
    id: String,
    title: String,
    /// `genre:<g>` tag names, in file order.
    genres: Vec<String>,
    /// `decade:<d>s`, if the title carries a year.
    decade: Option<String>,
    /// Normalised user tag -> number of applications.
    user_tags: HashMap<String, u32>,
}

struct Rating {
    user: u32,
    movie: u32,
    rating: f32,
    time: u64,
}

/// Import the MovieLens CSV files in `dir` (`movies.csv`, `ratings.csv`, `tags.csv`) into
/// `store`: movies become items, raters become users (see the module docs for the tags).
///
/// Everything is parsed and checked first and only then written, in batches, so with
/// [`ImportOptions::strict`] the first bad row returns `Error::BadInput` and nothing is stored.
/// Ends with [`Store::rebuild`], so the store is compact when this returns.
pub fn import(store: &Store, dir: &Path, opts: &ImportOptions) -> Result<ImportSummary> {
    let latest = crate::event::latest_event_time(store.config().future_tolerance_secs);
    let start = Instant::now();
    let mut summary = ImportSummary::default();
    let paths = [
        dir.join("movies.csv"),
        dir.join("ratings.csv"),
        dir.join("tags.csv"),
    ];
    let (movies_file, movies_len) = open_file(&paths[0])?;
    let (ratings_file, ratings_len) = open_file(&paths[1])?;
    let (tags_file, tags_len) = open_file(&paths[2])?;

    // movies.csv
    let path = &paths[0];
    let name = display_name(path);
    let (file, meter) = metered(opts, &name, movies_len, movies_file);
    let mut rdr = csv_reader(file);
    check_header(&mut rdr, path, &name, MOVIES_HEADER)?;
    let mut movies: Vec<Movie> = Vec::new();
    let mut movie_index: HashMap<String, (u32, u64)> = HashMap::new();
    let mut rec = csv::ByteRecord::new();
    while read_row(&mut rdr, &mut rec, path)? {
        let line = line_of(&rec);
        if rec.len() != MOVIES_HEADER.len() {
            summary.bad_row(
                opts,
                &name,
                line,
                wrong_columns(MOVIES_HEADER.len(), rec.len()),
            )?;
            continue;
        }
        let id = field(&rec, 0);
        if let Err(reason) = check_id("movieId", &id) {
            summary.bad_row(opts, &name, line, reason)?;
            continue;
        }
        if let Some(&(_, first)) = movie_index.get(id.as_ref()) {
            summary.bad_row(
                opts,
                &name,
                line,
                format!("movieId `{id}` repeats the movie on line {first}"),
            )?;
            continue;
        }
        let title = truncate_utf8(field(&rec, 1).into_owned(), MAX_TEXT_BYTES);
        let mut genres: Vec<String> = Vec::new();
        for g in field(&rec, 2).split('|') {
            let g = g.trim();
            if g.is_empty() || g.eq_ignore_ascii_case("(no genres listed)") {
                continue;
            }
            let tag = truncate_utf8(format!("genre:{}", g.to_lowercase()), MAX_TAG_BYTES);
            if !genres.contains(&tag) {
                genres.push(tag);
            }
        }
        let decade = year_in_title(&title).map(|y| format!("decade:{}s", y / 10 * 10));
        let idx = crate::narrow::u32_from(movies.len());
        movie_index.insert(id.to_string(), (idx, line));
        movies.push(Movie {
            id: id.into_owned(),
            title,
            genres,
            decade,
            user_tags: HashMap::new(),
        });
    }

    meter.finish();

    // ratings.csv
    let path = &paths[1];
    let name = display_name(path);
    let (file, meter) = metered(opts, &name, ratings_len, ratings_file);
    let mut rdr = csv_reader(file);
    check_header(&mut rdr, path, &name, RATINGS_HEADER)?;
    let mut user_names: Vec<String> = Vec::new();
    let mut user_index: HashMap<String, u32> = HashMap::new();
    let mut ratings: Vec<Rating> = Vec::new();
    // Tag applications by raters, as review events: (user, movie, time).
    let mut reviews: Vec<(u32, u32, u64)> = Vec::new();
    while read_row(&mut rdr, &mut rec, path)? {
        let line = line_of(&rec);
        if rec.len() != RATINGS_HEADER.len() {
            summary.bad_row(
                opts,
                &name,
                line,
                wrong_columns(RATINGS_HEADER.len(), rec.len()),
            )?;
            continue;
        }
        let (user, movie) = (field(&rec, 0), field(&rec, 1));
        let checked = check_id("userId", &user)
            .and_then(|()| check_id("movieId", &movie))
            .and_then(|()| parse_rating(&field(&rec, 2)))
            .and_then(|r| parse_timestamp(&field(&rec, 3), latest).map(|t| (r, t)));
        let (rating, time) = match checked {
            Ok(v) => v,
            Err(reason) => {
                summary.bad_row(opts, &name, line, reason)?;
                continue;
            }
        };
        let Some(&(movie, _)) = movie_index.get(movie.as_ref()) else {
            summary.dropped += 1;
            continue;
        };
        let user = match user_index.get(user.as_ref()) {
            Some(&u) => u,
            None => {
                let u = crate::narrow::u32_from(user_names.len());
                user_index.insert(user.to_string(), u);
                user_names.push(user.into_owned());
                u
            }
        };
        ratings.push(Rating {
            user,
            movie,
            rating,
            time,
        });
        summary.events += 1;
    }

    meter.finish();

    // tags.csv
    let path = &paths[2];
    let name = display_name(path);
    let (file, meter) = metered(opts, &name, tags_len, tags_file);
    let mut rdr = csv_reader(file);
    check_header(&mut rdr, path, &name, TAGS_HEADER)?;
    while read_row(&mut rdr, &mut rec, path)? {
        let line = line_of(&rec);
        if rec.len() != TAGS_HEADER.len() {
            summary.bad_row(
                opts,
                &name,
                line,
                wrong_columns(TAGS_HEADER.len(), rec.len()),
            )?;
            continue;
        }
        let (user, movie) = (field(&rec, 0), field(&rec, 1));
        let tag = normalise_tag(&field(&rec, 2));
        let checked = check_id("userId", &user)
            .and_then(|()| check_id("movieId", &movie))
            .and_then(|()| {
                if tag.is_empty() {
                    Err("the tag is empty".to_string())
                } else {
                    Ok(())
                }
            })
            .and_then(|()| parse_timestamp(&field(&rec, 3), latest));
        if let Err(reason) = checked {
            summary.bad_row(opts, &name, line, reason)?;
            continue;
        }
        let Some(&(movie, _)) = movie_index.get(movie.as_ref()) else {
            summary.dropped += 1;
            continue;
        };
        *movies[movie as usize].user_tags.entry(tag).or_insert(0) += 1;
        if let (Some(&u), Ok(t)) = (
            user_index.get(user.as_ref()),
            parse_timestamp(&field(&rec, 3), latest),
        ) {
            reviews.push((u, movie, t));
        }
        summary.events += 1;
    }
    meter.finish();

    let max_tags = store.config().max_tags_per_record;
    let items: Vec<Item> = movies.iter().map(|m| movie_item(m, max_tags)).collect();
    let mut events: Vec<Event> = ratings
        .iter()
        .map(|r| {
            Event::rating(
                user_names[r.user as usize].clone(),
                movies[r.movie as usize].id.clone(),
                r.rating,
                r.time,
            )
        })
        .collect();
    events.extend(reviews.iter().map(|&(u, m, t)| {
        Event::review(
            user_names[u as usize].clone(),
            movies[m as usize].id.clone(),
            t,
        )
    }));
    let users = rating_users(&movies, &user_names, ratings, max_tags);
    write_records(store, &items, &users, &mut summary)?;
    record_events(store, events, &mut summary)?;
    summary.seconds = start.elapsed().as_secs_f64();
    Ok(summary)
}

fn movie_item(m: &Movie, max_tags: usize) -> Item {
    let mut tags: Vec<Tag> = m.genres.iter().map(|g| (g.clone(), 1.0)).collect();
    if let Some(d) = &m.decade {
        tags.push((d.clone(), 0.5));
    }
    for (t, &n) in &m.user_tags {
        tags.push((format!("tag:{t}"), 1.0 + (n as f32).ln()));
    }
    let category = m
        .genres
        .first()
        .and_then(|g| g.strip_prefix("genre:"))
        .unwrap_or("")
        .to_string();
    Item {
        id: m.id.clone(),
        tags: clean_tags(tags, max_tags),
        title: m.title.clone(),
        category: truncate_utf8(category, MAX_TEXT_BYTES),
        ..Item::default()
    }
}

fn rating_users(
    movies: &[Movie],
    names: &[String],
    ratings: Vec<Rating>,
    max_tags: usize,
) -> Vec<User> {
    let mut per_user: Vec<Vec<Rating>> = names.iter().map(|_| Vec::new()).collect();
    for r in ratings {
        per_user[r.user as usize].push(r);
    }
    names
        .iter()
        .zip(per_user)
        .map(|(name, mut rs)| {
            let mut weights: HashMap<&str, f32> = HashMap::new();
            for r in rs.iter().filter(|r| r.rating >= 4.0) {
                let m = &movies[r.movie as usize];
                let w = r.rating - 3.0;
                for g in &m.genres {
                    *weights.entry(g.as_str()).or_insert(0.0) += w;
                }
                if let Some(d) = &m.decade {
                    *weights.entry(d.as_str()).or_insert(0.0) += 0.5 * w;
                }
            }
            rs.sort_by_key(|r| r.time); // stable: equal times keep file order
            let recent = last_distinct(
                rs.iter().map(|r| movies[r.movie as usize].id.as_str()),
                RECENT,
            );
            User {
                id: name.clone(),
                tags: scale_top(weights, USER_TAGS.min(max_tags)),
                recent_items: recent,
            }
        })
        .collect()
}

/// The year of a title such as `Toy Story (1995)`: the last `(` followed by four digits (which
/// also reads `(2006–2007)` as 2006). Only plausible film years count.
fn year_in_title(title: &str) -> Option<u32> {
    title.match_indices('(').rev().find_map(|(i, _)| {
        let rest = &title.as_bytes()[i + 1..];
        let digits = rest.get(..4)?;
        if !digits.iter().all(u8::is_ascii_digit) || rest.get(4).is_some_and(u8::is_ascii_digit) {
            return None;
        }
        let year = digits
            .iter()
            .fold(0u32, |y, d| y * 10 + u32::from(d - b'0'));
        (1850..=2100).contains(&year).then_some(year)
    })
}

/// Lowercase, trim, and collapse inner whitespace to one space.
fn normalise_tag(raw: &str) -> String {
    raw.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

fn parse_rating(s: &str) -> std::result::Result<f32, String> {
    match s.parse::<f32>() {
        Ok(r) if (0.5..=5.0).contains(&r) => Ok(r),
        Ok(r) => Err(format!("rating {r} is outside 0.5-5")),
        Err(_) => Err(format!("rating `{}` is not a number", show(s))),
    }
}

fn parse_timestamp(s: &str, latest: u64) -> std::result::Result<u64, String> {
    s.parse::<u64>()
        .map_err(|_| format!("timestamp `{}` is not a non-negative whole number", show(s)))
        .and_then(|t| super::common::not_future(t, latest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn years_in_titles() {
        assert_eq!(year_in_title("Toy Story (1995)"), Some(1995));
        assert_eq!(year_in_title("(500) Days of Summer (2009)"), Some(2009));
        assert_eq!(
            year_in_title("Death Note: Desu nôto (2006–2007)"),
            Some(2006)
        );
        assert_eq!(year_in_title("Babylon 5"), None);
        assert_eq!(year_in_title("Odd (12345)"), None);
    }

    #[test]
    fn tags_are_normalised_and_cleaned() {
        assert_eq!(normalise_tag("  Highly   quotable "), "highly quotable");
        let long = "x".repeat(MAX_TAG_BYTES + 10);
        let tags = clean_tags(
            vec![(long.clone(), 1.0), (long, 2.0), ("a".into(), 0.0)],
            10,
        );
        assert_eq!(tags.len(), 1);
        assert_eq!(tags[0].0.len(), MAX_TAG_BYTES);
        assert_eq!(tags[0].1, 2.0);
    }

    #[test]
    fn recent_is_distinct_newest_last() {
        let r = last_distinct(["a", "b", "a", "c", "d"].into_iter(), 3);
        assert_eq!(r, vec!["a", "c", "d"]);
    }
}
