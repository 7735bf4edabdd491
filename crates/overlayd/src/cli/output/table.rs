//! Aligned text tables: columns as wide as their widest cell, two spaces
//! apart, no trailing blanks.

/// One column of a list: its header and how to print a cell.
pub struct Column<T> {
    /// Header, upper case by convention.
    pub header: &'static str,
    /// The cell text for one item.
    pub cell: fn(&T) -> String,
}

/// Render headers and rows as aligned lines.
pub fn render_table(headers: &[&str], rows: &[Vec<String>]) -> Vec<String> {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let render = |cells: &[&str]| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            s.push_str(c);
            if i + 1 < cells.len() {
                let w = widths.get(i).copied().unwrap_or(0);
                let pad = w.saturating_sub(c.chars().count());
                s.extend(std::iter::repeat_n(' ', pad + 2));
            }
        }
        s.trim_end().to_string()
    };
    let mut out = vec![render(headers)];
    for r in rows {
        let cells: Vec<&str> = r.iter().map(String::as_str).collect();
        out.push(render(&cells));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_to_the_widest_cell() {
        let lines = render_table(
            &["NAME", "SUBNET"],
            &[
                vec!["db".into(), "10.0.0.0/24".into()],
                vec!["frontend".into(), "-".into()],
            ],
        );
        assert_eq!(
            lines,
            vec!["NAME      SUBNET", "db        10.0.0.0/24", "frontend  -",]
        );
    }

    #[test]
    fn non_ascii_cells_count_characters_not_bytes() {
        let lines = render_table(&["A", "B"], &[vec!["é".into(), "x".into()]]);
        assert_eq!(lines[1], "é  x");
    }
}
