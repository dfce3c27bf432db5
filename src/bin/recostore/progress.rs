//! Progress bars on stderr, drawn from the library's progress reports (the library draws
//! nothing itself). indicatif hides a bar by itself when stderr is not a terminal.

use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use recostore::{Progress, ProgressUpdate};

/// A callback that draws one bar per stage: bytes for an import's files, items for the
/// neighbour lists; `None` when `on` is false (`--json` output wants a quiet stderr).
pub fn bars(on: bool) -> Option<Progress> {
    if !on {
        return None;
    }
    let current: Mutex<Option<(String, ProgressBar)>> = Mutex::new(None);
    Some(Progress::new(move |u: &ProgressUpdate<'_>| {
        let mut current = current.lock().unwrap_or_else(|p| p.into_inner());
        if current.as_ref().is_none_or(|(stage, _)| stage != u.stage) {
            if let Some((_, old)) = current.take() {
                old.finish_and_clear();
            }
            *current = Some((u.stage.to_string(), bar_for(u)));
        }
        if let Some((_, bar)) = current.as_ref() {
            bar.set_position(u.done);
            if u.finished {
                bar.finish_and_clear();
            }
        }
    }))
}

fn bar_for(u: &ProgressUpdate<'_>) -> ProgressBar {
    if u.total == 0 {
        // Reading stdin: no length to draw against.
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(u.total), ProgressDrawTarget::stderr());
    let template = if u.stage == recostore::NEIGHBOUR_STAGE {
        "neighbour lists {bar:40} {pos}/{len} items, {per_sec}, eta {eta}"
    } else if u.stage == "asks" || u.stage == "replay" {
        // A replay's stages count events and users, not bytes.
        "{msg:>20} [{bar:40}] {pos}/{len} ({eta})"
    } else {
        "{msg:>20} [{bar:40}] {bytes}/{total_bytes} ({eta})"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(u.stage.to_string());
    bar
}
