//! The Python peers of the similarity benches: dump the item matrix and query rows in the
//! format `bench/peers/README.md` describes, run a peer script on them, read its answer.
//! Shared by `bench/similarity.rs` and `bench/shapes.rs` (included with `#[path]`).

use std::path::Path;

use recostore::Store;

/// What a peer reported: latencies over its timed passes and its top ids per query (dense
/// item ids, best first).
#[allow(dead_code)] // each bench reads the fields it prints
pub struct PeerRun {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub qps: f64,
    pub prepare_s: f64,
    pub version: String,
    pub top: Vec<Vec<u32>>,
}

/// Write the item matrix (rows L2-normalised) and the query rows for a Python peer.
pub fn dump(store: &Store, queries: &[Vec<(u32, f32)>], dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let snap = store.snapshot();
    let f = &recostore::internals::segment_data(&snap).items.forward;
    let rows = f.rows();
    let write_csr = |prefix: &str, rows: &mut dyn Iterator<Item = Vec<(u32, f32)>>| {
        let (mut indptr, mut idx, mut val) = (vec![0u64], Vec::new(), Vec::new());
        for r in rows {
            let n = r.iter().map(|p| p.1 * p.1).sum::<f32>().sqrt();
            for (t, w) in r {
                idx.extend_from_slice(&t.to_le_bytes());
                val.extend_from_slice(&(if n > 0.0 { w / n } else { 0.0 }).to_le_bytes());
            }
            indptr.push((idx.len() / 4) as u64);
        }
        let ptr: Vec<u8> = indptr.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(dir.join(format!("{prefix}.indptr.u64")), ptr)?;
        std::fs::write(dir.join(format!("{prefix}.indices.u32")), idx)?;
        std::fs::write(dir.join(format!("{prefix}.data.f32")), val)
    };
    write_csr("items", &mut (0..rows as u32).map(|r| f.row_vec(r)))?;
    write_csr("queries", &mut queries.iter().cloned())?;
    let tags = snap.tag_id_bound();
    std::fs::write(
        dir.join("meta.json"),
        format!(
            "{{\"items\": {rows}, \"tags\": {tags}, \"queries\": {}}}",
            queries.len()
        ),
    )
}

/// Run `bench/peers/<script>` on the dump in `dir` for the top `k`; `extra` arguments go
/// last. The interpreter is `RECOSTORE_PEER_PYTHON`, default `bench/peers/.venv/bin/python`.
pub fn run(script: &str, dir: &Path, k: usize, extra: &[&str]) -> Result<PeerRun, String> {
    let python = std::env::var("RECOSTORE_PEER_PYTHON")
        .unwrap_or_else(|_| "bench/peers/.venv/bin/python".to_string());
    let out = std::process::Command::new(&python)
        .arg(format!("bench/peers/{script}"))
        .arg("--data")
        .arg(dir)
        .args(["--k", &k.to_string()])
        .args(extra)
        .output()
        .map_err(|e| format!("could not run {python}: {e} (see bench/peers/README.md)"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("peer output: {e}"))?;
    let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    let top = v["top"]
        .as_array()
        .map(|qs| {
            qs.iter()
                .map(|ids| {
                    ids.as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|x| x.as_u64())
                                .map(|x| x as u32)
                                .collect()
                        })
                        .unwrap_or_default()
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(PeerRun {
        p50_ms: f("p50_us") / 1e3,
        p99_ms: f("p99_us") / 1e3,
        qps: f("qps"),
        prepare_s: f("prepare_s"),
        version: v["version"].as_str().unwrap_or("?").to_string(),
        top,
    })
}
