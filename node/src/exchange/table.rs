//! Tables as rows of typed cells, and writing them as CSV, .xlsx or JSON Lines: one model for `ecovol export`,
//! the national-platform files and (later) the web console's downloads.
//!
//! Headers are Chinese for the office (`Language::Zh`), English on request; JSON Lines objects are keyed by the
//! column's stable `key`. CSV starts with a UTF-8 byte-order mark, which Excel needs to read Chinese text. Times
//! are China Standard Time to the second in CSV and .xlsx (what the office reads), RFC 3339 UTC in JSON Lines.
//! Hours are kept as hundredths (`Cell::Hours`) and printed as exact decimals (`3.25`), never through floating
//! point except the .xlsx number itself (two decimals, exact to the hundredth).
//!
//! CSV and JSON Lines are written row by row; an .xlsx sheet is held in memory until `finish` (rust_xlsxwriter's
//! default mode), which is fine for a county's tables (about 40 bytes a cell).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde_json::{Map, Value};

/// Rows an .xlsx sheet can hold, the header included (Excel's limit).
pub const XLSX_ROWS_MAX: u32 = 1_048_576;

/// One cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Empty,
    Text(String),
    Integer(i64),
    /// Hours in hundredths, shown as a decimal with two places.
    Hours(u64),
    Bool(bool),
    Date(NaiveDate),
    Time(DateTime<Utc>),
}

impl Cell {
    pub fn text(value: impl Into<String>) -> Cell {
        let value = value.into();
        if value.is_empty() { Cell::Empty } else { Cell::Text(value) }
    }

    pub fn time(value: Option<DateTime<Utc>>) -> Cell {
        value.map(Cell::Time).unwrap_or(Cell::Empty)
    }

    /// The cell as text for CSV and .xlsx text cells.
    pub fn display(&self, language: Language) -> String {
        match self {
            Cell::Empty => String::new(),
            Cell::Text(text) => text.clone(),
            Cell::Integer(number) => number.to_string(),
            Cell::Hours(hundredths) => format_hours(*hundredths),
            Cell::Bool(value) => match (language, value) {
                (Language::Zh, true) => "是".into(),
                (Language::Zh, false) => "否".into(),
                (Language::En, true) => "yes".into(),
                (Language::En, false) => "no".into(),
            },
            Cell::Date(date) => date.format("%Y-%m-%d").to_string(),
            Cell::Time(time) => time.with_timezone(&crate::wire::china()).format("%Y-%m-%d %H:%M:%S").to_string(),
        }
    }

    /// The cell as a JSON value for JSON Lines.
    pub fn to_json(&self) -> Value {
        match self {
            Cell::Empty => Value::Null,
            Cell::Text(text) => Value::String(text.clone()),
            Cell::Integer(number) => Value::from(*number),
            Cell::Hours(hundredths) => Value::String(format_hours(*hundredths)),
            Cell::Bool(value) => Value::Bool(*value),
            Cell::Date(date) => Value::String(date.format("%Y-%m-%d").to_string()),
            Cell::Time(time) => Value::String(time.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
        }
    }
}

/// Hundredths of an hour as an exact decimal: 325 → "3.25".
pub fn format_hours(hundredths: u64) -> String {
    format!("{}.{:02}", hundredths / 100, hundredths % 100)
}

/// A column: its stable key (JSON, `--mapping`) and its headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    pub key: &'static str,
    pub zh: &'static str,
    pub en: &'static str,
}

impl Column {
    pub const fn new(key: &'static str, zh: &'static str, en: &'static str) -> Column {
        Column { key, zh, en }
    }

    pub fn header(&self, language: Language) -> &'static str {
        match language {
            Language::Zh => self.zh,
            Language::En => self.en,
        }
    }
}

/// The language of headers and yes/no cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Language {
    /// Chinese (中文), the default.
    #[default]
    Zh,
    /// English.
    En,
}

