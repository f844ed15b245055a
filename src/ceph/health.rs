//! Why writes stall: the monitor's FULL conditions, named for the error message.
use super::Cluster;
use crate::error::Error;

/// The monitor's full-related health checks (OSD_FULL, POOL_FULL, ...) with their summaries,
/// or `None` when the cluster is not full (or cannot say).
pub fn full_condition(cluster: &Cluster) -> Option<String> {
    let (out, _) = cluster
        .mon_command(r#"{"prefix": "health", "format": "json"}"#)
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&out).ok()?;
    let checks = v.get("checks")?.as_object()?;
    let full: Vec<String> = checks
        .iter()
        .filter(|(name, _)| {
            name.contains("FULL") && !name.contains("NEARFULL") && !name.contains("BACKFILLFULL")
        })
        .map(|(name, c)| {
            let msg = c
                .pointer("/summary/message")
                .and_then(|m| m.as_str())
                .unwrap_or("");
            format!("{name}: {msg}")
        })
        .collect();
    (!full.is_empty()).then(|| full.join("; "))
}

/// What to tell an operator whose cluster is full (`why`: [`full_condition`]'s text), written
/// once for every command that stops on it.
pub fn full_advice(why: &str) -> String {
    format!("the cluster is full ({why}) — free space, add OSDs or raise the ratio with `ceph osd set-full-ratio`")
}

/// A full cluster shows up as timed-out or refused writes: when `e` is one of those and the
/// cluster is full, the error names the real cause (`what` says what stopped, e.g. "import
/// into images/x stopped"; `outcome` what was left, e.g. "nothing was published").
pub fn explain_full(cluster: &Cluster, e: Error, what: &str, outcome: &str) -> Error {
    match e.errno() {
        Some(libc::ETIMEDOUT | libc::ENOSPC | libc::EDQUOT) => match full_condition(cluster) {
            Some(why) => e.context(format!("{what}: {}; {outcome}", full_advice(&why))),
            None => e,
        },
        _ => e,
    }
}
