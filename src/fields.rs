//! Unknown fields in JSON from outside (admin requests, queries, filters): refused, with the
//! closest valid name suggested. A typo such as `"kk": 3` or `"max_prise": 1` silently fell
//! back to the default before, so a shop saw ten items instead of three, or none filtered.
//!
//! Two sources of the valid names: serde's own message for types that deny unknown fields
//! ("unknown field `x`, expected one of `a`, `b`"), rewritten by [`explain`]; and, for
//! [`crate::Ask`], whose scenario is flattened into it (serde cannot deny unknown fields
//! through a flatten), a check of the object's keys ([`check_keys`]).

use serde_json::Value;

/// The name among `options` closest to `name`, if one is close enough to be a likely typo
/// (Jaro–Winkler similarity at least 0.8, or one is a prefix of the other).
pub(crate) fn closest<'a>(
    name: &str,
    options: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let lower = name.to_ascii_lowercase();
    options
        .into_iter()
        .map(|o| {
            let s = strsim::jaro_winkler(&lower, &o.to_ascii_lowercase());
            let prefix = !lower.is_empty() && (o.starts_with(&lower) || lower.starts_with(o));
            (if prefix { s.max(0.8) } else { s }, o)
        })
        .filter(|(s, _)| *s >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, o)| o)
}

/// The sentence for an unknown field `name` of `what`, with the closest of `valid`.
pub(crate) fn unknown(what: &str, name: &str, valid: &[&str]) -> String {
    let hint = match closest(name, valid.iter().copied()) {
        Some(best) => format!("; did you mean `{best}`?"),
        None => String::new(),
    };
    format!(
        "unknown field `{name}` in {what}{hint} (valid: {})",
        valid.join(", ")
    )
}

/// serde's "unknown field `x`, expected one of `a`, `b`" (or "expected `a` or `b`"),
/// rewritten with a suggestion; any other message unchanged.
pub(crate) fn explain(msg: &str) -> String {
    // serde_path_to_error puts the path first: "filter: unknown field ...".
    let (path, msg) = match msg.split_once(": unknown ") {
        Some((p, m)) if !p.contains(' ') => (format!("{p}: "), format!("unknown {m}")),
        _ => (String::new(), msg.to_string()),
    };
    let (kind, rest) = if let Some(r) = msg.strip_prefix("unknown field `") {
        ("field", r)
    } else if let Some(r) = msg.strip_prefix("unknown variant `") {
        ("variant", r)
    } else {
        return format!("{path}{msg}");
    };
    let Some((name, tail)) = rest.split_once('`') else {
        return format!("{path}{msg}");
    };
    // The names serde lists are each between backticks.
    let valid: Vec<&str> = tail.split('`').skip(1).step_by(2).collect();
    if valid.is_empty() {
        return format!("{path}unknown {kind} `{name}` (none is allowed here)");
    }
    // serde appends " at line L column C" for text input: keep it.
    let at = tail
        .rfind(" at line ")
        .map(|i| &tail[i..])
        .unwrap_or_default();
    let hint = match closest(name, valid.iter().copied()) {
        Some(best) => format!("; did you mean `{best}`?"),
        None => String::new(),
    };
    format!(
        "{path}unknown {kind} `{name}`{hint} (valid: {}){at}",
        valid.join(", ")
    )
}

/// Refuse keys of the JSON object `v` that are not in `valid` (a non-object passes: the
/// deserializer reports its type).
pub(crate) fn check_keys(what: &str, v: &Value, valid: &[&str]) -> Result<(), String> {
    let Value::Object(map) = v else {
        return Ok(());
    };
    match map.keys().find(|k| !valid.contains(&k.as_str())) {
        Some(bad) => Err(unknown(what, bad, valid)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_the_closest_name() {
        let filter = ["categories", "min_price", "max_price", "in_stock"];
        assert_eq!(closest("max_prise", filter), Some("max_price"));
        assert_eq!(closest("kk", ["k", "user", "filter"]), Some("k"));
        assert_eq!(closest("zzzzzz", ["k", "user", "filter"]), None);
    }

    #[test]
    fn rewrites_serde_messages() {
        let m = explain("unknown field `max_prise`, expected one of `min_price`, `max_price`");
        assert!(
            m.contains("`max_prise`") && m.contains("did you mean `max_price`?"),
            "{m}"
        );
        let m = explain("unknown field `nme`, expected `name` at line 1 column 7");
        assert!(
            m.contains("did you mean `name`?") && m.ends_with("at line 1 column 7"),
            "{m}"
        );
        assert_eq!(
            explain("invalid type: integer `5`"),
            "invalid type: integer `5`"
        );
        let m = explain("filter: unknown field `max_prise`, expected `max_price`");
        assert!(
            m.starts_with("filter: unknown field `max_prise`; did you mean"),
            "{m}"
        );
        let m = explain("unknown variant `for_user`, expected one of `similar`, `for-user`");
        assert!(m.contains("did you mean `for-user`?"), "{m}");
    }
}
