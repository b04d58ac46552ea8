//! What the command line prints: records as `key: value` lines or JSON, lists as aligned columns or JSON, notes and
//! errors on standard error.
//!
//! Timestamps are RFC 3339: in UTC with full precision in JSON, in China Standard Time to the second in tables.
//!
//! Names are Chinese more often than not, and a CJK character takes two terminal columns: columns are padded by
//! display width, not by `char` count, or every row after a Chinese name would drift.

use std::io::Write;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};

/// How results are printed (`--output`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns for lists, `key: value` lines for single records.
    #[default]
    Table,
    /// The response message as JSON (enum values by name, timestamps in RFC 3339).
    Json,
}

/// One record as named fields, in the order they are shown. The single source for both output formats.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Record(Vec<(&'static str, Value)>);

impl Record {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a field.
    pub fn field(mut self, name: &'static str, value: impl Into<Value>) -> Self {
        self.0.push((name, value.into()));
        self
    }

    /// The value of field `name`, if present.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.iter().find(|(field, _)| *field == name).map(|(_, value)| value)
    }

    /// The record as a JSON object.
    pub fn to_json(&self) -> Value {
        Value::Object(self.0.iter().map(|(name, value)| (name.to_string(), value.clone())).collect::<Map<_, _>>())
    }
}

/// A wire timestamp as RFC 3339 in UTC (`null` if unset or out of range).
pub fn timestamp(time: Option<&prost_types::Timestamp>) -> Value {
    time.and_then(|time| {
        let nanos = u32::try_from(time.nanos).ok()?;
        DateTime::<Utc>::from_timestamp(time.seconds, nanos)
    })
    .map(|time| Value::String(time.to_rfc3339_opts(SecondsFormat::AutoSi, true)))
    .unwrap_or(Value::Null)
}

/// An optional name (`null` when absent).
pub fn name(value: Option<String>) -> Value {
    value.map(Value::String).unwrap_or(Value::Null)
}

/// A string that may be empty on the wire (`null` when empty).
pub fn optional(text: &str) -> Value {
    if text.is_empty() { Value::Null } else { Value::String(text.to_string()) }
}

/// A JSON value as one table cell.
fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::Bool(true) => "yes".into(),
        Value::Bool(false) => "no".into(),
        Value::Number(number) => number.to_string(),
        Value::String(text) if text.is_empty() => "-".into(),
        Value::String(text) => match DateTime::parse_from_rfc3339(text) {
            // Timestamps: to the second, in China Standard Time, for the people at the office.
            Ok(time) => time.with_timezone(&crate::wire::china()).to_rfc3339_opts(SecondsFormat::Secs, true),
            Err(_) => text.replace(['\n', '\t'], " "),
        },
        Value::Array(items) if items.is_empty() => "-".into(),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(", "),
        Value::Object(fields) => {
            fields.iter().map(|(name, value)| format!("{name}={}", cell(value))).collect::<Vec<_>>().join(" ")
        }
    }
}

/// Terminal columns taken by `c`: 2 for the CJK and full-width ranges, 1 otherwise.
fn char_width(c: char) -> usize {
    match u32::from(c) {
        0x1100..=0x115F
        | 0x2E80..=0xA4CF
        | 0xAC00..=0xD7A3
        | 0xF900..=0xFAFF
        | 0xFE30..=0xFE4F
        | 0xFF00..=0xFF60
        | 0xFFE0..=0xFFE6 => 2,
        _ => 1,
    }
}

/// Terminal columns taken by `text`.
pub fn display_width(text: &str) -> usize {
    text.chars().map(char_width).sum()
}

/// `text` followed by spaces up to `width` display columns (unchanged if already as wide).
pub fn pad(text: &str, width: usize) -> String {
    let mut padded = text.to_string();
    padded.extend(std::iter::repeat_n(' ', width.saturating_sub(display_width(text))));
    padded
}

/// Renders rows as columns separated by two spaces; the last column is not padded.
pub fn render_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|header| display_width(header)).collect();
    for row in rows {
        for (width, text) in widths.iter_mut().zip(row) {
            *width = (*width).max(display_width(text));
        }
    }
    let mut rendered = String::new();
    let header_row: Vec<String> = headers.iter().map(|header| header.to_string()).collect();
    for row in std::iter::once(&header_row).chain(rows) {
        let last = row.len().saturating_sub(1);
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(index, text)| if index == last { text.clone() } else { pad(text, widths[index]) })
            .collect();
        rendered.push_str(line.join("  ").trim_end());
        rendered.push('\n');
    }
    rendered
}

/// Renders a record as `key: value` lines with the values aligned.
pub fn render_record(record: &Record) -> String {
    let width = record.0.iter().map(|(name, _)| display_width(name)).max().unwrap_or(0);
    let mut rendered = String::new();
    for (name, value) in &record.0 {
        rendered.push_str(&pad(&format!("{name}:"), width + 1));
        rendered.push(' ');
        rendered.push_str(&cell(value));
        rendered.push('\n');
    }
    rendered
}

/// Where results and notes go. Writes that fail (a closed pipe) are ignored: there is nobody left to tell.
pub struct Console<'a> {
    out: &'a mut (dyn Write + Send),
    err: &'a mut (dyn Write + Send),
    format: OutputFormat,
}