/// The file format of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Comma-separated values, UTF-8 with a byte-order mark.
    Csv,
    /// An Excel workbook with one sheet.
    Xlsx,
    /// One JSON object per line, keyed by the column keys.
    Jsonl,
}

impl Format {
    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Xlsx => "xlsx",
            Format::Jsonl => "jsonl",
        }
    }

    /// The format a file name's extension names, if any.
    pub fn of_path(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "csv" => Some(Format::Csv),
            "xlsx" => Some(Format::Xlsx),
            "jsonl" => Some(Format::Jsonl),
            _ => None,
        }
    }
}

/// Why a table could not be written.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path}: {message}")]
    Xlsx { path: String, message: String },
    #[error("{path}: a row has {found} cells, the table has {expected} columns")]
    Width { path: String, expected: usize, found: usize },
    #[error("{path}: more than {} rows do not fit in one .xlsx sheet: use --format csv", XLSX_ROWS_MAX - 1)]
    TooManyRows { path: String },
}

enum Sink {
    Csv(Box<csv::Writer<BufWriter<File>>>),
    Jsonl(BufWriter<File>),
    Xlsx(Box<rust_xlsxwriter::Workbook>),
}

/// Writes one table to one file, row by row.
pub struct TableWriter {
    path: PathBuf,
    columns: Vec<Column>,
    language: Language,
    sink: Sink,
    rows_written: u32,
}

