//! This node's name in a cluster of servers sharing one database: what it claims (webhook
//! deliveries) and what its spool holds (uploads to resume) are recorded under it. It must stay
//! the same across restarts of the node (its data directory keeps it) and differ between nodes.

use std::path::Path;

/// Where the data directory keeps the generated name.
pub const NODE_ID_FILE: &str = "node-id";

/// The name `configured` (checked), or the one kept in `data_dir`, or a new one kept there.
pub fn resolve(data_dir: &Path, configured: Option<&str>) -> Result<String, String> {
    if let Some(id) = configured {
        check(id).map_err(|why| format!("node_id (--node-id) '{id}' {why}"))?;
        return Ok(id.to_owned());
    }
    let path = data_dir.join(NODE_ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let id = text.trim();
            check(id).map_err(|why| format!("{}: '{id}' {why}", path.display()))?;
            return Ok(id.to_owned());
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    }
    let mut bytes = [0u8; 6];
    getrandom::fill(&mut bytes).expect("bug: the operating system has no random source");
    let id = format!(
        "node-{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    std::fs::write(&path, format!("{id}\n"))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(id)
}

/// 1 to 64 letters, digits, `.`, `_` or `-` (a host or pod name fits).
fn check(id: &str) -> Result<(), &'static str> {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
    if id.is_empty() || id.len() > 64 || !id.bytes().all(allowed) {
        return Err("is not a node name; allowed: 1 to 64 letters, digits, '.', '_' or '-'");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_name_is_kept_and_a_configured_one_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let first = resolve(dir.path(), None).unwrap();
        assert!(first.starts_with("node-"), "{first}");
        assert_eq!(resolve(dir.path(), None).unwrap(), first, "kept");
        assert_eq!(resolve(dir.path(), Some("pod-1")).unwrap(), "pod-1");
        let wrong = resolve(dir.path(), Some("a/b")).unwrap_err();
        assert!(
            wrong.contains("node_id (--node-id) 'a/b' is not a node name"),
            "{wrong}"
        );
        assert!(resolve(dir.path(), Some("")).is_err());
    }
}
