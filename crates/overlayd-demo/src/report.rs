//! Progress lines while the demo runs and the aligned table at the end.

/// One check's outcome.
#[derive(Debug, Clone)]
pub struct Row {
    /// Check name.
    pub name: String,
    /// Whether it held.
    pub passed: bool,
    /// What was measured.
    pub detail: String,
}

/// Collects check results and prints progress as it goes.
#[derive(Debug, Default)]
pub struct Report {
    rows: Vec<Row>,
}

impl Report {
    /// A progress line for a setup step.
    pub fn step(&self, msg: impl AsRef<str>) {
        println!("  • {}", msg.as_ref());
    }

    /// Record a check and print its progress line.
    pub fn check(&mut self, name: &str, passed: bool, detail: impl Into<String>) {
        let detail = detail.into();
        let mark = if passed { "✓" } else { "✗" };
        println!("  {mark} {name}: {detail}");
        self.rows.push(Row {
            name: name.to_string(),
            passed,
            detail,
        });
    }

    /// Record a passing check.
    pub fn pass(&mut self, name: &str, detail: impl Into<String>) {
        self.check(name, true, detail);
    }

    /// Record a failing check.
    pub fn fail(&mut self, name: &str, detail: impl Into<String>) {
        self.check(name, false, detail);
    }

    /// True when at least one check ran and none failed.
    pub fn all_passed(&self) -> bool {
        !self.rows.is_empty() && self.rows.iter().all(|r| r.passed)
    }

    /// Number of checks that failed.
    pub fn failed(&self) -> usize {
        self.rows.iter().filter(|r| !r.passed).count()
    }

    /// Number of checks recorded.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// The final table, markdown style, columns aligned.
    pub fn table(&self) -> String {
        let head = ["check", "result", "measured"];
        let cells: Vec<[String; 3]> = self
            .rows
            .iter()
            .map(|r| {
                [
                    r.name.clone(),
                    if r.passed { "pass" } else { "FAIL" }.to_string(),
                    one_line(&r.detail),
                ]
            })
            .collect();
        let mut width = head.map(|h| h.chars().count());
        for row in &cells {
            for (w, c) in width.iter_mut().zip(row) {
                *w = (*w).max(c.chars().count());
            }
        }
        let line = |cols: [&str; 3]| {
            let mut s = String::from("|");
            for (c, w) in cols.iter().zip(width) {
                let pad = w - c.chars().count();
                s.push_str(&format!(" {c}{} |", " ".repeat(pad)));
            }
            s.push('\n');
            s
        };
        let mut out = line(head);
        out.push('|');
        for w in width {
            out.push_str(&format!("{}|", "-".repeat(w + 2)));
        }
        out.push('\n');
        for row in &cells {
            out.push_str(&line([&row[0], &row[1], &row[2]]));
        }
        out
    }
}

/// Longest "measured" cell in the table; the progress line has it all.
const MAX_DETAIL: usize = 130;

/// The first line of `s`, cut at [`MAX_DETAIL`] characters.
fn one_line(s: &str) -> String {
    let first = s.lines().next().unwrap_or("");
    let mut out: String = first.chars().take(MAX_DETAIL).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_aligned_and_counts_failures() {
        let mut r = Report::default();
        assert!(!r.all_passed(), "no check is not a pass");
        r.pass("base overlay n1→n2", "1.2 s");
        r.fail("dns", "no answer from 10.211.0.1\nsecond line");
        let t = r.table();
        let lens: Vec<usize> = t.lines().map(|l| l.chars().count()).collect();
        assert_eq!(lens.len(), 4);
        assert!(lens.iter().all(|l| *l == lens[0]), "{t}");
        assert!(t.contains("| FAIL "));
        assert!(t.contains("10.211.0.1…"), "{t}");
        assert_eq!(r.failed(), 1);
        assert!(!r.all_passed());
    }
}