impl TableWriter {
    /// Creates `path` (replacing it) and writes the header row (none for JSON Lines). `sheet` names the .xlsx sheet.
    pub fn create(
        path: &Path,
        format: Format,
        columns: &[Column],
        language: Language,
        sheet: &str,
    ) -> Result<TableWriter, TableError> {
        let io = |source| TableError::Io { path: path.display().to_string(), source };
        let xlsx = |error: rust_xlsxwriter::XlsxError| TableError::Xlsx {
            path: path.display().to_string(),
            message: error.to_string(),
        };
        let sink = match format {
            Format::Csv => {
                let mut file = BufWriter::new(File::create(path).map_err(io)?);
                file.write_all("\u{FEFF}".as_bytes()).map_err(io)?;
                let mut writer = csv::Writer::from_writer(file);
                writer.write_record(columns.iter().map(|column| column.header(language))).map_err(|error| {
                    TableError::Io { path: path.display().to_string(), source: std::io::Error::other(error) }
                })?;
                Sink::Csv(Box::new(writer))
            }
            Format::Jsonl => Sink::Jsonl(BufWriter::new(File::create(path).map_err(io)?)),
            Format::Xlsx => {
                let mut workbook = rust_xlsxwriter::Workbook::new();
                let bold = rust_xlsxwriter::Format::new().set_bold();
                let worksheet = workbook.add_worksheet();
                worksheet.set_name(sheet).map_err(xlsx)?;
                for (index, column) in columns.iter().enumerate() {
                    worksheet
                        .write_string_with_format(0, index as u16, column.header(language), &bold)
                        .map_err(xlsx)?;
                    let width = column.header(language).chars().count().max(8) as f64 * 1.6;
                    worksheet.set_column_width(index as u16, width).map_err(xlsx)?;
                }
                Sink::Xlsx(Box::new(workbook))
            }
        };
        Ok(TableWriter { path: path.to_path_buf(), columns: columns.to_vec(), language, sink, rows_written: 0 })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Rows written so far, the header not counted.
    pub fn rows_written(&self) -> u32 {
        self.rows_written
    }

    /// Writes one row; it must have one cell per column.
    pub fn write_row(&mut self, row: &[Cell]) -> Result<(), TableError> {
        let path = || self.path.display().to_string();
        if row.len() != self.columns.len() {
            return Err(TableError::Width { path: path(), expected: self.columns.len(), found: row.len() });
        }
        let language = self.language;
        match &mut self.sink {
            Sink::Csv(writer) => writer
                .write_record(row.iter().map(|cell| cell.display(language)))
                .map_err(|error| TableError::Io { path: path(), source: std::io::Error::other(error) })?,
            Sink::Jsonl(file) => {
                let object: Map<String, Value> = self
                    .columns
                    .iter()
                    .zip(row)
                    .map(|(column, cell)| (column.key.to_string(), cell.to_json()))
                    .collect();
                let mut line = serde_json::to_vec(&Value::Object(object)).unwrap_or_default();
                line.push(b'\n');
                file.write_all(&line).map_err(|source| TableError::Io { path: path(), source })?;
            }
            Sink::Xlsx(workbook) => {
                let row_number = self.rows_written + 1;
                if row_number >= XLSX_ROWS_MAX {
                    return Err(TableError::TooManyRows { path: path() });
                }
                let xlsx =
                    |error: rust_xlsxwriter::XlsxError| TableError::Xlsx { path: path(), message: error.to_string() };
                let hours = rust_xlsxwriter::Format::new().set_num_format("0.00");
                let worksheet = workbook.worksheet_from_index(0).map_err(xlsx)?;
                for (index, cell) in row.iter().enumerate() {
                    let column = index as u16;
                    match cell {
                        Cell::Empty => {}
                        Cell::Integer(number) => {
                            worksheet.write_number(row_number, column, *number as f64).map_err(xlsx)?;
                        }
                        Cell::Hours(hundredths) => {
                            worksheet
                                .write_number_with_format(row_number, column, *hundredths as f64 / 100.0, &hours)
                                .map_err(xlsx)?;
                        }
                        other => {
                            worksheet.write_string(row_number, column, other.display(language)).map_err(xlsx)?;
                        }
                    }
                }
            }
        }
        self.rows_written += 1;
        Ok(())
    }

    /// Finishes the file (an .xlsx workbook is saved only now).
    pub fn finish(self) -> Result<PathBuf, TableError> {
        let path = self.path.display().to_string();
        match self.sink {
            Sink::Csv(mut writer) => {
                writer.flush().map_err(|source| TableError::Io { path: path.clone(), source })?;
            }
            Sink::Jsonl(mut file) => file.flush().map_err(|source| TableError::Io { path: path.clone(), source })?,
            Sink::Xlsx(mut workbook) => workbook
                .save(&self.path)
                .map_err(|error| TableError::Xlsx { path: path.clone(), message: error.to_string() })?,
        }
        Ok(self.path)
    }
}

/// Writes a whole table at once.
pub fn write_table(
    path: &Path,
    format: Format,
    columns: &[Column],
    rows: &[Vec<Cell>],
    language: Language,
    sheet: &str,
) -> Result<PathBuf, TableError> {
    let mut writer = TableWriter::create(path, format, columns, language, sheet)?;
    for row in rows {
        writer.write_row(row)?;
    }
    writer.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_print_exactly() {
        for (hundredths, text) in [(0, "0.00"), (5, "0.05"), (325, "3.25"), (100_000, "1000.00")] {
            assert_eq!(format_hours(hundredths), text);
        }
    }

    #[test]
    fn cells_print_for_people_and_for_machines() {
        let time = DateTime::parse_from_rfc3339("2026-03-05T01:30:00Z").map(|time| time.to_utc()).unwrap_or_default();
        assert_eq!(Cell::Time(time).display(Language::Zh), "2026-03-05 09:30:00");
        assert_eq!(Cell::Time(time).to_json(), Value::String("2026-03-05T01:30:00Z".into()));
        assert_eq!(Cell::Bool(true).display(Language::Zh), "是");
        assert_eq!(Cell::Bool(false).display(Language::En), "no");
        assert_eq!(Cell::Hours(325).to_json(), Value::String("3.25".into()));
        assert_eq!(Cell::text(""), Cell::Empty);
    }
}