impl<'a> Console<'a> {
    pub fn new(out: &'a mut (dyn Write + Send), err: &'a mut (dyn Write + Send), format: OutputFormat) -> Self {
        Self { out, err, format }
    }

    pub fn is_json(&self) -> bool {
        self.format == OutputFormat::Json
    }

    /// Prints text on standard output as is.
    pub fn print(&mut self, text: &str) {
        let _ = self.out.write_all(text.as_bytes());
    }

    /// Prints a line on standard error: warnings, hints, errors.
    pub fn note(&mut self, text: &str) {
        let _ = writeln!(self.err, "{text}");
    }

    /// Prints `value` as pretty JSON.
    pub fn json(&mut self, value: &Value) {
        let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
        let _ = writeln!(self.out, "{text}");
    }

    /// Prints a response holding one record: `{"<key>": {...}}` as JSON, else `key: value` lines.
    pub fn single(&mut self, key: &str, record: &Record) {
        if self.is_json() {
            self.json(&serde_json::json!({ key: record.to_json() }));
        } else {
            self.print(&render_record(record));
        }
    }

    /// Prints a response holding a page of records: `{"<key>": [...], "next_page_token": ...}` as JSON, else a
    /// table of `columns` (field names) and, if more pages remain, a hint on standard error.
    pub fn list(&mut self, key: &str, records: &[Record], columns: &[&'static str], next_page_token: &str) {
        if self.is_json() {
            let items: Vec<Value> = records.iter().map(Record::to_json).collect();
            self.json(&serde_json::json!({ key: items, "next_page_token": next_page_token }));
            return;
        }
        if records.is_empty() {
            self.print(&format!("(no {})\n", key.replace('_', " ")));
        } else {
            let headers: Vec<String> = columns.iter().map(|column| column.to_ascii_uppercase()).collect();
            let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
            let rows: Vec<Vec<String>> = records
                .iter()
                .map(|record| {
                    columns.iter().map(|column| record.get(column).map(cell).unwrap_or_else(|| "-".into())).collect()
                })
                .collect();
            self.print(&render_table(&headers, &rows));
        }
        if !next_page_token.is_empty() {
            self.note(&format!(
                "more results: add --page-token {next_page_token} for the next page, or --all for every page"
            ));
        }
    }

    /// Prints warnings from a response on standard error (also with `--output json`, which includes them too).
    pub fn warnings(&mut self, warnings: &[String]) {
        for warning in warnings {
            self.note(&format!("warning: {warning}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn width_counts_cjk_as_two_columns() {
        assert_eq!(display_width("abc"), 3);
        assert_eq!(display_width("张三"), 4);
        assert_eq!(display_width("西湖区 ok"), 9);
        assert_eq!(display_width("ｆｕｌｌ"), 8); // full-width Latin, U+FF00..U+FF60
        assert_eq!(display_width("한"), 2); // Hangul syllable
        assert_eq!(display_width("é"), 1);
    }

    #[test]
    fn pad_fills_by_display_width() {
        assert_eq!(pad("张三", 6), "张三  ");
        assert_eq!(pad("ab", 6), "ab    ");
        assert_eq!(pad("张三丰", 4), "张三丰");
    }

    #[test]
    fn table_columns_line_up_with_cjk_names() {
        let rendered = render_table(
            &["NAME", "PHONE"],
            &[
                vec!["张三".into(), "13800138000".into()],
                vec!["Li Si".into(), "13900139000".into()],
                vec!["欧阳娜娜".into(), "-".into()],
            ],
        );
        let lines: Vec<&str> = rendered.lines().collect();
        assert_eq!(lines[0], "NAME      PHONE");
        assert_eq!(lines[1], "张三      13800138000");
        assert_eq!(lines[2], "Li Si     13900139000");
        assert_eq!(lines[3], "欧阳娜娜  -");
        // Every second column starts at the same display column.
        for line in &lines {
            let (first, _) = line.split_at(line.rfind("  ").map(|at| at + 2).unwrap_or(0));
            assert_eq!(display_width(first), 10);
        }
    }

    #[test]
    fn record_lines_are_aligned_and_empty_values_shown_as_dash() {
        let record = Record::new()
            .field("name", "张三")
            .field("volunteer_number", "330106-00000001")
            .field("skills", Value::Array(vec![]))
            .field("self_supporting", false);
        assert_eq!(
            render_record(&record),
            "name:             张三\n\
             volunteer_number: 330106-00000001\n\
             skills:           -\n\
             self_supporting:  no\n"
        );
    }

    #[test]
    fn table_timestamps_are_china_time_to_the_second() {
        let record = Record::new().field(
            "created_at",
            timestamp(Some(&prost_types::Timestamp { seconds: 1_700_000_000, nanos: 123_456_789 })),
        );
        assert_eq!(record.to_json()["created_at"], "2023-11-14T22:13:20.123456789Z");
        assert_eq!(render_record(&record), "created_at: 2023-11-15T06:13:20+08:00\n");
    }

    #[test]
    fn timestamps_print_as_rfc3339_utc() {
        let time = prost_types::Timestamp { seconds: 1_700_000_000, nanos: 0 };
        assert_eq!(timestamp(Some(&time)), Value::String("2023-11-14T22:13:20Z".into()));
        assert_eq!(timestamp(None), Value::Null);
    }
}
