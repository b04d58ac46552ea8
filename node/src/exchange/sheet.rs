//! Reading a spreadsheet row by row: the first row holds the headers, each later row one record.
//!
//! CSV is streamed (the `csv` crate reads a record at a time, so a 100,000-row file never sits in memory). Text
//! that is not UTF-8 is read as GB18030, the superset of GBK that Excel on a Chinese Windows saves "CSV" in; a
//! UTF-8 byte-order mark is dropped. An .xlsx workbook is read with calamine, which loads one sheet's cells at a
//! time: the first sheet is held in memory while its rows are handed out (for 100,000 rows of ten columns, some
//! tens of MB). Excel dates become `YYYY-MM-DD HH:MM:SS` text, whole numbers lose their `.0`.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use calamine::{Data, Reader};

/// Why a spreadsheet could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SheetError {
    #[error("{path}: {message}")]
    Open { path: String, message: String },
    #[error("{path}: row {row}: {message}")]
    Row { path: String, row: u64, message: String },
    #[error("{path}: the file has no header row")]
    NoHeader { path: String },
    #[error("{path}: only .csv and .xlsx files can be read")]
    Format { path: String },
}

enum Source {
    Csv(csv::Reader<BufReader<File>>),
    Xlsx { range: calamine::Range<Data>, next: usize },
}

/// The rows of one spreadsheet, after its header row.
pub struct SheetReader {
    path: String,
    source: Source,
    headers: Vec<String>,
    /// Bytes (CSV) or rows (.xlsx) in all, for progress.
    total: u64,
    record: csv::ByteRecord,
}

/// One row: its number in the file (the header is row 1) and its cells as text, trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SheetRow {
    pub number: u64,
    pub cells: Vec<String>,
}

fn text_of(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_string(),
        Err(_) => encoding_rs::GB18030.decode_without_bom_handling(bytes).0.into_owned(),
    }
}

fn cell_text(data: &Data) -> String {
    match data {
        Data::Empty | Data::Error(_) => String::new(),
        Data::String(text) | Data::DateTimeIso(text) | Data::DurationIso(text) => text.clone(),
        Data::Int(number) => number.to_string(),
        Data::Float(number) if number.fract() == 0.0 && number.abs() < 1e15 => format!("{}", *number as i64),
        Data::Float(number) => number.to_string(),
        Data::Bool(value) => value.to_string(),
        Data::DateTime(date) => match date.as_datetime() {
            Some(time) if time.time() == chrono::NaiveTime::MIN => time.format("%Y-%m-%d").to_string(),
            Some(time) => time.format("%Y-%m-%d %H:%M:%S").to_string(),
            None => date.as_f64().to_string(),
        },
    }
}

