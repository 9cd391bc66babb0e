//! Conformance tests: each documented behaviour of the emulated REDCap API (status, headers,
//! body in each format), through real HTTP against an in-process emulator.

mod common;

mod basics;
mod concurrency;
mod eav;
mod empty;
mod faults;
mod file_repo;
mod files;
mod fixtures;
mod hostile;
mod logging;
mod meta;
mod odm;
mod pdf;
mod project_xml;
mod pycap_doctests;
mod pycap_integration;
mod records;
mod reports;
mod scale;
mod structure;
mod surveys;
mod users;
