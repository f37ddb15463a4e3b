//! `list`'s table, as runc prints it.

/// Formats `list` as runc's table (tabwriter: min width 12, padding 3).
pub fn list_table(list: &[serde_json::Value]) -> String {
    let mut rows = vec![vec![
        "ID".to_string(),
        "PID".into(),
        "STATUS".into(),
        "BUNDLE".into(),
        "CREATED".into(),
        "OWNER".into(),
    ]];
    for c in list {
        let s = |k: &str| {
            c[k].as_str()
                .map(String::from)
                .unwrap_or_else(|| c[k].to_string())
        };
        rows.push(vec![
            s("id"),
            s("pid"),
            s("status"),
            s("bundle"),
            s("created"),
            s("owner"),
        ]);
    }
    let cols = rows[0].len();
    let widths: Vec<usize> = (0..cols)
        .map(|i| {
            rows.iter()
                .map(|r| r[i].len() + 3)
                .max()
                .unwrap_or(0)
                .max(12)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        for (i, cell) in r.iter().enumerate() {
            if i + 1 == cols {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}", w = widths[i]));
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let t = list_table(&[
            serde_json::json!({"id":"a","pid":1,"status":"running","bundle":"/b","created":"T","owner":"root"}),
        ]);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("ID          PID         STATUS"));
        assert!(lines[1].starts_with("a           1           running"));
    }
}
