//! Conformance tests: each documented behaviour of the emulated REDCap API (status, headers,
//! body in each format), through real HTTP against an in-process emulator.

mod common;

mod basics;
mod faults;
mod file_repo;
mod fixtures;
mod meta;
mod records;
mod reports;