impl SheetReader {
    /// Opens `path` (.csv or .xlsx by its extension) and reads its header row.
    pub fn open(path: &Path) -> Result<SheetReader, SheetError> {
        let shown = path.display().to_string();
        let open_error = |message: String| SheetError::Open { path: shown.clone(), message };
        let extension = path.extension().and_then(|ext| ext.to_str()).map(str::to_ascii_lowercase);
        let (source, headers, total) = match extension.as_deref() {
            Some("csv") => {
                let total = std::fs::metadata(path).map_err(|error| open_error(error.to_string()))?.len();
                let file = File::open(path).map_err(|error| open_error(error.to_string()))?;
                let mut reader = csv::ReaderBuilder::new()
                    .has_headers(false)
                    .flexible(true)
                    .from_reader(BufReader::with_capacity(1 << 16, file));
                let mut header = csv::ByteRecord::new();
                let read = reader.read_byte_record(&mut header).map_err(|error| open_error(error.to_string()))?;
                if !read {
                    return Err(SheetError::NoHeader { path: shown });
                }
                let headers = header
                    .iter()
                    .enumerate()
                    .map(|(index, bytes)| {
                        let bytes =
                            if index == 0 { bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes) } else { bytes };
                        text_of(bytes).trim().to_string()
                    })
                    .collect();
                (Source::Csv(reader), headers, total)
            }
            Some("xlsx") | Some("xlsm") | Some("xls") | Some("ods") => {
                let mut workbook = calamine::open_workbook_auto(path).map_err(|error| open_error(error.to_string()))?;
                let range = workbook
                    .worksheet_range_at(0)
                    .ok_or_else(|| open_error("the workbook has no sheet".into()))?
                    .map_err(|error| open_error(error.to_string()))?;
                let Some(first) = range.rows().next() else {
                    return Err(SheetError::NoHeader { path: shown });
                };
                let headers = first.iter().map(|cell| cell_text(cell).trim().to_string()).collect();
                let total = range.height() as u64;
                (Source::Xlsx { range, next: 1 }, headers, total)
            }
            _ => return Err(SheetError::Format { path: shown }),
        };
        Ok(SheetReader { path: shown, source, headers, total, record: csv::ByteRecord::new() })
    }

    pub fn headers(&self) -> &[String] {
        &self.headers
    }

    /// How far the reading is, from 0 to 1 (by bytes for CSV, by rows for .xlsx).
    pub fn fraction_done(&self) -> f64 {
        let done = match &self.source {
            Source::Csv(reader) => reader.position().byte(),
            Source::Xlsx { next, .. } => *next as u64,
        };
        if self.total == 0 { 1.0 } else { (done as f64 / self.total as f64).min(1.0) }
    }

    /// The next row, or `None` at the end. Rows whose cells are all empty are skipped.
    pub fn next_row(&mut self) -> Result<Option<SheetRow>, SheetError> {
        loop {
            let row = match &mut self.source {
                Source::Csv(reader) => {
                    let read = reader.read_byte_record(&mut self.record).map_err(|error| SheetError::Row {
                        path: self.path.clone(),
                        row: error.position().map(|position| position.line()).unwrap_or_default(),
                        message: error.to_string(),
                    })?;
                    if !read {
                        return Ok(None);
                    }
                    let number = self.record.position().map(|position| position.line()).unwrap_or_default();
                    SheetRow {
                        number,
                        cells: self.record.iter().map(|bytes| text_of(bytes).trim().to_string()).collect(),
                    }
                }
                Source::Xlsx { range, next } => {
                    if *next >= range.height() {
                        return Ok(None);
                    }
                    let width = range.width();
                    let cells = (0..width)
                        .map(|column| range.get((*next, column)).map(cell_text).unwrap_or_default().trim().to_string())
                        .collect();
                    // Sheet rows are 1-based and the range may start below row 1.
                    let first_row = range.start().map(|(row, _)| u64::from(row)).unwrap_or(0);
                    let number = first_row + *next as u64 + 1;
                    *next += 1;
                    SheetRow { number, cells }
                }
            };
            if row.cells.iter().any(|cell| !cell.is_empty()) {
                return Ok(Some(row));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gbk_text_is_read_as_gb18030() {
        // "张三" in GBK.
        assert_eq!(text_of(&[0xD5, 0xC5, 0xC8, 0xFD]), "张三");
        assert_eq!(text_of("张三".as_bytes()), "张三");
    }

    #[test]
    fn csv_rows_keep_their_file_line_numbers() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let path = dir.path().join("rows.csv");
        std::fs::write(&path, "\u{FEFF}姓名,手机号\n张三,13800138000\n,\n李四,13900139000\n").expect("written");
        let mut reader = SheetReader::open(&path).expect("opens");
        assert_eq!(reader.headers(), ["姓名", "手机号"]);
        let first = reader.next_row().expect("reads").expect("a row");
        assert_eq!((first.number, first.cells[0].as_str()), (2, "张三"));
        let second = reader.next_row().expect("reads").expect("a row");
        assert_eq!((second.number, second.cells[0].as_str()), (4, "李四"));
        assert!(reader.next_row().expect("reads").is_none());
    }
}
