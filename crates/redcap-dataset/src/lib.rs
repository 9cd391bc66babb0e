//! REDCap records as typed, columnar data: the data dictionary decides every column's type.
//!
//! A [`ProjectSchema`] (the dictionary, export field names, instruments, events, mappings,
//! repeating setup, DAGs, project info) decides a [`DatasetLayout`]: one Arrow table per
//! instrument. [`DatasetLayout::cast`] turns a batch of flat raw records into one record batch
//! per table, purely; [`DatasetPull`] keeps the books of a streaming pull to Parquet, Arrow IPC
//! or CSV files. The `redcap` crate's `dataset` feature drives it with either client.
//!
//! # Conventions
//!
//! * **Tables**: one per instrument, named by its unique name, keyed by the record-id field
//!   (named as in the dictionary, `Utf8`, never numeric), then `redcap_event_name` (longitudinal
//!   projects), `redcap_repeat_instance` (`Int64`, instruments that repeat as an instrument or
//!   inside a repeating event; null on their non-repeating rows), `redcap_data_access_group`
//!   (projects with DAGs the token can see). A row is in an instrument's table when the
//!   instrument belongs to the row and the row holds a value of it; the record-id instrument keeps
//!   every row of its events.
//! * **Types**: see [`FieldKind`] (from the typed dictionary row `redcap_api::rows::Field`, its
//!   `field_type` and `validation()`). `integer` and sliders are `Int64`; `number`, `number_Ndp`
//!   and calculated fields are `Float64` (comma-decimal validations read `1,5` as 1.5); dates
//!   `Date32`; datetimes `Timestamp(Millisecond)` without a zone (REDCap's server time; Parquet has
//!   no seconds unit, so milliseconds read as timestamps and times in every reader);
//!   times `Time32(Millisecond)`; yes/no and true/false `Boolean`; radio, dropdown and form status
//!   the **code**, dictionary-encoded over the field's codes in the dictionary's order (so the
//!   categories keep REDCap's order); checkboxes one `Boolean` per option, named as REDCap
//!   exports them (`<field>___<code>`, e.g. `race____1` for code `-1`); everything else `Utf8`.
//! * **Why `Float64` and not `Decimal`**: REDCap validates `number_Ndp` on entry and every value
//!   has at most 15 significant digits in practice, which `Float64` holds exactly as printed;
//!   pandas, R and Polars compute on doubles (R's arrow reads decimals as doubles, pandas as
//!   Python objects), so a decimal column would cost every user a conversion for no gain. The
//!   number of decimals is kept in the column's metadata (`redcap.decimals`).
//! * **Labels**: the choices are in each code column's field metadata (`redcap.choices`, JSON
//!   `[{"code","label"}]`); with labels on, a `<field>___label` column (dictionary-encoded)
//!   follows the code column.
//! * **Missing-data codes**: a value equal to one of the project's codes is null in its column and
//!   the code is in the sibling `<field>___missing` column (dictionary-encoded over the project's
//!   codes); fields tagged `@NOMISSING` have none. See [`names`].
//! * **Problems**: a value that does not fit its type is null in its column and a row of the
//!   `_problems` table (record, event, instance, instrument, field, raw, reason).
//! * **Metadata**: every column has `redcap.role` (`key`, `value`, `checkbox`, `label`,
//!   `missing_code`, `status`) and the field's `redcap.field`, `redcap.form`,
//!   `redcap.field_type`, `redcap.validation`, `redcap.label`, `redcap.identifier` (`y`) where
//!   set; each table's schema has `redcap.instrument`, `redcap.instrument_label`,
//!   `redcap.repeating` and `redcap.schema_hash`.
#![warn(missing_docs)]

mod cast;
pub mod check;
pub mod commit;
pub mod diff;
mod error;
pub mod kind;
mod layout;
pub mod names;
pub mod parse;
mod pull;
mod records;
mod schema;
pub mod sync;
pub mod write;

pub use cast::{CastBatch, Problem, problems_batch, problems_schema};
pub use commit::CrashAt;
pub use error::Error;
pub use kind::{FieldKind, TimeForm};
pub use layout::{DatasetLayout, LayoutOptions, TableLayout};
pub use pull::{
    Checkpoint, DatasetPull, Manifest, PARTIAL_DIR, PullOptions, PullSummary, TableEntry, dataset_records,
    dictionary_batch, distinct_ids,
};
pub use records::{Cells, CsvError, CsvRecords, Records};
pub use schema::ProjectSchema;
pub use sync::{DatasetSync, LogLine, RebuildReason, SyncExport, SyncPlan, SyncSummary, plan_sync};
pub use write::OutputFormat;

/// The current time, RFC 3339 in UTC (the manifest's `pulled_at`).
pub fn now_utc() -> String {
    chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now())
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
