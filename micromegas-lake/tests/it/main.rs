//! Integration tests of micromegas-lake, one binary (each test file of a crate linked with
//! DataFusion would be a binary of its own, about a gigabyte in a debug build).

mod catalog;
mod cli;
#[allow(dead_code)]
mod common;
mod duckdb;
mod flightsql;
mod garbage;
mod maintenance;
mod perfetto;
mod pruning_retention;
mod row_blocks;
mod shared_lake;
mod system_monitor;
mod tables;
mod views;
