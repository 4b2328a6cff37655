//! Writing outputs without losing data: the workspace's one atomic write ([`::fsio`]), and
//! JSON through it.

pub use ::fsio::{IoError, write_atomic};

/// Writes `value` as pretty JSON to `path` atomically.
pub fn write_json_atomic<T: serde::Serialize>(
    path: &std::path::Path,
    value: &T,
) -> Result<(), IoError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| IoError::new("serialize", path, std::io::Error::other(e)))?;
    write_atomic(path, (text + "\n").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_written_pretty_with_a_final_newline() {
        let dir = std::env::temp_dir().join(format!("qnas-fsio-{}", std::process::id()));
        let path = dir.join("out.json");
        write_json_atomic(&path, &serde_json::json!({"a": [1, 2]})).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "{\n  \"a\": [\n    1,\n    2\n  ]\n}\n");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
