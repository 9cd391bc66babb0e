//! One module per command group.

pub mod backup;
pub mod call;
pub mod data;
pub mod dataset;
#[cfg(feature = "demo")]
pub mod demo;
pub mod files;
pub mod import_check;
pub mod info;
pub mod profile;
