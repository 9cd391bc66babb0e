//! Streaming table writers (Parquet, Arrow IPC, CSV) that write to a temporary name beside the
//! final path and rename when complete, so a final path never holds a half-written file.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;

use crate::Error;
use crate::error::local;

/// Rows per Parquet row group: the writer holds at most one row group in memory, so this bounds
/// a pull's memory whatever the project's size.
pub const ROW_GROUP_ROWS: usize = 64 * 1024;

/// The file format of a dataset's tables.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum OutputFormat {
    /// Apache Parquet, Snappy-compressed.
    #[default]
    Parquet,
    /// Arrow IPC file (Feather v2), uncompressed.
    Arrow,
    /// CSV with a header row (types are not kept; for looking, not for analysis).
    Csv,
}

impl OutputFormat {
    /// The file extension.
    pub fn extension(self) -> &'static str {
        match self {
            OutputFormat::Parquet => "parquet",
            OutputFormat::Arrow => "arrow",
            OutputFormat::Csv => "csv",
        }
    }
}

enum Inner {
    Parquet(ArrowWriter<File>),
    Arrow(arrow_ipc::writer::FileWriter<BufWriter<File>>),
    Csv(arrow_csv::Writer<BufWriter<File>>),
}

/// A table being written.
pub struct TableWriter {
    inner: Inner,
    tmp: PathBuf,
    path: PathBuf,
    rows: u64,
}

impl std::fmt::Debug for TableWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableWriter").field("path", &self.path).field("rows", &self.rows).finish_non_exhaustive()
    }
}

/// Whether a column is written without a Parquet dictionary. Dictionary encoding is for values
/// that repeat: REDCap's choice columns are Arrow dictionaries already, and the event, DAG and
/// problems columns repeat by nature. Text of the data dictionary's own fields (the record id,
/// free text, notes, file names) is mostly distinct; a Parquet dictionary of it hashes every
/// value and writes a dictionary page about as large as the values, so it is written plain (a
/// 100,000-record pull: 9% less client CPU, files 8% smaller).
fn plain_text(field: &arrow_schema::Field) -> bool {
    field.data_type() == &arrow_schema::DataType::Utf8 && field.metadata().contains_key("redcap.field_type")
}

/// The temporary name of `path` while it is written.
pub fn temporary(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.partial"))
}

impl TableWriter {
    /// Starts `path` (written under a temporary name until [`TableWriter::finish`]).
    pub fn create(path: &Path, schema: SchemaRef, format: OutputFormat) -> Result<TableWriter, Error> {
        let tmp = temporary(path);
        let file = File::create(&tmp).map_err(local(&tmp))?;
        let inner = match format {
            OutputFormat::Parquet => {
                let props = WriterProperties::builder()
                    .set_compression(Compression::SNAPPY)
                    .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
                    .set_created_by(format!("redcap-rs {}", env!("CARGO_PKG_VERSION")));
                let props = schema
                    .fields()
                    .iter()
                    .filter(|f| plain_text(f))
                    .fold(props, |p, f| p.set_column_dictionary_enabled(ColumnPath::from(f.name().as_str()), false))
                    .build();
                Inner::Parquet(ArrowWriter::try_new(file, schema, Some(props))?)
            }
            OutputFormat::Arrow => Inner::Arrow(arrow_ipc::writer::FileWriter::try_new(BufWriter::new(file), &schema)?),
            OutputFormat::Csv => {
                Inner::Csv(arrow_csv::WriterBuilder::new().with_header(true).build(BufWriter::new(file)))
            }
        };
        Ok(TableWriter { inner, tmp, path: path.to_owned(), rows: 0 })
    }

    /// Appends a batch.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), Error> {
        match &mut self.inner {
            Inner::Parquet(w) => w.write(batch)?,
            Inner::Arrow(w) => w.write(batch)?,
            Inner::Csv(w) => w.write(batch)?,
        }
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// Bytes written into the table but not yet to its file (a Parquet row group in progress).
    pub fn buffered_bytes(&self) -> usize {
        match &self.inner {
            Inner::Parquet(w) => w.in_progress_size(),
            Inner::Arrow(_) | Inner::Csv(_) => 0,
        }
    }

    /// Writes what is buffered to the file (ends a Parquet row group).
    pub fn flush(&mut self) -> Result<(), Error> {
        if let Inner::Parquet(w) = &mut self.inner {
            w.flush()?;
        }
        Ok(())
    }

    /// Completes the file, syncs it and renames it to its final path; returns its rows.
    pub fn finish(self) -> Result<u64, Error> {
        let file = match self.inner {
            Inner::Parquet(w) => w.into_inner()?,
            Inner::Arrow(mut w) => {
                w.finish()?;
                w.into_inner()?.into_inner().map_err(|e| local(&self.tmp)(e.into_error()))?
            }
            Inner::Csv(w) => {
                let mut b = w.into_inner();
                b.flush().map_err(local(&self.tmp))?;
                b.into_inner().map_err(|e| local(&self.tmp)(e.into_error()))?
            }
        };
        file.sync_all().map_err(local(&self.tmp))?;
        drop(file);
        std::fs::rename(&self.tmp, &self.path).map_err(local(&self.path))?;
        Ok(self.rows)
    }
}

/// Writes `bytes` to `path` through a temporary name.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let tmp = temporary(path);
    let mut f = File::create(&tmp).map_err(local(&tmp))?;
    f.write_all(bytes).map_err(local(&tmp))?;
    f.sync_all().map_err(local(&tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(local(path))
}

/// Writes one complete Arrow IPC file holding `batch` (a pull's per-batch part) and returns the
/// CRC-32 of its bytes. The part is not synced: its checkpoint line keeps the checksum, and a
/// part whose bytes do not match it (torn by a crash, lost to a power cut) is not trusted but
/// exported again ([`part_checksum`]). So a batch costs no fsync; the dataset's final files
/// are synced when they are committed.
pub fn write_part(path: &Path, batch: &RecordBatch) -> Result<u32, Error> {
    let mut bytes = Vec::new();
    let mut w = arrow_ipc::writer::FileWriter::try_new(&mut bytes, &batch.schema())?;
    w.write(batch)?;
    w.finish()?;
    drop(w);
    std::fs::write(path, &bytes).map_err(local(path))?;
    Ok(crc32fast::hash(&bytes))
}

/// The CRC-32 of the part at `path`, if it can be read.
pub fn part_checksum(path: &Path) -> Option<u32> {
    std::fs::read(path).ok().map(|bytes| crc32fast::hash(&bytes))
}

/// The batches of a part written by [`write_part`].
pub fn read_part(path: &Path) -> Result<Vec<RecordBatch>, Error> {
    let file = File::open(path).map_err(local(path))?;
    let reader = arrow_ipc::reader::FileReader::try_new(std::io::BufReader::new(file), None)?;
    Ok(reader.collect::<Result<Vec<_>, _>>()?)
}
