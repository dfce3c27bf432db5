//! Argument types more than one command takes: the filter flags and `name=weight` tags. Apart
//! from the commands, so `query` and `scenario` depend on this and not on each other.

use clap::Args;
use recostore::Filter;

/// The filter flags every query and scenario takes.
#[derive(Args)]
pub struct FilterOpts {
    /// Only items in this category or below it (repeat for any of several).
    #[arg(long = "category", value_name = "PATH")]
    categories: Vec<String>,
    /// Never items in this category or below it (repeatable).
    #[arg(long = "exclude-category", value_name = "PATH")]
    exclude_categories: Vec<String>,
    /// Only items priced at least this.
    #[arg(long)]
    min_price: Option<f32>,
    /// Only items priced at most this.
    #[arg(long)]
    max_price: Option<f32>,
    /// Only items in stock.
    #[arg(long)]
    in_stock: bool,
    /// Only items with this tag (repeatable: all required).
    #[arg(long = "must", value_name = "TAG")]
    must: Vec<String>,
    /// Never items with this tag (repeatable).
    #[arg(long = "must-not", value_name = "TAG")]
    must_not: Vec<String>,
    /// Never this item id (repeatable), e.g. what is already in the cart.
    #[arg(long = "exclude", value_name = "ITEM")]
    exclude: Vec<String>,
}

impl FilterOpts {
    /// The library filter these flags describe.
    pub fn filter(self) -> Filter {
        Filter {
            categories: self.categories,
            exclude_categories: self.exclude_categories,
            min_price: self.min_price,
            max_price: self.max_price,
            in_stock: self.in_stock,
            must_tags: self.must,
            must_not_tags: self.must_not,
            exclude_items: self.exclude,
        }
    }
}

/// Parse `name=weight` (weight defaults to 1).
pub fn parse_tag(s: &str) -> Result<(String, f32), String> {
    let (name, w) = match s.rsplit_once('=') {
        Some((n, w)) => (
            n,
            w.parse::<f32>()
                .map_err(|_| format!("weight in `{s}` is not a number; use name=weight"))?,
        ),
        None => (s, 1.0),
    };
    if name.is_empty() {
        return Err(format!("tag `{s}` has no name; use name=weight"));
    }
    Ok((name.to_string(), w))
}

/// Seconds in "90d", "12h", "30m", "45s" or "3600".
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let (digits, unit) = match text.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&text[..i], c),
        _ => (text, 's'),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a duration such as 90d, 12h, 30m or 3600"))?;
    let unit = match unit {
        'd' => 86_400,
        'h' => 3_600,
        'm' => 60,
        's' => 1,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{text}`: use d, h, m or s"
            ))
        }
    };
    n.checked_mul(unit)
        .ok_or_else(|| format!("`{text}` is too long a time"))
}

/// A frequency cap `N/DURATION` ("3/1d": at most 3 shows a day).
pub fn parse_cap(text: &str) -> Result<(u32, u64), String> {
    let (n, window) = text
        .split_once('/')
        .ok_or_else(|| format!("`{text}` is not a cap such as 3/1d (shows/window)"))?;
    let n: u32 = n
        .trim()
        .parse()
        .map_err(|_| format!("`{n}` in `{text}` is not a number of shows"))?;
    Ok((n, parse_duration(window.trim())?))
}
